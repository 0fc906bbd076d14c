#!/usr/bin/env bash
# One command: install everything, then run Orthanc with pythanc and examples/hello.py
# (http://localhost:8042, DICOM port 4242, storage ./orthanc-storage). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pythanc run "${1:-examples/hello.py}" --storage orthanc-storage
