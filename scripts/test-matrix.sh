#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The whole test suite (scripts/test.sh) on the Orthanc of every Debian release: on the host for
# the host's own release, in a chroot of scripts/debian-chroot.sh for each other one.  The test
# runs go one release after the other (the tests are timing-sensitive: never two at once); the
# chroots are made and installed (one at a time) in the background from the start, so that the
# host's tests hide that time.  As root:
#
#   scripts/test-matrix.sh [--only R1,R2] [-- PYTEST_ARGS...]
#
# Releases: bookworm, trixie, forky (or --only, or the environment variable RELEASES="R1 R2").
# PYTEST_ARGS go to every run's pytest.  PYTHANC_MATRIX_TIMEOUT bounds each release's run
# (chroot making excluded), in seconds (default 1200).  This script owns .cache/logs/RELEASE.log
# (everything each release printed).  It prints each release's pytest summary line and times, then
# a table and a last line "matrix: N passed, N failed" adding up the releases (a release that
# printed no pytest summary, e.g. on a timeout, counts as one failed); after a failed release's
# summary, its FAILED lines and failure reports; exits 0 only if every release passed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"
ALL="bookworm trixie forky"
TIMEOUT=${PYTHANC_MATRIX_TIMEOUT:-1200}

usage() { sed -n '4,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

releases=${RELEASES:-$ALL}
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || usage; releases=${2//,/ }; shift 2 ;;
    --only=*) releases=${1#--only=}; releases=${releases//,/ }; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
for r in $releases; do
  case " $ALL " in *" $r "*) ;; *) echo "test-matrix: unknown release '$r' (one of: $ALL)" >&2; exit 2;; esac
done
host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

mkdir -p .cache/logs
declare -A status summary t_make t_setup t_pytest t_total
failed=0 n_passed=0 n_failed=0 n_skipped=0

# The count of OUTCOME (passed, failed...) in a pytest summary line, 0 if absent.
count() {
  local n
  n=$(printf '%s' "$1" | grep -o -E "[0-9]+ $2" | head -n 1 | grep -o -E '^[0-9]+') || true
  echo "${n:-0}"
}

# The last pytest summary line of a log ("3 failed, 290 passed, 1 skipped in 480.12s (0:08:00)").
pytest_summary() {
  grep -a -E '^(=+ )?([0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(, )?)+ in [0-9.]+s|no tests ran' "$1" |
    tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true
}

# What a failed run's log says about its failures, for CI's output: pytest's FAILED/ERROR lines,
# then the failure reports (at most 200 lines), or the log's last 40 lines if pytest printed none.
failures() {
  local log=$1
  if grep -a -q -E '^(FAILED|ERROR) ' "$log"; then
    grep -a -E '^(FAILED|ERROR) ' "$log" | sed 's/^/   /'
    echo "   --- the failure reports (from $log):"
    sed -n -E '/^=+ (FAILURES|ERRORS) =+$/,/^=+ (short test summary info|slowest [0-9]+ durations) =+$/p' "$log" |
      head -n 200 | sed 's/^/   | /'
  else
    echo "   --- the last 40 lines of $log:"
    tail -n 40 "$log" | sed 's/^/   | /'
  fi
}

# Makes the chroot of release $1 and installs pythanc in it (scripts/test.sh's setup step), one
# release at a time (the lock on fd 8); prints "test-matrix: make took N s" into the release's log.
prepare() {
  local rel=$1 log=".cache/logs/$1.log" m
  exec 8>".cache/logs/prepare.lock"
  flock 8
  m=$SECONDS
  if ! bash scripts/debian-chroot.sh make "$rel" >>"$log" 2>&1 8>&-; then
    echo "test-matrix: making the $rel chroot failed" >>"$log"
    return 1
  fi
  echo "test-matrix: make took $((SECONDS - m)) s" >>"$log"
  timeout -k 30 "$TIMEOUT" bash scripts/debian-chroot.sh run "$rel" -- env PYTHANC_TEST_STEPS=setup bash scripts/test.sh >>"$log" 2>&1 8>&-
}

declare -A prep_pid
for rel in $releases; do
  : > ".cache/logs/$rel.log"
  if [ "$rel" != "$host" ]; then
    prepare "$rel" 8>&- &
    prep_pid[$rel]=$!
  fi
done
# Background preparations still running when this script exits (an interrupted run) are stopped.
trap 'for p in "${prep_pid[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

start_all=$SECONDS
for rel in $releases; do
  log=".cache/logs/$rel.log"
  start=$SECONDS
  t_make[$rel]=-
  echo "== $rel: $( [ "$rel" = "$host" ] && echo "on the host" || echo "in a chroot") (log: $log)"
  rc=0
  if [ "$rel" = "$host" ]; then
    timeout -k 30 "$TIMEOUT" bash scripts/test.sh "$@" >>"$log" 2>&1 || rc=$?
  else
    # The chroot's preparation (made and installed in the background) must have succeeded.
    if wait "${prep_pid[$rel]}"; then
      timeout -k 30 "$TIMEOUT" bash scripts/debian-chroot.sh run "$rel" -- env PYTHANC_TEST_STEPS=pytest bash scripts/test.sh "$@" >>"$log" 2>&1 || rc=$?
    else
      rc=$?
      echo "test-matrix: preparing the $rel chroot failed (rc=$rc), see above" >>"$log"
    fi
    t_make[$rel]=$(grep -a -o -E '^test-matrix: make took [0-9]+ s' "$log" | tail -n 1 | grep -o -E '[0-9]+' || echo -)
  fi
  # For a chroot: the time from its preparation's end (or the previous release's end) to its end.
  t_total[$rel]=$((SECONDS - start))
  t_setup[$rel]=$(grep -a -o -E '^test.sh: setup took [0-9]+ s' "$log" | tail -n 1 | grep -o -E '[0-9]+' || true)
  summary[$rel]=$(pytest_summary "$log")
  t_pytest[$rel]=$(printf '%s' "${summary[$rel]}" | grep -o -E ' in [0-9.]+s' | grep -o -E '[0-9]+' | head -n 1 || true)
  case "$rc" in
    0) status[$rel]=PASS ;;
    124|137) status[$rel]="TIMEOUT(${TIMEOUT}s)"; failed=1 ;;
    *) status[$rel]="FAIL(rc=$rc)"; failed=1 ;;
  esac
  if [ -n "${summary[$rel]}" ]; then
    n_passed=$((n_passed + $(count "${summary[$rel]}" passed)))
    n_failed=$((n_failed + $(count "${summary[$rel]}" failed) + $(count "${summary[$rel]}" 'errors?')))
    n_skipped=$((n_skipped + $(count "${summary[$rel]}" skipped)))
  fi
  if [ "$rc" != 0 ] && [ -z "${summary[$rel]}" ]; then n_failed=$((n_failed + 1)); fi
  echo "   ${status[$rel]}: ${summary[$rel]:-no pytest summary}"
  if [ "$rc" != 0 ]; then failures "$log"; fi
  echo "   time: make ${t_make[$rel]} s, setup ${t_setup[$rel]:--} s, pytest ${t_pytest[$rel]:--} s, total ${t_total[$rel]} s"
done

echo
printf '%-9s %-16s %6s %6s %7s %6s  %s\n' release status make setup pytest total "pytest summary"
for rel in $releases; do
  printf '%-9s %-16s %6s %6s %7s %6s  %s\n' "$rel" "${status[$rel]}" "${t_make[$rel]}" "${t_setup[$rel]:--}" \
    "${t_pytest[$rel]:--}" "${t_total[$rel]}" "${summary[$rel]:--}"
done
echo "matrix: the whole run took $((SECONDS - start_all)) s (chroots made and installed while the host's tests ran)"
echo
if [ "$n_skipped" -gt 0 ]; then
  echo "matrix: $n_passed passed, $n_failed failed, $n_skipped skipped"
else
  echo "matrix: $n_passed passed, $n_failed failed"
fi
exit "$failed"
