#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Where the time of the rest-apicall scenario goes: one Orthanc (the benchmark's script, a fresh
# storage) under the rest-apicall load (wrk -t2 -c8 on /bench/apicall, a Python route answering
# orthanc.RestApiGet('/system')), with a sampling profiler attached to Orthanc's process.
#
#   bash bench/profile-apicall.sh [py-spy|perf] [CONFIG] [SECONDS] [-- RUN.PY OPTIONS...]
#
# py-spy (default): a flame graph of the Python stacks of every thread, with the native frames
#   (libOrthancPython / _pythanc.so / libpython / Orthanc) where --native works:
#   bench/results/profile-apicall-RELEASE-CONFIG-STAMP.svg (open it in a browser).
# perf: `perf record -g` of Orthanc's process (software clock, so it works where the VM has no
#   hardware counters) and `perf report --stdio`: ...perf.data, ...perf.txt (call graphs) and
#   ...perf-flat.txt (CPU share by library, then by function).  perf may be
#   missing or refused on a VM (`perf stat -e instructions true` printing "<not supported>" only
#   means no hardware counters; cpu-clock still samples).
# CONFIG: pythanc (default), official or official-allowthreads (the official plugin of this release).
# SECONDS: of sampling (default 10).  The wrk output of the load is kept beside (...wrk.txt).
#
# bench/setup.sh --profile installs py-spy (pip, into .venv) and perf (linux-perf).  In a chroot:
#   bash scripts/debian-chroot.sh run forky -- bash -c 'bash bench/setup.sh --profile && bash bench/profile-apicall.sh'
# (the files are then in .cache/chroots/forky/pythanc/bench/results/).  Profile on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-py-spy}; [ $# -gt 0 ] && shift
config=${1:-pythanc}; [ $# -gt 0 ] && [ "$1" != -- ] && shift
seconds=${1:-10}; [ $# -gt 0 ] && [ "$1" != -- ] && shift
[ "${1:-}" = -- ] && shift
native=()
if [ "$tool" = py-spy ]; then
  [ -x .venv/bin/py-spy ] || command -v py-spy >/dev/null || { echo "profile-apicall: no py-spy: bash bench/setup.sh --profile" >&2; exit 1; }
  native=(--native)
fi
exec .venv/bin/python bench/run.py --profile-apicall "$tool" --profile-config "$config" --duration "$seconds" "${native[@]}" "$@"
