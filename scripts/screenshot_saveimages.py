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

import base64
import os
import pickle
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "doc", "widgets", "images", "saveimages.png")
IMAGES = os.path.join(REPO, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
#: where the widget window is put, and the part of the screen that is kept
WIDGET_POS = (560, 70)
CROP = (330, 130, 670, 510)

WORKFLOW = """<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Save the example images" description="">
  <nodes>
    <node id="0" name="Import Images" qualified_name="orangecontrib.imageanalytics.widgets.owimageimport.OWImportImages" project_name="Orange3-ImageAnalytics" version="" title="Import Images" position="(100, 150)" />
    <node id="1" name="Save Images" qualified_name="orangecontrib.imageanalytics.widgets.owsaveimages.OWSaveImages" project_name="Orange3-ImageAnalytics" version="" title="Save Images" position="(300, 150)" />
  </nodes>
  <links>
    <link id="0" source_node_id="0" sink_node_id="1" source_channel="Data" sink_channel="Data" enabled="true" source_channel_id="data" sink_channel_id="data" />
  </links>
  <annotations />
  <thumbnail />
  <node_properties>
    <properties node_id="0" format="pickle">{import_props}</properties>
    <properties node_id="1" format="literal">{save_props}</properties>
  </node_properties>
  <session_state>
    <window_groups>
      <group name="Screenshot" default="true">
        <window_state node_id="1">{geometry}</window_state>
      </group>
    </window_groups>
  </session_state>
</scheme>
"""


def widget_geometry() -> str:
    """QWidget.saveGeometry() of a window at WIDGET_POS, base64."""
    from AnyQt.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication([])
    window = QWidget()
    window.setGeometry(WIDGET_POS[0], WIDGET_POS[1], 380, 420)
    data = bytes(window.saveGeometry())
    del app
    return base64.b64encode(data).decode("ascii")


def write_workflow(folder: str, home: str) -> str:
    from Orange.widgets.utils.filedialogs import RecentPath

    import_props = base64.b64encode(pickle.dumps({
        "recent_paths": [RecentPath(IMAGES, None, None)],
        "controlAreaVisible": True, "savedWidgetGeometry": None,
        "__version__": 2})).decode("ascii")
    save_props = repr({
        "dirname": os.path.join(home, "Pictures", "Sorted"),
        "auto_save": True, "file_format": "jpg", "use_scale": False,
        "controlAreaVisible": True, "savedWidgetGeometry": None, "__version__": 2})
    path = os.path.join(folder, "save-images.ows")
    with open(path, "w", encoding="utf-8") as f:
        f.write(WORKFLOW.format(import_props=import_props, save_props=escape(save_props),
                                geometry=widget_geometry()))
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
            # wait until all 18 example images are saved, then let it paint
            while time.monotonic() < deadline:
                n = sum(len(files) for _, _, files in os.walk(target))
                if n >= 18:
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
