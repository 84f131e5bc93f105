#!/usr/bin/env bash
# Create .venv with the add-on installed in development mode, with
# everything the tests need (PyTorch, PyQt5, Ray Serve, the test tools).
# torch 2.13.0 goes in first: it is the CPU build, and with it present no
# other requirement pulls a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "setup-env: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
    say "creating the virtual environment .venv ..."
    "$PY" -m venv .venv
fi
# pip is noisy about local index folders that do not exist; keep its status
pip() {
    .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    say "installing PyTorch (CPU build: about 190 MB to download, 750 MB on disk) ..."
    pip install "torch==2.13.0"
fi
if ! .venv/bin/python -c "import orangecontrib.imageanalytics, Orange, AnyQt.QtCore, ray, pytest" 2>/dev/null; then
    say "installing the add-on, Orange, Qt, Ray Serve and the test tools (a few minutes the first time) ..."
fi
# always run: setup.py may have changed since the last run; quick when
# everything is there already
pip install -e ".[test,ray]"
.venv/bin/python -c "import orangecontrib.imageanalytics, torch, Orange, AnyQt.QtCore"
say "ready: .venv"
