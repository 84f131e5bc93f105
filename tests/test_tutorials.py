"""The example workflow in tutorials/ opens and finds its images."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from Orange.canvas.config import Config
from Orange.widgets.tests.base import WidgetTest
from orangecanvas.registry import WidgetRegistry
from orangecanvas.scheme import Scheme, readwrite

from orangecontrib.imageanalytics.widgets.owimageimport import OWImportImages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = os.path.join(REPO, "tutorials")
WORKFLOW = os.path.join(TUTORIALS, "classify-example-images.ows")
IMAGES = os.path.join(REPO, "examples", "images")
GENERATOR = os.path.join(REPO, "scripts", "make_tutorial_workflow.py")

IMPORT_IMAGES = "orangecontrib.imageanalytics.widgets.owimageimport." \
                "OWImportImages"
IMAGE_EMBEDDING = "orangecontrib.imageanalytics.widgets.owimageembedding." \
                  "OWImageEmbedding"

#: (source widget, output, sink widget, input), by widget name
LINKS = {
    ("Import Images", "Data", "Image Embedding", "Images"),
    ("Image Embedding", "Embeddings", "Data Table", "Data"),
    ("Image Embedding", "Embeddings", "Test and Score", "Data"),
    ("Logistic Regression", "Learner", "Test and Score", "Learner"),
    ("Image Embedding", "Embeddings", "Distances", "Data"),
    ("Distances", "Distances", "Hierarchical Clustering", "Distances"),
}


def discovered_registry():
    """The widgets the canvas finds (entry points of Orange and add-ons)."""
    registry = WidgetRegistry()
    Config.widget_discovery(registry).run(Config.widgets_entry_points())
    return registry


def load(path, registry):
    """Read a workflow with the canvas's reader; no widgets are created."""
    scheme = Scheme()
    errors = []
    with open(path, "rb") as f:
        readwrite.scheme_load(scheme, f, registry=registry,
                              error_handler=errors.append)
    return scheme, errors


class TestTutorialWorkflow(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = discovered_registry()

    def setUp(self):
        self.scheme, self.errors = load(WORKFLOW, self.registry)

    def tearDown(self):
        self.scheme.clear()

    def node(self, qualified_name):
        nodes = [node for node in self.scheme.nodes
                 if node.description.qualified_name == qualified_name]
        self.assertEqual(len(nodes), 1, qualified_name)
        return nodes[0]

    def test_nodes_and_links_resolve(self):
        self.assertEqual(self.errors, [])
        self.assertEqual(len(self.scheme.nodes), 7)
        for node in self.scheme.nodes:
            self.assertIs(
                self.registry.widget(node.description.qualified_name),
                node.description)
        links = set()
        for link in self.scheme.links:
            # the channels are the registered widgets' own
            self.assertIn(link.source_channel,
                          link.source_node.description.outputs)
            self.assertIn(link.sink_channel,
                          link.sink_node.description.inputs)
            self.assertTrue(link.is_enabled())
            links.add((link.source_node.description.name,
                       link.source_channel.name,
                       link.sink_node.description.name,
                       link.sink_channel.name))
        self.assertEqual(links, LINKS)
        self.assertEqual(len(self.scheme.links), len(LINKS))

    def test_embedding_settings(self):
        properties = self.node(IMAGE_EMBEDDING).properties
        self.assertEqual(properties["embedder"], "squeezenet")
        self.assertTrue(properties["auto_apply"])

    def test_folder_stored_relative_to_workflow(self):
        recent, = self.node(IMPORT_IMAGES).properties["recent_paths"]
        self.assertEqual((recent.prefix, recent.relpath),
                         ("basedir", "../examples/images"))
        self.assertFalse(os.path.exists(recent.abspath))

    def import_images(self, properties, basedir):
        widget = self.create_widget(OWImportImages,
                                    stored_settings=properties,
                                    env={"basedir": basedir})
        try:
            self.wait_until_finished(widget, timeout=20000)
            return (widget.current_folder(),
                    self.get_output(widget.Outputs.data, widget=widget))
        finally:
            widget.onDeleteWidget()

    def test_import_images_restores_folder(self):
        properties = self.node(IMPORT_IMAGES).properties
        folder, table = self.import_images(properties, TUTORIALS)
        self.assertEqual(folder, IMAGES)
        self.assertEqual(len(table), 18)
        self.assertEqual(table.domain.class_var.values,
                         ("digit", "flower", "temple"))

    def test_works_from_another_checkout(self):
        with tempfile.TemporaryDirectory() as tmp:
            checkout = os.path.join(tmp, "elsewhere")
            shutil.copytree(IMAGES, os.path.join(checkout, "examples",
                                                 "images"))
            tutorials = os.path.join(checkout, "tutorials")
            os.mkdir(tutorials)
            path = shutil.copy(WORKFLOW, tutorials)
            scheme, errors = load(path, self.registry)
            try:
                self.assertEqual(errors, [])
                node, = [n for n in scheme.nodes
                         if n.description.qualified_name == IMPORT_IMAGES]
                folder, table = self.import_images(node.properties,
                                                   tutorials)
            finally:
                scheme.clear()
            self.assertEqual(folder,
                             os.path.join(checkout, "examples", "images"))
            self.assertEqual(len(table), 18)
            self.assertEqual(len(table.domain.class_var.values), 3)


class TestTutorialGenerator(unittest.TestCase):
    def test_workflow_is_up_to_date(self):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        done = subprocess.run(
            [sys.executable, GENERATOR, "--check"], env=env,
            capture_output=True, text=True, timeout=240, check=False)
        self.assertEqual(done.returncode, 0,
                         "tutorials/classify-example-images.ows differs from "
                         "what scripts/make_tutorial_workflow.py writes:\n"
                         + done.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
