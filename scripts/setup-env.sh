#!/usr/bin/env bash
# Create .venv with the add-on installed in development mode.
# torch 2.13.0 goes in first: it is the CPU build, and with it present no
# other requirement pulls a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# pip is noisy about local index folders that do not exist; keep its status
pip() {
    .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
.venv/bin/python -c "import torch" 2>/dev/null || pip install "torch==2.13.0"
# ray: the test of the server on Ray Serve runs in CI too
pip install -e ".[test,ray]"
.venv/bin/python -c "import orangecontrib.imageanalytics, torch, Orange"
