#!/usr/bin/env python3
"""Take the Image Viewer help page's screenshot in the real canvas.

Writes a workflow Import Images (the example photos) → Image Viewer whose
viewer window opens by itself (a default window group), opens it in Orange's
canvas on an X display (Xvfb), grabs the screen from a second Qt process and
keeps the viewer window's part in doc/widgets/images/imageviewer.png.

    python scripts/screenshot_imageviewer.py [--display :91] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
"""
import os

from canvas_screenshot import ROOT, arguments, shoot, write_workflow

IMAGES = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
GEOMETRY = (40, 40, 1000, 640)  # x, y, width, height of the viewer window


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (150, 150),
         {"recent_paths": [RecentPath(IMAGES, None, None)], "__version__": 1}),
        ("owimageviewer.OWImageViewer", "Image Viewer", (350, 150),
         {"imageSize": 112, "autoCommit": True, "__version__": 2,
          "controlAreaVisible": True}),
    ], [(0, "Data", "data", 1, "Data", "data")], shown=1, geometry=GEOMETRY)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], ":91", "imageviewer.png")
    shoot(workflow, "Image Viewer", GEOMETRY, args)


if __name__ == "__main__":
    main()
