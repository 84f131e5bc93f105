"""The wheel carries everything an installation needs: the tutorials with
their photos, the help pages, the icons and the entry points."""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "setup.cfg", "README.md"):
        shutil.copy(os.path.join(REPO, name), src)
    shutil.copytree(os.path.join(REPO, "orangecontrib"), src / "orangecontrib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    path, = glob.glob(str(out / "*.whl"))
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) if name.endswith(("entry_points.txt", "METADATA"))
                else None for name in z.namelist()}


def test_tutorials_and_photos(wheel):
    here = "orangecontrib/imageanalytics/tutorials/"
    tutorials = {os.path.basename(n) for n in wheel if n.startswith(here) and n.endswith(".ows")}
    assert tutorials == {os.path.basename(p) for p in glob.glob(os.path.join(REPO, here, "*.ows"))}
    assert len(tutorials) == 4
    assert sum(n.startswith(here + "photos/labelled/") for n in wheel) == 50
    assert sum(n.startswith(here + "photos/new/") for n in wheel) == 25


def test_help_and_icons(wheel):
    widgets = "orangecontrib/imageanalytics/widgets/"
    pages = {n for n in wheel if n.startswith(widgets + "help/") and n.endswith(".html")}
    assert len(pages) >= 6  # the index and a page per widget
    images = {n for n in wheel if n.startswith(widgets + "help/images/")}
    assert len(images) >= 5
    assert sum(n.startswith(widgets + "icons/") for n in wheel) >= 6


def test_entry_points_and_metadata(wheel):
    entry_points, = [v for n, v in wheel.items() if n.endswith("entry_points.txt")]
    text = entry_points.decode()
    for group in ("[orange.widgets]", "[orange.widgets.tutorials]", "[orange3.addon]",
                  "[orange.canvas.help]", "[console_scripts]"):
        assert group in text
    metadata, = [v for n, v in wheel.items() if n.endswith("METADATA")]
    metadata = metadata.decode()
    assert "Requires-Python: >=3.10" in metadata
    assert "## Quick start" in metadata  # the long description is the README
    assert "Project-URL: Homepage, " in metadata
    assert "GPL-3.0-or-later" in metadata
