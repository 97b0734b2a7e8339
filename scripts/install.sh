#!/usr/bin/env bash
# Install zcscore (editable). Usage: scripts/install.sh [EXTRAS]   (default: service; `dev` for the test tools)
# An existing torch (e.g. your CUDA build) is kept; otherwise torch 2.13.0 is installed first
# (on the project's CI/dev machines pip resolves it to the local CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[${1:-service}]"
