#!/usr/bin/env python3
"""Take the screenshot of Image Viewer's preview window in the real canvas.

Writes a workflow Import Images (the example photos) → Image Viewer whose
viewer window opens by itself on a 1600 × 1000 screen; opens it in
Orange's canvas on an X display (Xvfb, with the openbox window manager, so
that windows have frames and title bars as on a desktop), moves the viewer
low on the screen, clicks into the thumbnails, presses Space and moves on
with the right arrow key (xdotool), then grabs the screen from a second Qt
process. Keeps the preview window
with its frame in doc/widgets/images/imageviewer-preview.png, and the whole
screen with ``--screen PNG`` to check where the window opened.

    python scripts/screenshot_preview.py [--display :95] [--out PNG] [--screen PNG]

Needs Xvfb, openbox and xdotool; Xvfb is started on the display unless one
runs there already. Prints the preview window's frame and the screen size.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from shutil import which

from canvas_screenshot import GRAB, IMAGES_DIR, ROOT, find_window, write_workflow

IMAGES = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
SCREEN = (1600, 1000)
GEOMETRY = (380, 330, 1000, 640)
#: where the viewer window is moved before Space: so low on the screen that a
#: preview centred on it would reach below the screen's edge
LOW = (380, 440)


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (150, 150),
         {"recent_paths": [RecentPath(IMAGES, None, None)], "__version__": 1}),
        ("owimageviewer.OWImageViewer", "Image Viewer", (350, 150),
         {"imageSize": 112, "autoCommit": True, "__version__": 2,
          "controlAreaVisible": True}),
    ], [(0, "Data", "data", 1, "Data", "data")], shown=1, geometry=GEOMETRY)


def xdotool(env, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True,
                          check=False).stdout.strip()


def frame_of(window: str, env) -> tuple[int, int, int, int] | None:
    """The window with its frame: x, y, width, height on the screen."""
    info = subprocess.run(["xwininfo", "-id", window], env=env, capture_output=True,
                          text=True, check=False).stdout
    fields = {}
    for line in info.splitlines():
        key, _, value = line.strip().partition(":")
        if value.strip().lstrip("-").isdigit():
            fields[key] = int(value)
    if "Width" not in fields:
        return None
    x, y = fields["Absolute upper-left X"], fields["Absolute upper-left Y"]
    w, h = fields["Width"], fields["Height"]
    extents = subprocess.run(["xprop", "-id", window, "_NET_FRAME_EXTENTS"], env=env,
                             capture_output=True, text=True, check=False).stdout
    left = right = top = bottom = 0
    if "=" in extents:
        left, right, top, bottom = (int(v) for v in extents.split("=")[1].split(","))
    return x - left, y - top, w + left + right, h + top + bottom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--display", default=":95")
    parser.add_argument("--out", default=os.path.join(IMAGES_DIR, "imageviewer-preview.png"))
    parser.add_argument("--screen", default=None, help="also save the whole screen here")
    parser.add_argument("--wait", type=float, default=25.0)
    parser.add_argument("--next", type=int, default=21,
                        help="images to move on (right arrow) before the shot")
    args = parser.parse_args()
    for program in ("Xvfb", "xdotool"):
        if which(program) is None:
            raise SystemExit(f"{program} is needed")
    env = dict(os.environ, DISPLAY=args.display)
    env.pop("QT_QPA_PLATFORM", None)
    started = []
    if subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode != 0:
        started.append(subprocess.Popen(
            ["Xvfb", args.display, "-screen", "0", "{}x{}x24".format(*SCREEN)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2)
        if which("openbox"):
            started.append(subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            time.sleep(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ows = os.path.join(tmp, "preview.ows")
            workflow(ows)
            canvas = subprocess.Popen(
                [sys.executable, "-m", "Orange.canvas", "--no-splash", "--no-welcome", ows],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                shoot(args, env)
            finally:
                canvas.terminate()
                canvas.wait(10)
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(10)


def shoot(args, env) -> None:
    time.sleep(args.wait)
    # the window manager places new windows itself: move the viewer down
    for window in xdotool(env, "search", "--onlyvisible", "--name", "Image Viewer").split():
        xdotool(env, "windowmove", window, *map(str, LOW))
    time.sleep(1)
    viewer = find_window("Image Viewer", env)
    if viewer is None:
        raise SystemExit("the viewer window did not open")
    x, y, w, h = viewer
    # into the thumbnails (right of the controls), then Space
    xdotool(env, "mousemove", str(x + 420), str(y + 90), "click", "1")
    time.sleep(1)
    xdotool(env, "key", "space")
    time.sleep(2)
    # on to a photo with the arrow key, as a user looks through them
    for _ in range(args.next):
        xdotool(env, "key", "Right")
        time.sleep(0.2)
    time.sleep(3)
    windows = xdotool(env, "search", "--onlyvisible", "--name", r"\.jpg").split()
    if not windows:
        raise SystemExit("the preview window did not open")
    frame = frame_of(windows[-1], env)
    inside = frame[0] >= 0 and frame[1] >= 0 and frame[0] + frame[2] <= SCREEN[0] \
        and frame[1] + frame[3] <= SCREEN[1]
    print("viewer window:", viewer, "preview window with frame (x, y, width, height):",
          frame, "screen: {}x{},".format(*SCREEN), "inside" if inside else "NOT inside")
    if args.screen:
        subprocess.run([sys.executable, "-c", GRAB, args.screen, "0", "0", *map(str, SCREEN)],
                       env=env, check=True)
    subprocess.run([sys.executable, "-c", GRAB, args.out, *map(str, frame)], env=env,
                   check=True)
    print(args.out)


if __name__ == "__main__":
    main()
