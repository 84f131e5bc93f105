"""The example workflows open in the canvas, find their photos and run.

Each workflow is loaded with the canvas's own loader, every widget is
created as when the canvas opens a workflow, the signals flow, and then
every link must carry data and no widget may show an error.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from Orange.canvas.config import Config
from orangecanvas.application import examples
from orangecanvas.registry import WidgetRegistry
from orangewidget.workflow.widgetsscheme import WidgetsScheme
from widget_helpers import WidgetHelpersTest

from orangecontrib.imageanalytics import tutorials
from orangecontrib.imageanalytics.save_images import KEEP_FORMAT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = os.path.join(REPO, "scripts", "make_tutorial_workflow.py")
sys.path.insert(0, os.path.join(REPO, "scripts"))
import run_tutorial  # noqa: E402  (scripts/run_tutorial.py)

HERE = os.path.dirname(tutorials.__file__)
CATEGORIES = ("cartoon", "digit", "flower", "portrait", "temple")

#: per workflow: (source title, output, sink title, input)
LINKS = {
    "classify-example-images.ows": {
        ("Import Images", "Data", "Image Embedding", "Images"),
        ("Image Embedding", "Embeddings", "Data Table", "Data"),
        ("Image Embedding", "Embeddings", "Test and Score", "Data"),
        ("Logistic Regression", "Learner", "Test and Score", "Learner"),
        ("Image Embedding", "Embeddings", "Distances", "Data"),
        ("Distances", "Distances", "Hierarchical Clustering", "Distances"),
    },
    "sort-photos-by-similarity.ows": {
        ("Import Images", "Data", "Image Embedding", "Images"),
        ("Image Embedding", "Embeddings", "Image Grid", "Embeddings"),
        ("Image Grid", "Selected Images", "Image Viewer", "Data"),
        ("Image Grid", "Selected Images", "Save Images", "Data"),
    },
    "label-new-photos.ows": {
        ("Labelled photos", "Data", "Image Embedding", "Images"),
        ("Image Embedding", "Embeddings", "Test and Score", "Data"),
        ("Logistic Regression", "Learner", "Test and Score", "Learner"),
        ("Image Embedding", "Embeddings", "Logistic Regression", "Data"),
        ("Logistic Regression", "Model", "Save Model", "Model"),
        ("New photos", "Data", "Image Embedding (new)", "Images"),
        ("Image Embedding (new)", "Embeddings", "Predictions", "Data"),
        ("Logistic Regression", "Model", "Predictions", "Predictors"),
        ("Predictions", "Predictions", "Image Viewer", "Data"),
        ("Image Viewer", "Data", "Save Images", "Data"),
    },
    "review-photo-collection.ows": {
        ("Import Images", "Data", "Review Images", "Data"),
        ("Review Images", "Unique Images", "Save Images", "Data"),
        ("Review Images", "Duplicates", "Image Viewer", "Data"),
    },
}


def discovered_registry():
    """The widgets the canvas finds (entry points of Orange and add-ons)."""
    registry = WidgetRegistry()
    Config.widget_discovery(registry).run(Config.widgets_entry_points())
    return registry


class TestTutorials(WidgetHelpersTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = discovered_registry()

    def run_workflow(self, path):
        """Open ``path`` as the canvas does and let the signals flow; every
        link must carry data and no widget may show an error.

        Returns the scheme (cleared by the test's cleanup) and the value of
        each link, by (source title, sink title, input)."""
        scheme, errors = run_tutorial.open_and_run(path, self.registry, timeout=180)
        self.addCleanup(scheme.clear)
        self.assertEqual(run_tutorial.problems(scheme, errors), [])
        return scheme, run_tutorial.link_values(scheme)

    @staticmethod
    def widget_named(scheme, title):
        node, = [n for n in scheme.nodes if n.title == title]
        return scheme.widget_for_node(node)

    def test_registered_with_the_canvas(self):
        found = {os.path.basename(w.abspath()) for w in examples.workflows(Config())
                 if w.abspath().startswith(HERE)}
        self.assertEqual(found, set(LINKS))
        self.assertEqual(sorted(map(os.path.basename, tutorials.workflow_paths())),
                         sorted(LINKS))

    def test_links_are_the_documented_ones(self):
        for name, expected in LINKS.items():
            scheme = WidgetsScheme()
            with open(os.path.join(HERE, name), "rb") as f:
                scheme.load_from(f, registry=self.registry)
            try:
                links = {(link.source_node.title, link.source_channel.name,
                          link.sink_node.title, link.sink_channel.name)
                         for link in scheme.links}
                self.assertEqual(links, expected, name)
                self.assertTrue(all(link.is_enabled() for link in scheme.links))
            finally:
                scheme.clear()

    def test_example_photos(self):
        labelled = tutorials.example_photos("labelled")
        self.assertEqual(sorted(os.listdir(labelled)), list(CATEGORIES))
        for category in CATEGORIES:
            self.assertEqual(len(os.listdir(os.path.join(labelled, category))), 10)
        self.assertEqual(len(os.listdir(tutorials.example_photos("new"))), 25)
        with self.assertRaises(ValueError):
            tutorials.example_photos("other")

    def test_classify_example_images(self):
        scheme, data = self.run_workflow(
            os.path.join(HERE, "classify-example-images.ows"))
        embedded = data[("Image Embedding", "Test and Score", "Data")]
        self.assertEqual(len(embedded), 50)
        self.assertEqual(embedded.domain.class_var.values, CATEGORIES)
        self.assertEqual(len(embedded.domain.attributes), 1000)
        test = self.widget_named(scheme, "Test and Score")
        self.process_events(until=test._successful_slots, timeout=120000)
        results = test._successful_slots()[0].results.value
        from Orange.evaluation import CA
        self.assertGreater(CA(results)[0], 0.9)

    def test_sort_photos_by_similarity(self):
        scheme, data = self.run_workflow(
            os.path.join(HERE, "sort-photos-by-similarity.ows"))
        marked = data[("Image Grid", "Save Images", "Data")]
        # the two groups stored in the workflow: the temples and the flowers
        self.assertEqual(len(marked), 20)
        group = marked.domain["Group"]
        categories = marked.get_column("category")
        for g, category in (("G1", "temple"), ("G2", "flower")):
            rows = marked.get_column(group) == group.values.index(g)
            self.assertEqual(rows.sum(), 10)
            self.assertEqual(
                {marked.domain.class_var.values[int(c)] for c in categories[rows]},
                {category})
        self.assertEqual(len(data[("Image Grid", "Image Viewer", "Data")]), 20)
        saver = self.widget_named(scheme, "Save Images")
        self.assertEqual(saver.folders_by.name, "Group")
        grid = self.widget_named(scheme, "Image Grid")
        self.assertEqual(len(grid.data), 50)

    def test_label_new_photos(self):
        scheme, data = self.run_workflow(os.path.join(HERE, "label-new-photos.ows"))
        predicted = data[("Predictions", "Image Viewer", "Data")]
        self.assertEqual(len(predicted), 25)
        prediction = predicted.domain["Logistic Regression"]
        self.assertEqual(prediction.values, CATEGORIES)
        labels = [prediction.values[int(v)]
                  for v in predicted.get_column(prediction)]
        # five new photos of each category: most are recognised
        self.assertGreaterEqual(max(labels.count(c) for c in CATEGORIES), 4)
        self.assertGreaterEqual(len(set(labels)), 4)
        viewer = self.widget_named(scheme, "Image Viewer")
        self.assertEqual(viewer.title_attr.name, "Logistic Regression")
        self.assertEqual(viewer.model.title(0), labels[0])
        saver = self.widget_named(scheme, "Save Images")
        self.assertEqual(saver.folders_by.name, "Logistic Regression")
        # each photo saved in its own format, as the tutorial says
        self.assertEqual(saver.file_format, KEEP_FORMAT)
        self.assertEqual(len(data[("Image Viewer", "Save Images", "Data")]), 25)

    def test_review_photo_collection(self):
        scheme, data = self.run_workflow(
            os.path.join(HERE, "review-photo-collection.ows"))
        unique = data[("Review Images", "Save Images", "Data")]
        duplicates = data[("Review Images", "Image Viewer", "Data")]
        # every example photo is either kept or a duplicate of a kept one
        self.assertEqual(len(unique) + len(duplicates), 50)
        self.assertGreater(len(duplicates), 0)
        kept = set(unique.get_column("image"))
        self.assertLessEqual(set(duplicates.get_column("Keeper")), kept)
        self.assertFalse(kept & set(duplicates.get_column("image")))

    def test_runs_from_another_place(self):
        # as after an installation elsewhere: the photos are found beside it
        with tempfile.TemporaryDirectory() as tmp:
            copy = shutil.copytree(HERE, os.path.join(tmp, "tutorials"),
                                   ignore=shutil.ignore_patterns("__pycache__"))
            scheme, data = self.run_workflow(
                os.path.join(copy, "classify-example-images.ows"))
            importer = self.widget_named(scheme, "Import Images")
            self.assertEqual(importer.current_folder(),
                             os.path.join(copy, "photos", "labelled"))
            self.assertEqual(len(data[("Import Images", "Image Embedding", "Images")]), 50)


class TestTutorialGenerator(unittest.TestCase):
    def test_workflows_are_up_to_date(self):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        done = subprocess.run(
            [sys.executable, GENERATOR, "--check"], env=env,
            capture_output=True, text=True, timeout=240, check=False)
        self.assertEqual(done.returncode, 0,
                         "the tutorials differ from what "
                         "scripts/make_tutorial_workflow.py writes:\n"
                         + done.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
