#!/usr/bin/env bash
# One command: install everything, then run the whole test suite against real Orthanc processes.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
echo "test.sh: setup took $((SECONDS - start)) s"
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
