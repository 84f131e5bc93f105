#!/usr/bin/env bash
# Build the sdist and the wheel, install the wheel into a new virtual
# environment (outside the checkout) and run the tutorials from it headless.
#
#     ./scripts/check_wheel.sh [WORK_DIR]
#
# WORK_DIR (default: a new temporary folder) receives dist/ and venv/; it is
# kept so that the packages can be uploaded after the check. Needs network
# access to PyPI (the build backend and the add-on's dependencies).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-python3}
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
echo "working in $WORK"

"$PY" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/python" -m pip -q --disable-pip-version-check install build
rm -rf "$WORK/dist"
"$WORK/build-venv/bin/python" -m build --sdist --wheel --outdir "$WORK/dist" "$REPO"
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)

# both carry the tutorials, their photos and the help pages
"$WORK/build-venv/bin/python" - "$SDIST" "$WHEEL" <<'PY'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
names = {"sdist": tarfile.open(sdist).getnames(), "wheel": zipfile.ZipFile(wheel).namelist()}
for kind, files in names.items():
    def count(part):
        return sum(part in f for f in files)
    checks = {
        "tutorial workflows": count("imageanalytics/tutorials/") and
            sum(f.endswith(".ows") and "tutorials/" in f for f in files),
        "labelled photos": count("tutorials/photos/labelled/"),
        "new photos": count("tutorials/photos/new/"),
        "help pages": sum(f.endswith(".html") and "widgets/help/" in f for f in files),
        "icons": sum(f.endswith(".svg") and "widgets/icons/" in f for f in files),
    }
    print(kind, ", ".join(f"{k}: {v}" for k, v in checks.items()))
    expected = {"tutorial workflows": 3, "labelled photos": 50, "new photos": 25}
    for key, n in expected.items():
        if checks[key] < n:
            sys.exit(f"{kind} lacks {key}: {checks[key]} < {n}")
    if not checks["help pages"] or not checks["icons"]:
        sys.exit(f"{kind} lacks help pages or icons")
PY

"$PY" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip -q --disable-pip-version-check)
# the CPU build of torch first: then nothing pulls a CUDA build
"$WORK/venv/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install "$WHEEL"
cd "$WORK"   # not the checkout: the installed add-on is what runs
"$WORK/venv/bin/python" -c "import orangecontrib.imageanalytics as m, sys; \
assert m.__file__.startswith('$WORK'), m.__file__; print('installed at', m.__file__)"
QT_QPA_PLATFORM=offscreen "$WORK/venv/bin/python" "$REPO/scripts/run_tutorial.py"
"$WORK/venv/bin/orange-embedding-server" --help > /dev/null
echo "sdist and wheel: $SDIST $WHEEL"
