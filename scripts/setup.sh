#!/usr/bin/env bash
# Install everything pythanc needs on Debian 12 or later (bookworm, trixie, forky; as root), then
# build and install pythanc into ./.venv with pip.  Idempotent.  Used by scripts/quickstart.sh,
# scripts/test.sh and .ci/run (also inside the chroots of scripts/debian-chroot.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# orthanc-python: the official plugin, for the parity tests and the benchmark (loaded only when a
# test or the benchmark names it in "Plugins"; installing it changes nothing else).
# postgresql and orthanc-postgresql: the replicas tests (tests/replicas.py) start a PostgreSQL
# cluster of their own in a temporary folder (initdb/pg_ctl as the unprivileged "postgres" user)
# and Orthanc processes with the PostgreSQL index plugin.  The default cluster that Debian's
# postinst creates is left alone and never started (policy-rc.d below keeps its service down).
APT_PACKAGES="orthanc orthanc-dev orthanc-python orthanc-postgresql postgresql dcmtk gcc libc6-dev curl python3 python3-venv python3-dev libpython3-dev"
need_apt=0
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's orthanc package would start its system service on ports 8042/4242, and the
  # postgresql package its default cluster on 5432: pythanc never uses them, so keep them from
  # starting during this install (policy-rc.d, only if none exists).
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null || { [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# Debian's python3 by default: it has a shared libpython, and it is the interpreter that Debian's
# official plugin (orthanc-python) uses, so the benchmark compares the plugins, not two Pythons.
# PYTHON=/path/to/python3 chooses another CPython with a shared libpython.
PY="${PYTHON:-/usr/bin/python3}"
if ! err=$("$PY" -c 'import sys; sys.path.insert(0, "src"); from pythanc._build.plugin_build import libpython; libpython()' 2>&1 >/dev/null); then
  echo "setup: $PY has no shared libpython (pythanc embeds it); use Debian's /usr/bin/python3" >&2
  printf '%s\n' "$err" | tail -n 3 >&2
  exit 1
fi
# A .venv made by another interpreter is made again.
if [ -x .venv/bin/python ] && [ "$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null)" != "$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')" ]; then
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# A pythanc installed before is removed first, with every file of it: a module that a later version
# moved or dropped must not stay importable from an old installation.
.venv/bin/python -m pip uninstall -q -y pythanc >/dev/null 2>&1 || true
rm -rf .venv/lib/python3*/site-packages/pythanc
.venv/bin/python -m pip install -q ".[test,samples]"
echo "pythanc installed: $(.venv/bin/pythanc plugin-path)"
