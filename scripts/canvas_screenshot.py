"""Take a widget's screenshot in the real canvas: shared by the help-page scripts.

A script writes a workflow whose widget window opens by itself (a default
window group with the window's saved geometry, see :func:`window_state`);
:func:`shoot` opens it in Orange's canvas on an X display (starting Xvfb
unless one runs there already), grabs the screen from a second Qt process
and keeps the widget window's part.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from shutil import which

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES_DIR = os.path.join(ROOT, "doc", "widgets", "images")
PREFIX = "orangecontrib.imageanalytics.widgets."

GRAB = """
import sys
from AnyQt.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
x, y, w, h = map(int, sys.argv[2:6])
shot = QApplication.primaryScreen().grabWindow(0)
shot.copy(x, y, w, h).save(sys.argv[1])
"""


def window_state(geometry) -> bytes:
    """A widget window's saved geometry (x, y, width, height), as the canvas stores it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from AnyQt.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication(["x"])
    w = QWidget()
    w.setGeometry(*geometry)
    data = bytes(w.saveGeometry())
    del app
    return data


def write_workflow(path: str, nodes, links, shown: int, geometry) -> None:
    """Write a workflow whose node ``shown`` opens its window by itself.

    ``nodes``: (widget class under ``PREFIX``, title, (x, y), settings);
    ``links``: (source node, output name, output id, sink node, input name,
    input id). Settings are stored pickled, as the canvas stores them.
    """
    import base64
    import pickle

    def props(settings):
        return base64.b64encode(pickle.dumps(settings, protocol=4)).decode()

    node_xml = "".join(
        f'    <node id="{i}" name="{title}" qualified_name="{PREFIX}{cls}"\n'
        f'          project_name="Orange3-ImageAnalytics" version="" title="{title}"\n'
        f'          position="{tuple(pos)}" />\n'
        for i, (cls, title, pos, _) in enumerate(nodes))
    link_xml = "".join(
        f'    <link id="{i}" source_node_id="{src}" sink_node_id="{dst}" '
        f'source_channel="{out}" sink_channel="{inp}" enabled="true" '
        f'source_channel_id="{out_id}" sink_channel_id="{inp_id}" />\n'
        for i, (src, out, out_id, dst, inp, inp_id) in enumerate(links))
    props_xml = "".join(
        f'    <properties node_id="{i}" format="pickle">{props(settings)}</properties>\n'
        for i, (*_, settings) in enumerate(nodes))
    state = base64.b64encode(window_state(geometry)).decode()
    text = f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Photos" description="">
  <nodes>
{node_xml}  </nodes>
  <links>
{link_xml}  </links>
  <annotations />
  <node_properties>
{props_xml}  </node_properties>
  <session_state>
    <window_groups>
      <group name="Screenshot" default="true">
        <window_state node_id="{shown}">{state}</window_state>
      </group>
    </window_groups>
  </session_state>
</scheme>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def arguments(description: str, display: str, png: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--display", default=display)
    parser.add_argument("--out", default=os.path.join(IMAGES_DIR, png))
    parser.add_argument("--wait", type=float, default=25.0)
    return parser.parse_args()


def shoot(write_workflow, title: str, geometry, args: argparse.Namespace, *,
          folder: str | None = None) -> None:
    """Open the workflow ``write_workflow(path)`` writes; save window ``title``.

    The workflow is written into ``folder`` (a hidden file, removed
    afterwards) when given, else into a temporary folder.
    """
    env = dict(os.environ, DISPLAY=args.display)
    env.pop("QT_QPA_PLATFORM", None)
    xvfb = None
    if subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode != 0 \
            if _has("xdpyinfo") else True:
        xvfb = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1600x1000x24"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
    with tempfile.TemporaryDirectory() as tmp:
        ows = os.path.join(folder or tmp, f".screenshot-{os.getpid()}.ows")
        write_workflow(ows)
        canvas = subprocess.Popen(
            [sys.executable, "-m", "Orange.canvas", "--no-splash", "--no-welcome", ows],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(args.wait)
            where = find_window(title, env) or geometry
            subprocess.run([sys.executable, "-c", GRAB, args.out, *map(str, where)],
                           env=env, check=True)
        finally:
            canvas.terminate()
            canvas.wait(10)
            if folder is not None:
                os.remove(ows)
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(10)
    print(args.out)


def find_window(title: str, env) -> tuple[int, int, int, int] | None:
    """Where the window of this title lies on the screen (from xwininfo)."""
    if not _has("xwininfo"):
        return None
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True,
                          text=True, check=False).stdout
    for line in tree.splitlines():
        # 0x20000d "Image Viewer — Orange": (...)  938x626+320+145  +320+145
        match = re.search(re.escape(f'"{title}') + r'[^"]*":.*?\s(\d+)x(\d+)'
                          r'[+-]\d+[+-]\d+\s+\+(-?\d+)\+(-?\d+)', line)
        if match:
            w, h, x, y = map(int, match.groups())
            if w > 200 and h > 200:
                return max(0, x), max(0, y), w, h
    return None


def _has(program: str) -> bool:
    return which(program) is not None
