#!/usr/bin/env bash
# One command: install everything, then run the whole test suite against real Orthanc processes.
# PYTEST_ARGS are passed to pytest.  PYTHANC_TEST_STEPS=setup stops after the installation,
# PYTHANC_TEST_STEPS=pytest skips it (scripts/test-matrix.sh installs a chroot's release while
# the host's tests run); the default runs both.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${PYTHANC_TEST_STEPS:-all}
case "$steps" in all|setup|pytest) ;; *) echo "test.sh: PYTHANC_TEST_STEPS is all, setup or pytest, not '$steps'" >&2; exit 2;; esac
if [ "$steps" != pytest ]; then
  start=$SECONDS
  bash scripts/setup.sh
  echo "test.sh: setup took $((SECONDS - start)) s"
fi
[ "$steps" = setup ] && exit 0
# The 25 slowest tests close the output: where a run's time goes, in every CI log.
# Wide lines: the FAILED lines of the short summary keep their message in a log.
export COLUMNS=${COLUMNS:-200}
exec .venv/bin/python -m pytest -p no:cacheprovider -q --durations=25 "$@"
