#!/usr/bin/env python3
"""Take the Image Grid help page's screenshot in the real canvas.

Writes a workflow Import Images (the example photos) → Image Embedding
(SqueezeNet, local) → Image Grid whose grid window opens by itself (a default window group), opens it in Orange's
canvas on an X display (Xvfb), grabs the screen from a second Qt process and
keeps the grid window's part in doc/widgets/images/imagegrid.png.

    python scripts/screenshot_imagegrid.py [--display :93] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
"""
import os

from canvas_screenshot import ROOT, arguments, shoot, write_workflow

IMAGES = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
GEOMETRY = (40, 40, 1000, 640)  # x, y, width, height of the grid window


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    from orangecontrib.imageanalytics.import_images import ImportImages

    # two groups marked, as a user would: the temples and the flowers (the
    # grid keeps groups by image value)
    table, _ = ImportImages()(IMAGES)
    categories = table.domain.class_var.values
    marked = {"temple": 1, "flower": 2}
    groups = {image: marked[categories[int(c)]]
              for image, c in zip(table.get_column("image"), table.Y, strict=True)
              if categories[int(c)] in marked}
    write_workflow(path, [
        ("owimageimport.OWImportImages", "Import Images", (150, 150),
         {"recent_paths": [RecentPath(IMAGES, None, None)], "__version__": 1}),
        ("owimagegrid.OWImageGrid", "Image Grid", (550, 150),
         {"cell_fit": "Crop", "auto_commit": True, "selection": groups,
          "rows": 7, "columns": 8, "keep_size": True, "zoom_to_fit": True,
          "__version__": 3, "controlAreaVisible": True}),
        ("owimageembedding.OWImageEmbedding", "Image Embedding", (350, 150),
         {"cb_embedder_current_id": 1, "_auto_apply": True}),
    ], [
        (0, "Data", "data", 2, "Images", "images"),
        (2, "Embeddings", "embeddings", 1, "Embeddings", "data"),
    ], shown=1, geometry=GEOMETRY)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], ":93", "imagegrid.png")
    shoot(workflow, "Image Grid", GEOMETRY, args)


if __name__ == "__main__":
    main()
