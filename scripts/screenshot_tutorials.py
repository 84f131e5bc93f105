#!/usr/bin/env python3
"""Take the tutorials' screenshots, and widget windows of them, in the real canvas.

Each example workflow of orangecontrib/imageanalytics/tutorials is opened
in Orange's canvas on an X display (Xvfb) and the canvas window is saved as
tutorials/<name>.png. With --widget, the workflow opens with that widget's
window shown (a default window group with the window's geometry) and only
that window is saved, for a help page:

    python scripts/screenshot_tutorials.py                      # all tutorials
    python scripts/screenshot_tutorials.py --only label-new-photos
    python scripts/screenshot_tutorials.py --only classify-example-images \\
        --widget "Import Images" --out doc/widgets/images/importimages.png

The workflow is copied beside the tutorials (a hidden file, removed
afterwards) so that Import Images finds the photos as it does from the
installed package. Needs Xvfb; it is started unless a display runs already.
"""
import argparse
import base64
import os
import re
import sys

from canvas_screenshot import ROOT, shoot, window_state

TUTORIALS = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials")
OUT = os.path.join(ROOT, "tutorials")
CANVAS_GEOMETRY = (0, 0, 1280, 800)
WIDGET_GEOMETRY = (60, 60, 1000, 640)


def with_open_window(text: str, title: str, geometry) -> str:
    """The workflow ``text`` with the window of node ``title`` opening by itself."""
    match = re.search(r'<node id="(\d+)"[^>]*title="' + re.escape(title) + '"',
                      text)
    if match is None:
        raise SystemExit(f"no node titled {title!r}")
    state = base64.b64encode(window_state(geometry)).decode()
    group = (f'<window_groups><group name="Screenshot" default="true">'
             f'<window_state node_id="{match.group(1)}">{state}</window_state>'
             f'</group></window_groups>')
    return re.sub(r"<window_groups\s*/>|<window_groups>.*?</window_groups>", group,
                  text, count=1, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="one tutorial (file name without .ows)")
    parser.add_argument("--widget", help="show and save this node's window")
    parser.add_argument("--out", help="the PNG (with --only)")
    parser.add_argument("--display", default=":93")
    parser.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()
    names = [args.only] if args.only else sorted(
        f[:-4] for f in os.listdir(TUTORIALS) if f.endswith(".ows"))
    for name in names:
        with open(os.path.join(TUTORIALS, name + ".ows"), encoding="utf-8") as f:
            text = f.read()
        if args.widget:
            text = with_open_window(text, args.widget, WIDGET_GEOMETRY)
            title, geometry = args.widget, WIDGET_GEOMETRY
        else:
            # the canvas window's title is the workflow's file name
            title, geometry = ".screenshot-", CANVAS_GEOMETRY
        shot = argparse.Namespace(
            display=args.display, wait=args.wait,
            out=os.path.abspath(args.out) if args.out and args.only
            else os.path.join(OUT, name + ".png"))

        def write(path, text=text):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)

        shoot(write, title, geometry, shot, folder=TUTORIALS)


if __name__ == "__main__":
    sys.exit(main())
