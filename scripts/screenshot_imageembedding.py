#!/usr/bin/env python3
"""Take the Image Embedding help page's screenshot in the real canvas.

Writes a workflow Import Images (the labelled example photos) → Image
Embedding (SqueezeNet on this computer) whose Image Embedding window opens by
itself, opens it in Orange's canvas on an X display (Xvfb) and keeps the
window's part in doc/widgets/images/imageembedding.png.

    python scripts/screenshot_imageembedding.py [--display :95] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
Look at the picture before you keep it.
"""
import os

from canvas_screenshot import ROOT, arguments, shoot, write_workflow

PHOTOS = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
GEOMETRY = (60, 60, 340, 360)  # x, y, width, height of the widget window


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (150, 150),
         {"recent_paths": [RecentPath(PHOTOS, None, None)], "__version__": 1}),
        ("owimageembedding.OWImageEmbedding", "Image Embedding", (350, 150),
         {"embedder": "squeezenet", "controlAreaVisible": True}),
    ], [(0, "Data", "data", 1, "Images", "images")], shown=1, geometry=GEOMETRY)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], ":95", "imageembedding.png")
    shoot(workflow, "Image Embedding", GEOMETRY, args)


if __name__ == "__main__":
    main()
