#!/usr/bin/env bash
# Install everything pythanc needs on Debian 12 (as root), then build and install pythanc into
# ./.venv with pip.  Idempotent.  Used by scripts/quickstart.sh, scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="orthanc orthanc-dev dcmtk gcc libc6-dev curl"
need_apt=0
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's orthanc package would start its system service on ports 8042/4242: pythanc never
  # uses it, so keep it from starting during this install (policy-rc.d, only if none exists).
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null || { [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# A CPython with a shared libpython: the one on PATH if it has it, else Debian's python3.
PY="${PYTHON:-python3}"
has_shared_libpython() {
  "$1" -c 'import sys; sys.path.insert(0, "src"); from pythanc._build.plugin_build import libpython; libpython()' 2>/dev/null
}
if ! has_shared_libpython "$PY"; then
  apt-get install -y -qq python3 python3-venv python3-dev libpython3-dev >/dev/null
  PY=/usr/bin/python3
  has_shared_libpython "$PY" || { echo "setup: no CPython with a shared libpython found" >&2; exit 1; }
fi
if ! "$PY" -m venv --help >/dev/null 2>&1; then
  apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q ".[test,samples]"
echo "pythanc installed: $(.venv/bin/pythanc plugin-path)"
