#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# What the benchmark needs on top of scripts/setup.sh (which builds pythanc into ./.venv and
# installs Orthanc and the official plugin, orthanc-python): wrk.  As root; idempotent; on the host
# or inside a chroot of scripts/debian-chroot.sh (bench/run-matrix.sh calls it there).
#
#   bash bench/setup.sh             scripts/setup.sh, then wrk
#   bash bench/setup.sh --profile   the same, plus py-spy (pip, into ./.venv) and perf (linux-perf)
#                                   for bench/profile-apicall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=0
for a in "$@"; do
  case "$a" in
    --profile) profile=1 ;;
    *) echo "bench/setup.sh: unknown option $a (--profile)" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh
apt_packages="wrk"
[ "$profile" = 1 ] && apt_packages="$apt_packages linux-perf"
missing=""
for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "$profile" = 1 ] && [ ! -x .venv/bin/py-spy ]; then
  .venv/bin/python -m pip install -q py-spy
fi
echo "bench/setup.sh: ready (wrk: $(command -v wrk))"
