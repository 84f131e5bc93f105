#!/usr/bin/env python3
"""Write the example workflows in orangecontrib/imageanalytics/tutorials/.

Four workflows, for the canvas's example workflows (entry point group
``orange.widgets.tutorials``), all on the photos beside them (see
scripts/make_examples.py):

classify-example-images.ows
    Import Images → Image Embedding (SqueezeNet) → Data Table,
    Distances (cosine) → Hierarchical Clustering, Test and Score ← Logistic
    Regression: a first lesson for a class.
sort-photos-by-similarity.ows
    Import Images → Image Embedding → Image Grid → Save Images (the marked
    groups as folders); the grid's selection → Image Viewer.
label-new-photos.ows
    labelled folders → Image Embedding → Test and Score and Logistic
    Regression (→ Save Model); the new photos → Image Embedding →
    Predictions → Image Viewer (titles: the predicted class) → Save Images
    (folders by the prediction).
review-photo-collection.ows
    Import Images → Review Images → Save Images (the unique photos) and →
    Image Viewer (the duplicates left out).

Each workflow is built with orange-canvas-core's scheme API from the widget
descriptions the canvas discovers (entry points), and every node's
properties are what the widget's own settings handler packs, as when the
canvas saves a workflow: each widget is created headless once with the
settings chosen here (context settings are chosen on a table of the domain
the widget will receive) and asked for its settings.

Import Images stores its folder as a RecentPath relative to the workflow's
folder ('basedir' prefix); the widget resolves that against the folder of
the opened .ows, so the workflows work from the installed package and from
a checkout. The RecentPath's absolute path is only the widget's fallback
when the workflow's folder is unknown; a fixed, machine-independent one
keeps the files byte-identical wherever they are generated.

Deterministic: the same output for the same Orange and add-on. User-wide
widget defaults are not read (a temporary settings folder is used).

    python scripts/make_tutorial_workflow.py [--check] [OUT_DIR]

With --check, nothing is written; the exit status tells whether the files
in OUT_DIR (the package's tutorials by default) are up to date.
"""
from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "orangecontrib", "imageanalytics", "tutorials")
PHOTOS = os.path.join(OUT_DIR, "photos")

#: Only tried when the workflow's folder is unknown; machine-independent.
ABSPATH_PREFIX = "/orange3-imageanalytics/tutorials/"

WIDGETS = "orangecontrib.imageanalytics.widgets."
IMPORT_IMAGES = WIDGETS + "owimageimport.OWImportImages"
IMAGE_EMBEDDING = WIDGETS + "owimageembedding.OWImageEmbedding"
IMAGE_GRID = WIDGETS + "owimagegrid.OWImageGrid"
IMAGE_VIEWER = WIDGETS + "owimageviewer.OWImageViewer"
SAVE_IMAGES = WIDGETS + "owsaveimages.OWSaveImages"
REVIEW_IMAGES = WIDGETS + "owreviewimages.OWReviewImages"
DATA_TABLE = "Orange.widgets.data.owtable.OWTable"
TEST_AND_SCORE = "Orange.widgets.evaluate.owtestandscore.OWTestAndScore"
PREDICTIONS = "Orange.widgets.evaluate.owpredictions.OWPredictions"
LOGISTIC_REGRESSION = "Orange.widgets.model.owlogisticregression." \
                      "OWLogisticRegression"
SAVE_MODEL = "Orange.widgets.model.owsavemodel.OWSaveModel"
DISTANCES = "Orange.widgets.unsupervised.owdistances.OWDistances"
HIERARCHICAL_CLUSTERING = "Orange.widgets.unsupervised." \
                          "owhierarchicalclustering.OWHierarchicalClustering"

#: The prediction column that Predictions adds (the learner's name).
PREDICTION = "Logistic Regression"
#: The groups marked in the grid of the sorting tutorial: category → group.
MARKED_GROUPS = {"temple": 1, "flower": 2}


@dataclass
class Node:
    key: str
    qualified_name: str
    position: tuple[int, int]
    title: str | None = None
    settings: dict = field(default_factory=dict)
    #: Import Images: the photos' folder, relative to the workflow
    folder: str | None = None
    #: a callable(widget) run after the widget is created (contexts)
    prepare: object = None


@dataclass
class Workflow:
    filename: str
    title: str
    description: str
    nodes: list[Node]
    #: (source key, output, sink key, input), by channel name
    links: list[tuple[str, str, str, str]]
    #: ((x, y, width, height), text)
    annotations: list[tuple[tuple[int, int, int, int], str]]


def _embedding_settings() -> dict:
    return {"embedder": "squeezenet", "auto_apply": True}


def _classify() -> Workflow:
    from Orange.widgets.unsupervised.owdistances import Cosine

    return Workflow(
        "classify-example-images.ows",
        "Classify example images",
        "Photos from five folders (cartoon, digit, flower, portrait, temple) "
        "are turned into feature vectors by SqueezeNet, on this computer. "
        "Logistic regression learns to tell the categories apart (Test and "
        "Score), and hierarchical clustering shows which images the "
        "embedding finds similar.",
        [
            Node("import", IMPORT_IMAGES, (60, 200), folder="photos/labelled"),
            Node("embed", IMAGE_EMBEDDING, (190, 200),
                 settings=_embedding_settings()),
            Node("table", DATA_TABLE, (340, 60)),
            # cosine distance suits embeddings better than Euclidean
            Node("distances", DISTANCES, (340, 180), settings={"metric_id": Cosine}),
            Node("clustering", HIERARCHICAL_CLUSTERING, (480, 180)),
            Node("test", TEST_AND_SCORE, (340, 320)),
            Node("learner", LOGISTIC_REGRESSION, (190, 360)),
        ],
        [
            ("import", "Data", "embed", "Images"),
            ("embed", "Embeddings", "table", "Data"),
            ("embed", "Embeddings", "distances", "Data"),
            ("distances", "Distances", "clustering", "Distances"),
            ("embed", "Embeddings", "test", "Data"),
            ("learner", "Learner", "test", "Learner"),
        ],
        [
            ((0, 50, 200, 90),
             "1. Import Images reads the example photos. Each sub-folder "
             "(cartoon, digit, flower, portrait, temple) is a category."),
            ((100, 250, 160, 80),
             "2. Image Embedding turns each image into 1,000 numbers with "
             "SqueezeNet."),
            ((540, 40, 200, 110),
             "3. Open Hierarchical Clustering and set Annotations to "
             "'category' or 'image name': are the images of one folder "
             "together?"),
            ((470, 290, 260, 90),
             "4. Open Test and Score: how accurately does logistic regression "
             "predict the category from the embedding (5-fold "
             "cross-validation)?"),
        ])


def _photo_table(folder: str):
    """The table Import Images makes of ``folder`` (rows in its order)."""
    from orangecontrib.imageanalytics.import_images import ImportImages

    table, _ = ImportImages()(folder)
    return table


def _mark_groups(widget) -> None:
    """Image Grid: the temples in group 1, the flowers in group 2."""
    table = _photo_table(os.path.join(PHOTOS, "labelled"))
    categories = table.domain.class_var.values
    # the grid keeps groups by image value (the path relative to the folder)
    widget.selection = {
        image: MARKED_GROUPS[categories[int(c)]]
        for image, c in zip(table.get_column("image"), table.Y, strict=True)
        if categories[int(c)] in MARKED_GROUPS}


def _context(choices: dict, **variables):
    """A ``prepare`` that makes a widget's context settings ``choices``
    (setting → variable name) on a table like Import Images' with the extra
    discrete ``variables`` (name → values) among its metas."""
    def prepare(widget):
        import numpy as np
        from Orange.data import (
            ContinuousVariable,
            DiscreteVariable,
            Domain,
            StringVariable,
            Table,
        )

        image = StringVariable("image")
        image.attributes["type"] = "image"
        metas = [StringVariable("image name"), image,
                 ContinuousVariable("size"), ContinuousVariable("width"),
                 ContinuousVariable("height")]
        metas += [DiscreteVariable(name, values=values)
                  for name, values in variables.items()]
        by_name = {var.name: var for var in metas}
        row = ["a", "a.jpg", 1, 1, 1] + [0] * len(variables)
        table = Table.from_numpy(Domain([], None, metas), np.empty((1, 0)),
                                 None, np.array([row], dtype=object))
        widget.set_data(table)
        for setting, name in choices.items():
            setattr(widget, setting, by_name[name])
        # closes the context, which keeps the choices
        widget.set_data(None)
    return prepare


def _sort() -> Workflow:
    return Workflow(
        "sort-photos-by-similarity.ows",
        "Sort a photo collection by similarity",
        "Image Grid lays the photos out so that similar ones are neighbours. "
        "Mark groups on the grid and Save Images writes each group into its "
        "own folder; Image Viewer shows the marked photos.",
        [
            Node("import", IMPORT_IMAGES, (60, 200), folder="photos/labelled"),
            Node("embed", IMAGE_EMBEDDING, (190, 200),
                 settings=_embedding_settings()),
            Node("grid", IMAGE_GRID, (340, 200),
                 settings={"imageSize": 100, "rows": 8, "columns": 8,
                           "keep_size": True},
                 prepare=_mark_groups),
            Node("viewer", IMAGE_VIEWER, (490, 110)),
            Node("save", SAVE_IMAGES, (490, 290),
                 prepare=_context({"folders_by": "Group"},
                                  Group=("G1", "G2"))),
        ],
        [
            ("import", "Data", "embed", "Images"),
            ("embed", "Embeddings", "grid", "Embeddings"),
            ("grid", "Selected Images", "viewer", "Data"),
            ("grid", "Selected Images", "save", "Data"),
        ],
        [
            ((0, 60, 240, 90),
             "1. Import Images reads a folder of photos (here the example "
             "photos); Image Embedding describes each with 1,000 numbers."),
            ((200, 290, 220, 120),
             "2. Open Image Grid: similar photos sit together. Two groups "
             "are marked (temples, flowers). Drag with Shift to mark "
             "another group, Alt to unmark."),
            ((570, 80, 170, 60),
             "3. Image Viewer shows the marked photos."),
            ((570, 250, 170, 140),
             "4. In Save Images choose a folder and press Save: each group "
             "becomes a sub-folder (G1, G2, ...); nothing is overwritten."),
        ])


def _label() -> Workflow:
    categories = ("cartoon", "digit", "flower", "portrait", "temple")
    return Workflow(
        "label-new-photos.ows",
        "Train a model, label new photos, save them by label",
        "Logistic regression learns the categories of the labelled photos "
        "(Test and Score tells how well). It then predicts the category of "
        "new photos; Image Viewer shows them with the predicted category and "
        "Save Images writes them into a folder per category.",
        [
            Node("import", IMPORT_IMAGES, (50, 130), title="Labelled photos",
                 folder="photos/labelled"),
            Node("embed", IMAGE_EMBEDDING, (180, 130),
                 settings=_embedding_settings()),
            Node("test", TEST_AND_SCORE, (330, 60)),
            Node("learner", LOGISTIC_REGRESSION, (330, 210)),
            Node("savemodel", SAVE_MODEL, (470, 210)),
            Node("import_new", IMPORT_IMAGES, (50, 370), title="New photos",
                 folder="photos/new"),
            Node("embed_new", IMAGE_EMBEDDING, (180, 370), title="Image Embedding (new)",
                 settings=_embedding_settings()),
            Node("predictions", PREDICTIONS, (330, 370)),
            Node("viewer", IMAGE_VIEWER, (470, 370),
                 prepare=_context({"title_attr": PREDICTION},
                                  **{PREDICTION: categories})),
            Node("save", SAVE_IMAGES, (610, 370),
                 prepare=_context({"folders_by": PREDICTION},
                                  **{PREDICTION: categories})),
        ],
        [
            ("import", "Data", "embed", "Images"),
            ("embed", "Embeddings", "test", "Data"),
            ("learner", "Learner", "test", "Learner"),
            ("embed", "Embeddings", "learner", "Data"),
            ("learner", "Model", "savemodel", "Model"),
            ("import_new", "Data", "embed_new", "Images"),
            ("embed_new", "Embeddings", "predictions", "Data"),
            ("learner", "Model", "predictions", "Predictors"),
            ("predictions", "Predictions", "viewer", "Data"),
            ("viewer", "Data", "save", "Data"),
        ],
        [
            ((0, 0, 300, 60),
             "1. Photos in one sub-folder per category are embedded; Test "
             "and Score tells how well logistic regression learns them."),
            ((430, 40, 230, 70),
             "2. Save Model keeps the model for later (choose a file)."),
            ((0, 440, 300, 60),
             "3. New photos, without labels, are embedded the same way and "
             "Predictions gives each its category."),
            ((330, 440, 400, 70),
             "4. Image Viewer shows each new photo with its predicted "
             "category; Save Images writes them into a folder per "
             "category: choose a folder and press Save."),
        ])


def _review() -> Workflow:
    return Workflow(
        "review-photo-collection.ows",
        "Review a photo collection: duplicates and bad shots",
        "Review Images groups the photos that show the same picture, "
        "suggests which one of each group to keep, and flags blurry, dark "
        "and overexposed photos. Save Images copies the photos worth keeping "
        "into a folder; Image Viewer shows the duplicates that would be left "
        "out. Nothing is deleted or moved.",
        [
            Node("import", IMPORT_IMAGES, (60, 200), folder="photos/labelled"),
            Node("review", REVIEW_IMAGES, (220, 200)),
            Node("save", SAVE_IMAGES, (400, 110)),
            Node("viewer", IMAGE_VIEWER, (400, 290)),
        ],
        [
            ("import", "Data", "review", "Data"),
            ("review", "Unique Images", "save", "Data"),
            ("review", "Duplicates", "viewer", "Data"),
        ],
        [
            ((0, 60, 230, 80),
             "1. Import Images reads a folder of photos (here the example "
             "photos)."),
            ((130, 280, 230, 130),
             "2. Open Review Images: each row is a group of duplicates, the "
             "photo to keep first. Click a photo to keep it instead, or to "
             "take it out of its group. The Flagged tab lists bad shots."),
            ((480, 60, 230, 90),
             "3. Save Images copies the unique photos: choose a folder and "
             "press Save. Nothing is deleted or moved."),
            ((480, 260, 200, 60),
             "4. Image Viewer shows the duplicates left out."),
        ])


def workflows() -> list[Workflow]:
    return [_classify(), _sort(), _label(), _review()]


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


def widget_properties(node: Node, basedir: str) -> dict:
    """Create the widget headless and pack its settings as the canvas does."""
    cls = _widget_class(node.qualified_name)
    # class-level defaults only, never what a user chose before
    cls.settingsHandler.defaults = {}
    stored_settings = None
    if node.settings:
        # settings of this version: they need no migration
        stored_settings = {**node.settings, "__version__": cls.settings_version}
    widget = cls.__new__(cls, signal_manager=None,
                         stored_settings=stored_settings,
                         env={"basedir": basedir})
    widget.__init__()
    try:
        if node.prepare is not None:
            node.prepare(widget)
        return widget.settingsHandler.pack_data(widget)
    finally:
        widget.onDeleteWidget()
        widget.deleteLater()


def recent_path(relpath: str):
    from Orange.widgets.utils.filedialogs import RecentPath

    return RecentPath(ABSPATH_PREFIX + relpath, "basedir", relpath)


def build_scheme(workflow: Workflow, registry, basedir: str):
    """The tutorial's workflow (orangecanvas.scheme.Scheme)."""
    from orangecanvas.scheme import (
        Scheme,
        SchemeLink,
        SchemeNode,
        SchemeTextAnnotation,
    )

    scheme = Scheme(title=workflow.title, description=workflow.description)
    nodes = {}
    for node in workflow.nodes:
        description = registry.widget(node.qualified_name)
        properties = widget_properties(node, basedir)
        if node.folder is not None:
            # the widget keeps a folder as an absolute path; store it
            # relative to the workflow instead, in the form the widget
            # resolves against the workflow's folder
            properties["recent_paths"] = [recent_path(node.folder)]
        scheme_node = SchemeNode(description, title=node.title or description.name,
                                 position=node.position, properties=properties)
        scheme.add_node(scheme_node)
        nodes[node.key] = scheme_node
    for source, output, sink, input_ in workflow.links:
        source_node, sink_node = nodes[source], nodes[sink]
        scheme.add_link(SchemeLink(
            source_node, source_node.output_channel(output),
            sink_node, sink_node.input_channel(input_)))
    for rect, text in workflow.annotations:
        scheme.add_annotation(SchemeTextAnnotation(rect, text))
    return scheme


def workflow_files(out_dir: str = OUT_DIR) -> dict[str, bytes]:
    """Each .ows file's name and contents."""
    from AnyQt.QtWidgets import QApplication
    from orangecanvas.scheme import readwrite
    from orangewidget.settings import set_widget_settings_dir_components

    app = QApplication.instance() or QApplication([])  # noqa: F841
    files = {}
    with tempfile.TemporaryDirectory() as settings_dir:
        # before any widget class is defined: user defaults stay unread
        set_widget_settings_dir_components(settings_dir, "tutorial")
        registry = discover_widgets()
        # Import Images' RecentPath is no Python literal: the reader logs
        # the pickle fallback with a traceback, which is expected here
        logging.getLogger("orangecanvas.scheme.readwrite").setLevel(
            logging.ERROR)
        for workflow in workflows():
            scheme = build_scheme(workflow, registry, out_dir)
            stream = io.BytesIO()
            # as the canvas saves (canvasmain.save_scheme_to)
            readwrite.scheme_to_ows_stream(scheme, stream, pretty=True,
                                           pickle_fallback=True)
            files[workflow.filename] = stream.getvalue()
            scheme.clear()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", default=OUT_DIR)
    parser.add_argument("--check", action="store_true",
                        help="only tell whether the files are up to date")
    args = parser.parse_args(argv)
    files = workflow_files(os.path.abspath(args.out_dir))
    stale = []
    for name, data in files.items():
        path = os.path.join(args.out_dir, name)
        if args.check:
            try:
                with open(path, "rb") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != data:
                stale.append(path)
            continue
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run {sys.argv[0]}): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
