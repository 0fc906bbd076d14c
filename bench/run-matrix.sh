#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The benchmark on every Debian release, one after the other (as root):
#
#   bash bench/run-matrix.sh [--quick] [--releases "bookworm trixie forky"] [-- RUN.PY OPTIONS...]
#
# The host's own release runs on the host; the others in the chroots of scripts/debian-chroot.sh
# (made first if missing; `run` copies the working tree to /pythanc there).  Each release first
# runs bench/setup.sh (pythanc built into that release's .venv, its Orthanc, its official plugin,
# wrk), then bench/run.py, whose JSON lands in bench/results/RELEASE-DATE[-quick].json of this
# checkout.  A release whose run fails (or whose checks fail) does not stop the others; the exit
# code is 1 if any did.  Run it on a quiet machine: the figures are only worth what the machine's
# noise allows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"
releases="bookworm trixie forky"
quick=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick; shift ;;
    --releases) releases=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run-matrix: unknown option $1 (--quick, --releases LIST, -- run.py options)" >&2; exit 2 ;;
  esac
done
host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
date=$(date +%F)
suffix=${quick:+-quick}
mkdir -p bench/results
failed=""
for rel in $releases; do
  out="bench/results/$rel-$date$suffix.json"
  echo "=== $rel: $(date -u +%FT%TZ) ===" >&2
  start=$SECONDS
  status=0
  if [ "$rel" = "$host" ]; then
    { bash bench/setup.sh && .venv/bin/python bench/run.py $quick --out "$out" "${extra[@]}"; } || status=$?
  else
    bash scripts/debian-chroot.sh make "$rel" || { failed="$failed $rel"; continue; }
    # ${extra[*]} is passed as words; run.py's options take no blanks.
    bash scripts/debian-chroot.sh run "$rel" -- bash -c \
      "bash bench/setup.sh && .venv/bin/python bench/run.py $quick --out '$out' ${extra[*]:-}" || status=$?
    src="$ROOT/.cache/chroots/$rel/pythanc/$out"
    if [ -e "$src" ]; then cp "$src" "$out"; else echo "run-matrix: $rel wrote no $out" >&2; status=1; fi
  fi
  echo "=== $rel: exit $status after $((SECONDS - start)) s; $out ===" >&2
  [ "$status" = 0 ] || failed="$failed $rel"
done
if [ -n "$failed" ]; then echo "run-matrix: failed or checks failed on:$failed" >&2; exit 1; fi
echo "run-matrix: every release passed its checks; results in bench/results/" >&2
