#!/usr/bin/env python3
"""Take the Image Grid help page's screenshot in the real canvas.

Writes a workflow Import Images (the example photos) → Image Embedding
(SqueezeNet, local) → Image Grid whose grid window opens by itself (a
default window group), opens it in Orange's
canvas on an X display (Xvfb), grabs the screen from a second Qt process and
keeps the grid window's part in doc/widgets/images/imagegrid.png.

    python scripts/screenshot_imagegrid.py [--display :93] [--out PNG]

With ``--large FOLDER`` the workflow imports FOLDER instead (say the
100,000 photos of the benchmarks), the photos of its ``--mark`` category
marked, and the shot of the whole grid as an overview map goes to
doc/widgets/images/imagegrid-map.png; ``--cache DIR`` names the cache folder
whose embeddings it uses (``ORANGE_IMAGEANALYTICS_CACHE_DIR``), and
``--wait`` should leave time for the layout and the colours.

Needs Xvfb; it is started on the display unless one runs there already.
"""
import argparse
import os
import sys

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


def large_workflow(folder: str, category: str):
    def write(path: str) -> None:
        from Orange.widgets.utils.filedialogs import RecentPath

        from orangecontrib.imageanalytics.import_images import ImportImages

        table, _ = ImportImages()(folder)
        names = table.domain.class_var.values
        groups = {image: 1 for image, c in
                  zip(table.get_column("image"), table.Y, strict=True)
                  if names[int(c)] == category}
        write_workflow(path, [
            ("owimageimport.OWImportImages", "Import Images", (150, 150),
             {"recent_paths": [RecentPath(folder, None, None)], "__version__": 1}),
            ("owimagegrid.OWImageGrid", "Image Grid", (550, 150),
             {"cell_fit": "Crop", "auto_commit": True, "selection": groups,
              "zoom_to_fit": True, "__version__": 3, "controlAreaVisible": True}),
            ("owimageembedding.OWImageEmbedding", "Image Embedding", (350, 150),
             {"cb_embedder_current_id": 1, "_auto_apply": True}),
        ], [
            (0, "Data", "data", 2, "Images", "images"),
            (2, "Embeddings", "embeddings", 1, "Embeddings", "data"),
        ], shown=1, geometry=GEOMETRY)
    return write


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--large")
    extra.add_argument("--mark", default="landscape")
    extra.add_argument("--cache")
    large, rest = extra.parse_known_args()
    sys.argv[1:] = rest
    if large.large is None:
        args = arguments(__doc__.split("\n")[0], ":93", "imagegrid.png")
        shoot(workflow, "Image Grid", GEOMETRY, args)
        return
    if large.cache:
        os.environ["ORANGE_IMAGEANALYTICS_CACHE_DIR"] = large.cache
    args = arguments(__doc__.split("\n")[0], ":93", "imagegrid-map.png")
    shoot(large_workflow(os.path.abspath(large.large), large.mark), "Image Grid",
          GEOMETRY, args)


if __name__ == "__main__":
    main()
