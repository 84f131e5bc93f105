#!/usr/bin/env python3
"""Take the Save Images help page's screenshot in the real canvas.

Writes a workflow Import Images (the example photos) → Save Images into a
temporary folder, with Save Images set to autosave into "Pictures/Sorted"
in a temporary home folder and its window opened by the workflow's default
window group. The canvas runs under an X server (Xvfb) on DISPLAY; a second
Qt process grabs the screen once the save has finished and crops it to the
canvas and the widget.

    Xvfb :92 -screen 0 1600x1000x24 &
    DISPLAY=:92 python scripts/screenshot_saveimages.py [OUT.png]

OUT defaults to doc/widgets/images/saveimages.png. Look at the picture
before you keep it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import canvas_screenshot

REPO = canvas_screenshot.ROOT
OUT = os.path.join(REPO, "doc", "widgets", "images", "saveimages.png")
IMAGES = os.path.join(REPO, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
#: where the widget window is put, and the part of the screen that is kept
WIDGET_POS = (560, 70)
CROP = (330, 130, 670, 510)


def write_workflow(folder: str, home: str) -> str:
    from Orange.widgets.utils.filedialogs import RecentPath

    path = os.path.join(folder, "save-images.ows")
    canvas_screenshot.write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (100, 150),
         {"recent_paths": [RecentPath(IMAGES, None, None)],
          "controlAreaVisible": True, "savedWidgetGeometry": None,
          "__version__": 2}),
        ("owsaveimages.OWSaveImages", "Save Images", (300, 150),
         {"dirname": os.path.join(home, "Pictures", "Sorted"),
          "auto_save": True, "use_scale": False,
          "controlAreaVisible": True, "savedWidgetGeometry": None,
          "__version__": 3}),
    ], [(0, "Data", "data", 1, "Data", "data")], shown=1,
        geometry=(*WIDGET_POS, 380, 420))
    return path


def grab(out: str) -> None:
    from AnyQt.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    shot = app.primaryScreen().grabWindow(0, *CROP)
    if not shot.save(out):
        raise SystemExit(f"cannot write {out}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--grab":
        grab(sys.argv[2])
        return 0
    out = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else OUT
    if not os.environ.get("DISPLAY"):
        raise SystemExit("Set DISPLAY to the X server to use (e.g. Xvfb :92).")
    with tempfile.TemporaryDirectory(prefix="saveimages-shot-") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(home, "Pictures"))
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_DATA_HOME=os.path.join(home, ".local", "share"),
                   XDG_CACHE_HOME=os.path.join(home, ".cache"))
        env.pop("QT_QPA_PLATFORM", None)
        workflow = write_workflow(tmp, home)
        canvas = subprocess.Popen(
            [sys.executable, "-m", "Orange.canvas", "--no-splash", "--no-welcome", workflow],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            target = os.path.join(home, "Pictures", "Sorted")
            deadline = time.monotonic() + 120
            # wait until every example photo is saved, then let it paint
            expected = sum(len(files) for _, _, files in os.walk(IMAGES))
            while time.monotonic() < deadline:
                n = sum(len(files) for _, _, files in os.walk(target))
                if n >= expected:
                    break
                time.sleep(0.5)
            time.sleep(4)
            subprocess.run([sys.executable, __file__, "--grab", out], env=env, check=True)
        finally:
            canvas.terminate()
            try:
                canvas.wait(10)
            except subprocess.TimeoutExpired:
                canvas.kill()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
