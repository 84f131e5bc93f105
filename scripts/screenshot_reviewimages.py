#!/usr/bin/env python3
"""Take the Review Images help page's screenshot in the real canvas.

Builds a small photo collection in a temporary folder from the example
photos (some of them copied, re-saved at a low quality, halved, converted to
PNG, and one each blurred, darkened and burnt out), writes a workflow
Import Images → Review Images whose Review Images window opens by itself,
opens it in Orange's canvas on an X display (Xvfb) and keeps the window's
part in doc/widgets/images/reviewimages.png.

    python scripts/screenshot_reviewimages.py [--display :94] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
"""
import os
import shutil
import tempfile

import numpy as np
from canvas_screenshot import ROOT, arguments, shoot, write_workflow
from PIL import Image, ImageFilter

PHOTOS = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "new")
GEOMETRY = (40, 40, 1100, 680)  # x, y, width, height of the widget window


def _exposed(im: Image.Image, factor: float) -> Image.Image:
    x = (np.asarray(im, dtype=np.float32) / 255.0) ** 2.2
    x = np.clip(x * factor, 0, 1) ** (1 / 2.2)
    return Image.fromarray((x * 255 + 0.5).astype(np.uint8))


def make_collection(folder: str) -> None:
    names = ["new-02.jpg", "new-07.jpg", "new-11.jpg", "new-14.jpg", "new-19.jpg",
             "new-21.jpg", "new-24.jpg", "new-25.jpg"]
    for name in names:
        shutil.copy(os.path.join(PHOTOS, name), os.path.join(folder, name))
        os.utime(os.path.join(folder, name), (1_700_000_000, 1_700_000_000))

    def save(name, im, **kwargs):
        im.save(os.path.join(folder, name), **kwargs)

    def photo(name):
        return Image.open(os.path.join(PHOTOS, name)).convert("RGB")

    shutil.copy(os.path.join(PHOTOS, "new-02.jpg"), os.path.join(folder, "new-02 (copy).jpg"))
    save("new-02-small.jpg", photo("new-02.jpg").resize((128, 96)), quality=90)
    save("new-07-export.jpg", photo("new-07.jpg"), quality=25)
    save("new-07.png", photo("new-07.jpg"))
    save("new-11-edit.jpg", photo("new-11.jpg").crop((8, 6, 248, 186)), quality=90)
    save("blurred.jpg", photo("new-13.jpg").filter(ImageFilter.GaussianBlur(3)), quality=90)
    save("dark.jpg", _exposed(photo("new-18.jpg"), 1 / 40), quality=90)
    save("burnt.jpg", _exposed(photo("new-20.jpg"), 12), quality=90)


def workflow(path: str, folder: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (150, 150),
         {"recent_paths": [RecentPath(folder, None, None)], "__version__": 1}),
        ("owreviewimages.OWReviewImages", "Review Images", (350, 150),
         {"strictness": 2, "controlAreaVisible": True, "__version__": 1}),
    ], [(0, "Data", "data", 1, "Data", "data")], shown=1, geometry=GEOMETRY)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], ":94", "reviewimages.png")
    with tempfile.TemporaryDirectory(prefix="review-shot-") as tmp:
        folder = os.path.join(tmp, "Holidays")
        os.makedirs(folder)
        make_collection(folder)
        shoot(lambda path: workflow(path, folder), "Review Images", GEOMETRY, args)


if __name__ == "__main__":
    main()
