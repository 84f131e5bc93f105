"""A workflow saved by the older add-on (0.13) opens and runs end to end.

The workflow photo collection → Image Embedding → Image Grid → Save Images,
with Image Viewer beside it, as the older add-on stores it: its node names,
channel names and ids, and each widget's settings in the stored form of
0.13 (index settings, pickled contexts with int indexes). The test writes
such a file itself; when the peer workflow of the shared data is present it
is run too.
"""
import base64
import os
import pickle
import shutil
import tempfile
import unittest

import numpy as np
from Orange.canvas.config import Config
from Orange.widgets.utils.filedialogs import RecentPath
from orangecanvas.registry import WidgetRegistry
from orangewidget.settings import Context
from orangewidget.workflow.widgetsscheme import WidgetsScheme
from PIL import Image
from widget_helpers import WidgetHelpersTest

SHARED_WORKFLOW = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "workflows",
    "peer-0.13-photos.ows")

PACKAGE = "orangecontrib.imageanalytics.widgets."
NODES = [
    ("Import Images", PACKAGE + "owimageimport.OWImportImages"),
    ("Image Embedding", PACKAGE + "owimageembedding.OWImageEmbedding"),
    ("Image Grid", PACKAGE + "owimagegrid.OWImageGrid"),
    ("Image Viewer", PACKAGE + "owimageviewer.OWImageViewer"),
    ("Save Images", PACKAGE + "owsaveimages.OWSaveImages"),
]
#: (source node, output name, output id, sink node, input name, input id)
LINKS = [
    (0, "Data", "data", 1, "Images", "images"),
    (1, "Embeddings", "embeddings", 2, "Embeddings", "data"),
    (0, "Data", "data", 3, "Data", "data"),
    (2, "Images", "data", 4, "Data", "data"),
]

NODE = ('\t\t<node id="{id}" name="{name}" qualified_name="{qname}" '
        'project_name="Orange3-ImageAnalytics" version="" title="{name}" '
        'position="({x}, 200)" />\n')
LINK = ('\t\t<link id="{id}" source_node_id="{src}" sink_node_id="{dst}" '
        'source_channel="{out}" sink_channel="{inp}" enabled="true" '
        'source_channel_id="{out_id}" sink_channel_id="{inp_id}" />\n')
PROPERTIES = '\t\t<properties node_id="{id}" format="{fmt}">{text}</properties>\n'


def pickled(settings):
    return base64.encodebytes(pickle.dumps(settings)).decode("ascii")


def old_settings(n_features):
    """Each widget's settings as version 0.13 stored them."""
    metas = {"image name": 3, "image": 3, "size": 2, "width": 2, "height": 2}
    grid_context = Context(
        values={"imageAttr": (0, -2), "label_attr": (None, -2),
                "__version__": 1},
        attributes={f"n{i}": 2 for i in range(n_features)}, metas=metas)
    viewer_context = Context(
        values={"image_attr": ("image", 103), "selected_items": (set(), -2),
                "title_attr": ("category", 101), "__version__": 2},
        attributes={"category": 1}, metas=metas)
    return [
        ("pickle", pickled({
            "controlAreaVisible": True, "__version__": 1,
            "recent_paths": [RecentPath(abspath="/elsewhere/photos",
                                        prefix="basedir", relpath="photos",
                                        title="")]})),
        ("literal", repr({
            "_auto_apply": True, "cb_embedder_current_id": 1,
            "cb_image_attr_current_id": 0, "controlAreaVisible": True,
            "savedWidgetGeometry": None, "__version__": 1})),
        ("pickle", pickled({
            "auto_commit": True, "auto_update": True, "cell_fit": 0,
            "columns": np.int32(5), "rows": np.int32(5),
            "controlAreaVisible": True, "imageSize": 100,
            "label_selected": True, "__version__": 1,
            "context_settings": [grid_context]})),
        ("pickle", pickled({
            "autoCommit": True, "controlAreaVisible": True, "imageSize": 160,
            "__version__": 2, "context_settings": [viewer_context]})),
        ("literal", repr({
            "auto_save": False, "controlAreaVisible": True, "dirname": "",
            "file_format_index": 1, "image_attr_current_index": 0,
            "last_dir": "", "savedWidgetGeometry": None, "scale_index": 1,
            "use_scale": True, "__version__": 1})),
    ]


def write_workflow(path, n_features=1000):
    nodes = "".join(NODE.format(id=i, name=name, qname=qname, x=100 + 150 * i)
                    for i, (name, qname) in enumerate(NODES))
    links = "".join(
        LINK.format(id=i, src=src, out=out, out_id=out_id, dst=dst, inp=inp,
                    inp_id=inp_id)
        for i, (src, out, out_id, dst, inp, inp_id) in enumerate(LINKS))
    properties = "".join(PROPERTIES.format(id=i, fmt=fmt, text=text)
                         for i, (fmt, text) in enumerate(old_settings(n_features)))
    with open(path, "w", encoding="utf-8") as f:
        f.write("<?xml version='1.0' encoding='utf-8'?>\n"
                '<scheme version="2.0" title="Photo collection" description="">\n'
                f"\t<nodes>\n{nodes}\t</nodes>\n\t<links>\n{links}\t</links>\n"
                "\t<annotations />\n\t<thumbnail />\n"
                f"\t<node_properties>\n{properties}\t</node_properties>\n"
                "\t<session_state>\n\t\t<window_groups />\n\t</session_state>\n"
                "</scheme>\n")


def make_photos(root):
    colours = {"cats": [(200, 120, 40), (190, 110, 60)],
               "city": [(40, 60, 200), (60, 80, 180)]}
    for folder, fills in colours.items():
        os.makedirs(os.path.join(root, folder))
        for i, fill in enumerate(fills):
            im = Image.new("RGB", (64, 48), fill)
            im.paste((255 - fill[0], 20, 20), (8 * i, 8, 8 * i + 20, 30))
            im.save(os.path.join(root, folder, f"{folder}-{i}.jpg"))


def discovered_registry():
    registry = WidgetRegistry()
    Config.widget_discovery(registry).run(Config.widgets_entry_points())
    return registry


class TestOlderWorkflowRuns(WidgetHelpersTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = discovered_registry()

    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def load(self, path):
        scheme = WidgetsScheme()
        # as the canvas does when a workflow opens: every widget is created
        # and receives its signals (the bare scheme creates them on demand)
        scheme.widget_manager.set_creation_policy(scheme.widget_manager.Immediate)
        scheme.set_runtime_env("basedir", os.path.dirname(os.path.abspath(path)))
        errors = []
        with open(path, "rb") as f:
            scheme.load_from(f, registry=self.registry,
                             error_handler=errors.append)
        return scheme, errors

    def node(self, scheme, name):
        node, = [n for n in scheme.nodes if n.description.name == name]
        return node

    def check_runs(self, path):
        scheme, errors = self.load(path)
        try:
            self.assertEqual(errors, [])
            by_name = {node.description.name: node for node in scheme.nodes}
            self.assertLessEqual({name for name, _ in NODES}, set(by_name))
            for name, qname in NODES:
                self.assertEqual(by_name[name].description.qualified_name, qname)
            links = {(link.source_node.description.name,
                      link.source_channel.name,
                      link.sink_node.description.name, link.sink_channel.name)
                     for link in scheme.links}
            for src, out, _, dst, inp, _ in LINKS:
                self.assertIn((NODES[src][0], out, NODES[dst][0], inp), links)

            manager = scheme.signal_manager
            ours = [link for link in scheme.links
                    if link.sink_node.description.name in dict(NODES)]

            def flowed():
                return not manager.has_pending() and all(
                    any(v is not None for v in manager.link_contents(link).values())
                    for link in ours)

            self.process_events(until=flowed, timeout=120000)

            grid = scheme.widget_for_node(self.node(scheme, "Image Grid"))
            viewer = scheme.widget_for_node(self.node(scheme, "Image Viewer"))
            saver = scheme.widget_for_node(self.node(scheme, "Save Images"))
            embedding = scheme.widget_for_node(self.node(scheme, "Image Embedding"))
            self.assertEqual(embedding.embedder, "squeezenet")

            def value(v):
                # a lazy output (Image Grid's Images) is computed when read
                return v.get_value() if hasattr(v, "get_value") else v

            contents = {(link.source_node.description.name,
                         link.sink_node.description.name):
                        value([v for v in manager.link_contents(link).values()
                               if v is not None][0])
                        for link in ours}
            embeddings = contents[("Image Embedding", "Image Grid")]
            self.assertEqual(len(embeddings), 4)
            self.assertEqual(len(embeddings.domain.attributes), 1000)
            images = contents[("Image Grid", "Save Images")]
            self.assertEqual(len(images), 4)
            self.assertIn("Selected", [v.name for v in images.domain.variables
                                       + images.domain.metas])
            self.assertEqual(len(contents[("Import Images", "Image Viewer")]), 4)
            for widget in (grid, viewer, saver):
                self.assertFalse(widget.Error.active, type(widget).__name__)
            # 0.13's stored choices mean the same here
            self.assertEqual(viewer.imageSize, 160)
            self.assertEqual(viewer.image_attr.name, "image")
            self.assertEqual(viewer.title_attr.name, "category")
            self.assertEqual((grid.rows, grid.columns), (5, 5))
            self.assertEqual(saver.file_format, "jpg")
            self.assertTrue(saver.use_scale)
            self.assertEqual(saver.scale_embedder, "squeezenet")
            self.assertEqual(grid.cell_fit, "Resize")
        finally:
            scheme.clear()

    def test_workflow_of_older_addon_runs(self):
        make_photos(os.path.join(self.tmp, "photos"))
        path = os.path.join(self.tmp, "peer.ows")
        write_workflow(path)
        self.check_runs(path)

    @unittest.skipUnless(os.path.exists(SHARED_WORKFLOW),
                         "the shared peer workflow is not available")
    def test_shared_peer_workflow_runs(self):
        self.check_runs(SHARED_WORKFLOW)


if __name__ == "__main__":
    unittest.main()
