#!/usr/bin/env python3
"""Take the Image Grid help page's screenshot in the real canvas.

Writes a workflow Import Images (the example images) → Image Embedding
(SqueezeNet, local) → Image Grid whose grid window opens by itself (a default window group), opens it in Orange's
canvas on an X display (Xvfb), grabs the screen from a second Qt process and
keeps the grid window's part in doc/widgets/images/imagegrid.png.

    python scripts/screenshot_imagegrid.py [--display :93] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
"""
import argparse
import base64
import os
import pickle
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "examples", "images")
GEOMETRY = (40, 40, 1000, 640)  # x, y, width, height of the grid window

PREFIX = "orangecontrib.imageanalytics.widgets."


def window_state(geometry) -> bytes:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from AnyQt.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication(["x"])
    w = QWidget()
    w.setGeometry(*geometry)
    data = bytes(w.saveGeometry())
    del app
    return data


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    def props(settings):
        return base64.b64encode(pickle.dumps(settings, protocol=4)).decode()

    importer = props({"recent_paths": [RecentPath(IMAGES, None, None)],
                      "__version__": 1})
    geometry = window_state(GEOMETRY)
    embedder = props({"cb_embedder_current_id": 1, "_auto_apply": True})
    groups = [1] * 3 + [0] * 3 + [2] * 3 + [0] * 9   # two groups, as if marked
    grid = props({"imageSize": 120, "cell_fit": "Crop", "auto_commit": True,
                  "selection": groups, "rows": 4, "columns": 5,
                    "__version__": 2, "controlAreaVisible": True})
    state = base64.b64encode(geometry).decode()
    text = f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Photos" description="">
  <nodes>
    <node id="0" name="Import Images" qualified_name="{PREFIX}owimageimport.OWImportImages"
          project_name="Orange3-ImageAnalytics" version="" title="Import Images"
          position="(150, 150)" />
    <node id="1" name="Image Grid" qualified_name="{PREFIX}owimagegrid.OWImageGrid"
          project_name="Orange3-ImageAnalytics" version="" title="Image Grid"
          position="(550, 150)" />
    <node id="2" name="Image Embedding" qualified_name="{PREFIX}owimageembedding.OWImageEmbedding"
          project_name="Orange3-ImageAnalytics" version="" title="Image Embedding"
          position="(350, 150)" />
  </nodes>
  <links>
    <link id="0" source_node_id="0" sink_node_id="2" source_channel="Data"
          sink_channel="Images" enabled="true" source_channel_id="data" sink_channel_id="images" />
    <link id="1" source_node_id="2" sink_node_id="1" source_channel="Embeddings"
          sink_channel="Embeddings" enabled="true" source_channel_id="embeddings" sink_channel_id="data" />
  </links>
  <annotations />
  <node_properties>
    <properties node_id="0" format="pickle">{importer}</properties>
    <properties node_id="1" format="pickle">{grid}</properties>
    <properties node_id="2" format="pickle">{embedder}</properties>
  </node_properties>
  <session_state>
    <window_groups>
      <group name="Screenshot" default="true">
        <window_state node_id="1">{state}</window_state>
      </group>
    </window_groups>
  </session_state>
</scheme>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


GRAB = """
import sys
from AnyQt.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
x, y, w, h = map(int, sys.argv[2:6])
shot = QApplication.primaryScreen().grabWindow(0)
shot.copy(x, y, w, h).save(sys.argv[1])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--display", default=":93")
    parser.add_argument("--out", default=os.path.join(ROOT, "doc", "widgets", "images",
                                                      "imagegrid.png"))
    parser.add_argument("--wait", type=float, default=25.0)
    args = parser.parse_args()
    env = dict(os.environ, DISPLAY=args.display)
    env.pop("QT_QPA_PLATFORM", None)
    xvfb = None
    if subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode != 0 \
            if _has("xdpyinfo") else True:
        xvfb = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1600x1000x24"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
    with tempfile.TemporaryDirectory() as tmp:
        ows = os.path.join(tmp, "imagegrid.ows")
        workflow(ows)
        canvas = subprocess.Popen(
            [sys.executable, "-m", "Orange.canvas", "--no-splash", "--no-welcome", ows],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(args.wait)
            geometry = find_window("Image Grid", env) or GEOMETRY
            subprocess.run([sys.executable, "-c", GRAB, args.out, *map(str, geometry)],
                           env=env, check=True)
        finally:
            canvas.terminate()
            canvas.wait(10)
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(10)
    print(args.out)


def find_window(title: str, env) -> tuple[int, int, int, int] | None:
    """Where the window of this title lies on the screen (from xwininfo)."""
    import re

    if not _has("xwininfo"):
        return None
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True,
                          text=True, check=False).stdout
    for line in tree.splitlines():
        # 0x20000d "Image Viewer — Orange": (...)  938x626+320+145  +320+145
        match = re.search(r'"%s[^"]*":.*?\s(\d+)x(\d+)[+-]\d+[+-]\d+\s+\+(-?\d+)\+(-?\d+)'
                          % re.escape(title), line)
        if match:
            w, h, x, y = map(int, match.groups())
            if w > 200 and h > 200:
                return max(0, x), max(0, y), w, h
    return None


def _has(program: str) -> bool:
    from shutil import which
    return which(program) is not None


if __name__ == "__main__":
    main()
