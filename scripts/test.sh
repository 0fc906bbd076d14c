#!/usr/bin/env bash
# One command: install everything, then run the whole test suite against real Orthanc processes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
