#!/usr/bin/env python3
"""Write the example workflow tutorials/classify-example-images.ows.

    Import Images (../examples/images) → Image Embedding (SqueezeNet)
        → Data Table
        → Test and Score ← Logistic Regression
        → Distances (cosine) → Hierarchical Clustering

The workflow is built with orange-canvas-core's scheme API from the widget
descriptions the canvas discovers (entry points), and every node's
properties are what the widget's own settings handler packs, as when the
canvas saves a workflow. Each widget is created headless once, with the
settings chosen here, and asked for its settings.

Import Images stores its folder as a RecentPath relative to the workflow's
folder ('basedir' prefix, relpath '../examples/images'); the widget resolves
that against the folder of the opened .ows, so the workflow works from any
checkout. The RecentPath's absolute path is only the widget's fallback when
the workflow's folder is unknown; a fixed, machine-independent one keeps the
file byte-identical wherever it is generated.

Deterministic: the same output for the same Orange and add-on. User-wide
widget defaults are not read (a temporary settings folder is used).

    python scripts/make_tutorial_workflow.py [--check] [OUT]

With --check, nothing is written; the exit status tells whether OUT (the
tutorial by default) is up to date.
"""
from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWS_PATH = os.path.join(REPO, "tutorials", "classify-example-images.ows")

TITLE = "Classify example images"
DESCRIPTION = (
    "Images from three folders (digit, flower, temple) are turned into "
    "feature vectors by SqueezeNet, on this computer. Logistic regression "
    "learns to tell the categories apart (Test and Score), and hierarchical "
    "clustering shows which images the embedding finds similar.")

#: The folder of Import Images, relative to the workflow's folder.
IMAGES_RELPATH = "../examples/images"
#: Only tried when the workflow's folder is unknown; machine-independent.
IMAGES_ABSPATH = "/orange3-imageanalytics/examples/images"

IMPORT_IMAGES = "orangecontrib.imageanalytics.widgets.owimageimport." \
                "OWImportImages"
IMAGE_EMBEDDING = "orangecontrib.imageanalytics.widgets.owimageembedding." \
                  "OWImageEmbedding"
DATA_TABLE = "Orange.widgets.data.owtable.OWTable"
TEST_AND_SCORE = "Orange.widgets.evaluate.owtestandscore.OWTestAndScore"
LOGISTIC_REGRESSION = "Orange.widgets.model.owlogisticregression." \
                      "OWLogisticRegression"
DISTANCES = "Orange.widgets.unsupervised.owdistances.OWDistances"
HIERARCHICAL_CLUSTERING = "Orange.widgets.unsupervised." \
                          "owhierarchicalclustering.OWHierarchicalClustering"

#: (key, qualified name, position)
NODES = [
    ("import", IMPORT_IMAGES, (100, 200)),
    ("embed", IMAGE_EMBEDDING, (250, 200)),
    ("table", DATA_TABLE, (450, 60)),
    ("distances", DISTANCES, (450, 180)),
    ("clustering", HIERARCHICAL_CLUSTERING, (600, 180)),
    ("test", TEST_AND_SCORE, (450, 300)),
    ("learner", LOGISTIC_REGRESSION, (250, 360)),
]

#: (source key, output, sink key, input), by channel name
LINKS = [
    ("import", "Data", "embed", "Images"),
    ("embed", "Embeddings", "table", "Data"),
    ("embed", "Embeddings", "distances", "Data"),
    ("distances", "Distances", "clustering", "Distances"),
    ("embed", "Embeddings", "test", "Data"),
    ("learner", "Learner", "test", "Learner"),
]

#: ((x, y, width, height), text)
ANNOTATIONS = [
    ((20, 60, 200, 90),
     ("1. Import Images reads examples/images. Each sub-folder (digit, "
      "flower, temple) is a category.")),
    ((170, 250, 160, 80),
     ("2. Image Embedding turns each image into 1,000 numbers with "
      "SqueezeNet.")),
    ((560, 40, 220, 100),
     ("3. Open Hierarchical Clustering and set Annotations to 'category' "
      "or 'image name': are the images of one folder together?")),
    ((560, 280, 220, 100),
     ("4. Open Test and Score: how accurately does logistic regression "
      "predict the category from the embedding (5-fold cross-validation)?")),
]


def _settings_overrides() -> dict[str, dict]:
    """Settings chosen for the tutorial; anything else is the default."""
    from Orange.widgets.unsupervised.owdistances import Cosine

    return {
        IMAGE_EMBEDDING: {"embedder": "squeezenet", "auto_apply": True},
        # cosine distance suits embeddings better than Euclidean
        DISTANCES: {"metric_id": Cosine},
    }


def discover_widgets():
    """A registry with the widgets the canvas would find (entry points)."""
    from Orange.canvas.config import Config
    from orangecanvas.registry import WidgetRegistry

    registry = WidgetRegistry()
    Config.widget_discovery(registry).run(Config.widgets_entry_points())
    return registry


def _widget_class(qualified_name: str):
    module, _, name = qualified_name.rpartition(".")
    return getattr(importlib.import_module(module), name)


def widget_properties(qualified_name: str, stored_settings: dict | None,
                      basedir: str) -> dict:
    """Create the widget headless and pack its settings as the canvas does."""
    cls = _widget_class(qualified_name)
    # class-level defaults only, never what a user chose before
    cls.settingsHandler.defaults = {}
    if stored_settings is not None:
        # settings of this version: they need no migration
        stored_settings = {**stored_settings,
                           "__version__": cls.settings_version}
    widget = cls.__new__(cls, signal_manager=None,
                         stored_settings=stored_settings,
                         env={"basedir": basedir})
    widget.__init__()
    try:
        return widget.settingsHandler.pack_data(widget)
    finally:
        widget.onDeleteWidget()
        widget.deleteLater()


def images_recent_path():
    from Orange.widgets.utils.filedialogs import RecentPath

    return RecentPath(IMAGES_ABSPATH, "basedir", IMAGES_RELPATH)


def build_scheme(registry, basedir: str):
    """The tutorial's workflow (orangecanvas.scheme.Scheme)."""
    from orangecanvas.scheme import (
        Scheme,
        SchemeLink,
        SchemeNode,
        SchemeTextAnnotation,
    )

    overrides = _settings_overrides()
    scheme = Scheme(title=TITLE, description=DESCRIPTION)
    nodes = {}
    for key, qualified_name, position in NODES:
        description = registry.widget(qualified_name)
        properties = widget_properties(
            qualified_name, overrides.get(qualified_name), basedir)
        if qualified_name == IMPORT_IMAGES:
            # the widget keeps a folder outside the workflow's folder as an
            # absolute path; store it relative to the workflow instead, in
            # the form the widget resolves against the workflow's folder
            properties["recent_paths"] = [images_recent_path()]
        node = SchemeNode(description, title=description.name,
                          position=position, properties=properties)
        scheme.add_node(node)
        nodes[key] = node
    for source, output, sink, input_ in LINKS:
        source_node, sink_node = nodes[source], nodes[sink]
        scheme.add_link(SchemeLink(
            source_node, source_node.output_channel(output),
            sink_node, sink_node.input_channel(input_)))
    for rect, text in ANNOTATIONS:
        scheme.add_annotation(SchemeTextAnnotation(rect, text))
    return scheme


def workflow_bytes() -> bytes:
    """The .ows file's contents."""
    from AnyQt.QtWidgets import QApplication
    from orangecanvas.scheme import readwrite
    from orangewidget.settings import set_widget_settings_dir_components

    app = QApplication.instance() or QApplication([])  # noqa: F841
    with tempfile.TemporaryDirectory() as settings_dir:
        # before any widget class is defined: user defaults stay unread
        set_widget_settings_dir_components(settings_dir, "tutorial")
        registry = discover_widgets()
        scheme = build_scheme(registry, os.path.dirname(OWS_PATH))
        stream = io.BytesIO()
        # Import Images' RecentPath is no Python literal: the reader logs
        # the pickle fallback with a traceback, which is expected here
        logging.getLogger("orangecanvas.scheme.readwrite").setLevel(
            logging.ERROR)
        # as the canvas saves (canvasmain.save_scheme_to)
        readwrite.scheme_to_ows_stream(scheme, stream, pretty=True,
                                       pickle_fallback=True)
    return stream.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=OWS_PATH)
    parser.add_argument("--check", action="store_true",
                        help="only tell whether OUT is up to date")
    args = parser.parse_args(argv)
    data = workflow_bytes()
    if args.check:
        try:
            with open(args.out, "rb") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != data:
            print(f"{args.out} is out of date; run {sys.argv[0]}",
                  file=sys.stderr)
            return 1
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
