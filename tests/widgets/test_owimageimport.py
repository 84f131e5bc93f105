"""Tests for the Import Images widget."""
import base64
import os
import pickle
import shutil
import tempfile
import time
import unittest
from unittest import mock

from AnyQt.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from AnyQt.QtGui import QDragEnterEvent, QDropEvent
from Orange.widgets.tests.base import WidgetTest
from Orange.widgets.utils.filedialogs import RecentPath
from orangecanvas.registry import CategoryDescription, WidgetRegistry
from orangecanvas.scheme import readwrite
from orangewidget.workflow.discovery import widget_desc_from_module
from orangewidget.workflow.widgetsscheme import WidgetsScheme
from PIL import Image
from widget_helpers import WidgetHelpersTest

from orangecontrib.imageanalytics.import_images import ImportCancelled
from orangecontrib.imageanalytics.widgets import owimageimport
from orangecontrib.imageanalytics.widgets.owimageimport import OWImportImages

SHARED_WORKFLOW = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data",
    "workflows", "peer-0.13-photos.ows")

# The settings of Import Images as the older add-on wrote them in .ows files
# (a pickled dict; the folder is kept absolute and relative to the workflow).
OWS_TEMPLATE = """<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Photo collection" description="">
\t<nodes>
\t\t<node id="0" name="Import Images" \
qualified_name="orangecontrib.imageanalytics.widgets.owimageimport.OWImportImages" \
project_name="Orange3-ImageAnalytics" version="" title="Import Images" \
position="(100, 200)" />
\t</nodes>
\t<links />
\t<annotations />
\t<thumbnail />
\t<node_properties>
\t\t<properties node_id="0" format="pickle">{properties}</properties>
\t</node_properties>
\t<session_state>
\t\t<window_groups />
\t</session_state>
</scheme>
"""


def make_photos(root, per_folder=2, folders=("cats", "city")):
    for k, folder in enumerate(folders):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for i in range(per_folder):
            Image.new("RGB", (16 + i, 12), (60 * k, 90, 30 * i)).save(
                os.path.join(root, folder, f"{folder}{i}.jpg"))
    return root


def load_workflow(path):
    """Open a workflow as the canvas does, with only Import Images known."""
    registry = WidgetRegistry()
    registry.register_category(CategoryDescription(name="Image Analytics"))
    desc = widget_desc_from_module(OWImportImages.__module__)
    desc.category = "Image Analytics"
    registry.register_widget(desc)
    scheme = WidgetsScheme()
    scheme.set_runtime_env("basedir", os.path.dirname(os.path.abspath(path)))
    errors = []
    with open(path, "rb") as f:
        scheme.load_from(f, registry=registry, error_handler=errors.append)
    return scheme, errors


def drop_event(cls, path):
    """An event and its data; the event does not own (keep alive) the data."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    if cls is QDropEvent:
        event = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton,
                           Qt.NoModifier)
    else:
        event = QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime,
                                Qt.LeftButton, Qt.NoModifier)
    return event, mime


class TestOWImportImages(WidgetTest):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.photos = make_photos(os.path.join(self.tmp, "photos"))
        self.widget = self.create_widget(OWImportImages)

    def tearDown(self):
        self.widget.onDeleteWidget()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def import_folder(self, path, widget=None):
        widget = widget or self.widget
        widget.set_folder(path)
        self.wait_until_finished(widget)
        return self.get_output(widget.Outputs.data, widget=widget)

    def test_no_folder(self):
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.assertIsNone(self.widget.current_folder())
        self.assertFalse(self.widget.reload_button.isEnabled())
        self.assertEqual(self.widget.folder_combo.currentText(), "(none)")

    def test_set_folder(self):
        table = self.import_folder(self.photos)
        self.assertEqual(len(table), 4)
        self.assertEqual(table.domain.class_var.values, ("cats", "city"))
        self.assertEqual(
            [m.name for m in table.domain.metas],
            ["image name", "image", "size", "width", "height"])
        self.assertEqual(table.domain["image"].attributes["origin"],
                         os.path.abspath(self.photos))
        self.assertEqual(self.widget.summary_label.text(),
                         "4 images / 2 categories, 0 skipped")
        self.assertEqual(self.widget.folder_combo.currentText(), "photos")
        self.assertFalse(self.widget.cancel_button.isEnabled())
        self.assertFalse(self.widget.Warning.skipped.is_shown())

    def test_recent_folders(self):
        other = make_photos(os.path.join(self.tmp, "other"), 1, ("a",))
        self.import_folder(self.photos)
        self.import_folder(other)
        self.assertEqual([r.abspath for r in self.widget.recent_paths],
                         [os.path.abspath(other),
                          os.path.abspath(self.photos)])
        self.assertEqual(self.widget.folder_combo.count(), 2)
        # choosing an older one in the combo moves it up and imports it
        self.widget.folder_combo.activated[int].emit(1)
        self.wait_until_finished()
        self.assertEqual(self.widget.current_folder(),
                         os.path.abspath(self.photos))
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 4)
        # the same folder again does not make a duplicate entry
        self.import_folder(self.photos)
        self.assertEqual(len(self.widget.recent_paths), 2)

    def test_reload(self):
        self.import_folder(self.photos)
        make_photos(self.photos, 1, ("dogs",))
        self.widget.reload_button.click()
        self.wait_until_finished()
        table = self.get_output(self.widget.Outputs.data)
        self.assertEqual(len(table), 5)
        self.assertEqual(table.domain.class_var.values,
                         ("cats", "city", "dogs"))

    def test_browse(self):
        with mock.patch.object(owimageimport.QFileDialog,
                               "getExistingDirectory",
                               return_value=self.photos):
            self.widget.browse_button.click()
        self.wait_until_finished()
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 4)
        with mock.patch.object(owimageimport.QFileDialog,
                               "getExistingDirectory", return_value=""):
            self.widget.browse()  # dialog cancelled: nothing changes
        self.assertEqual(len(self.widget.recent_paths), 1)

    def test_drop_folder(self):
        enter, _mime = drop_event(QDragEnterEvent, self.photos)
        self.widget.dragEnterEvent(enter)
        self.assertTrue(enter.isAccepted())
        drop, _mime = drop_event(QDropEvent, self.photos)
        self.widget.dropEvent(drop)
        self.wait_until_finished()
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 4)

        a_file = os.path.join(self.photos, "cats", "cats0.jpg")
        enter, _mime = drop_event(QDragEnterEvent, a_file)
        self.widget.dragEnterEvent(enter)
        self.assertFalse(enter.isAccepted())

    def test_skipped_files_warning(self):
        with open(os.path.join(self.photos, "cats", "bad.jpg"), "w") as f:
            f.write("not a photo")
        open(os.path.join(self.photos, "city", "empty.png"), "wb").close()
        table = self.import_folder(self.photos)
        self.assertEqual(len(table), 4)
        self.assertEqual(self.widget.summary_label.text(),
                         "4 images / 2 categories, 2 skipped")
        self.assertTrue(self.widget.Warning.skipped.is_shown())
        text = str(self.widget.Warning.skipped)
        self.assertIn("2 files skipped", text)
        self.assertIn("not an image", text)
        self.assertIn("empty file", text)
        self.assertIn("cats/bad.jpg: not an image",
                      self.widget.summary_label.toolTip())

    def test_no_images(self):
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        self.assertIsNone(self.import_folder(empty))
        self.assertTrue(self.widget.Warning.no_images.is_shown())
        self.import_folder(self.photos)
        self.assertFalse(self.widget.Warning.no_images.is_shown())

    def test_missing_folder(self):
        self.import_folder(self.photos)
        shutil.rmtree(self.photos)
        self.widget.reload()
        self.assertTrue(self.widget.Error.missing_folder.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))

    def test_unexpected_error(self):
        with mock.patch.object(owimageimport, "run",
                               side_effect=RuntimeError("disk on fire")):
            self.import_folder(self.photos)
        self.assertTrue(self.widget.Error.failed.is_shown())
        self.assertIn("disk on fire", str(self.widget.Error.failed))
        self.assertIsNone(self.get_output(self.widget.Outputs.data))

    def test_cancel(self):
        self.import_folder(self.photos)

        def slow_run(folder, state):
            deadline = time.monotonic() + 10
            while not state.is_interruption_requested():
                if time.monotonic() > deadline:
                    raise AssertionError("not cancelled")
                time.sleep(0.005)
            raise ImportCancelled

        with mock.patch.object(owimageimport, "run", slow_run):
            self.widget.reload()
            self.assertIsNotNone(self.widget.task)
            self.assertTrue(self.widget.cancel_button.isEnabled())
            self.widget.cancel_button.click()
        self.assertIsNone(self.widget.task)
        self.assertFalse(self.widget.cancel_button.isEnabled())
        self.assertTrue(self.widget.Information.cancelled.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.assertEqual(self.widget.summary_label.text(), "Cancelled.")

        # the next import works as usual
        self.widget.reload()
        self.wait_until_finished()
        self.assertFalse(self.widget.Information.cancelled.is_shown())
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 4)

    def test_switch_to_missing_folder_while_importing(self):
        def slow_run(folder, state):
            while not state.is_interruption_requested():
                time.sleep(0.005)
            raise ImportCancelled

        missing = os.path.join(self.tmp, "gone")
        os.mkdir(missing)
        self.import_folder(missing)
        os.rmdir(missing)
        with mock.patch.object(owimageimport, "run", slow_run):
            self.widget.set_folder(self.photos)
            self.assertTrue(self.widget.cancel_button.isEnabled())
            # the missing folder is chosen in the combo: the scan stops
            self.widget.folder_combo.activated[int].emit(1)
        self.assertIsNone(self.widget.task)
        self.assertTrue(self.widget.Error.missing_folder.is_shown())
        # nothing runs, so there is nothing to cancel
        self.assertFalse(self.widget.cancel_button.isEnabled())

    def test_settings_round_trip(self):
        self.import_folder(self.photos)
        settings = self.widget.settingsHandler.pack_data(self.widget)
        # a workflow stores them pickled
        settings = pickle.loads(pickle.dumps(settings))
        widget = self.create_widget(OWImportImages, stored_settings=settings)
        self.wait_until_finished(widget)
        self.assertEqual(widget.current_folder(),
                         os.path.abspath(self.photos))
        table = self.get_output(widget.Outputs.data, widget=widget)
        self.assertEqual(len(table), 4)
        widget.onDeleteWidget()

    def test_folder_stored_relative_to_workflow(self):
        widget = self.create_widget(OWImportImages,
                                    env={"basedir": self.tmp})
        self.import_folder(self.photos, widget)
        recent = widget.recent_paths[0]
        self.assertEqual((recent.prefix, recent.relpath),
                         ("basedir", "photos"))
        # saving the workflow one folder up re-bases the stored folder
        parent = os.path.dirname(self.tmp)
        widget.workflowEnvChanged("basedir", parent, self.tmp)
        recent = widget.recent_paths[0]
        self.assertEqual(
            (recent.prefix, recent.relpath),
            ("basedir", os.path.join(os.path.basename(self.tmp), "photos")))
        widget.onDeleteWidget()

    def report(self):
        self.widget.create_report_html()
        return self.widget.report_html

    def test_report(self):
        # no folder yet: a heading only, no items
        self.assertNotIn("Folder", self.report())
        self.import_folder(self.photos)
        html = self.report()
        self.assertIn("Folder", html)
        self.assertIn(os.path.abspath(self.photos), html)
        self.assertIn("4 images / 2 categories, 0 skipped", html)
        self.assertNotIn("Skipped", html)
        with open(os.path.join(self.photos, "cats", "bad.jpg"), "w") as f:
            f.write("not a photo")
        self.import_folder(self.photos)
        html = self.report()
        self.assertIn("4 images / 2 categories, 1 skipped", html)
        self.assertIn("Skipped", html)
        self.assertIn("1 × not an image", html)


class TestOldWorkflows(WidgetHelpersTest):
    """Workflows saved by the older add-on open with their folder."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.basedir = os.path.join(self.tmp, "project")
        make_photos(os.path.join(self.basedir, "photos"))
        properties = {
            "controlAreaVisible": True,
            "recent_paths": [RecentPath(
                # where the folder was on the machine that saved it
                os.path.join(self.tmp, "gone", "photos"), "basedir",
                "photos")],
            "savedWidgetGeometry": None,
            "__version__": 1,
        }
        data = pickle.dumps(properties, protocol=4)
        # the class must be found where old workflows point to
        self.assertIn(b"orangewidget.utils.filedialogs", data)
        encoded = base64.encodebytes(data).decode("ascii")
        self.ows = os.path.join(self.basedir, "old-photos.ows")
        with open(self.ows, "w", encoding="utf-8") as f:
            f.write(OWS_TEMPLATE.format(properties=encoded))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_table(self, table):
        self.assertEqual(len(table), 4)
        self.assertEqual(table.domain.class_var.values, ("cats", "city"))
        self.assertEqual(table.domain["image"].attributes["origin"],
                         os.path.join(self.basedir, "photos"))

    def test_stored_settings_restore_folder(self):
        with open(self.ows, "rb") as f:
            node = readwrite.parse_ows_stream(f).nodes[0]
        settings = readwrite.loads(node.data.data, node.data.format)
        widget = self.create_widget(OWImportImages, stored_settings=settings,
                                    env={"basedir": self.basedir})
        self.wait_until_finished(widget)
        self.assertEqual(widget.current_folder(),
                         os.path.join(self.basedir, "photos"))
        self.check_table(self.get_output(widget.Outputs.data, widget=widget))
        self.assertEqual(widget.summary_label.text(),
                         "4 images / 2 categories, 0 skipped")
        widget.onDeleteWidget()

    def test_workflow_opens_in_canvas_scheme(self):
        scheme, errors = load_workflow(self.ows)
        try:
            self.assertEqual(errors, [])
            widget = scheme.widget_for_node(scheme.nodes[0])
            self.process_events(until=lambda: widget.task is None)
            self.assertEqual(widget.current_folder(),
                             os.path.join(self.basedir, "photos"))
            self.check_table(widget.result.table)
            # saved again, the folder stays relative to the workflow
            scheme.sync_node_properties()
            recent = scheme.nodes[0].properties["recent_paths"][0]
            self.assertEqual((recent.prefix, recent.relpath),
                             ("basedir", "photos"))
        finally:
            scheme.clear()

    @unittest.skipUnless(os.path.exists(SHARED_WORKFLOW),
                         "the shared peer workflow is not available")
    def test_shared_peer_workflow(self):
        scheme, errors = load_workflow(SHARED_WORKFLOW)
        try:
            # widgets of other add-ons/parts may be unknown to this registry
            widget = scheme.widget_for_node(scheme.nodes[0])
            self.assertIsInstance(widget, OWImportImages)
            self.process_events(until=lambda: widget.task is None,
                                timeout=20000)
            self.assertEqual(
                widget.current_folder(),
                os.path.normpath(os.path.join(
                    os.path.dirname(os.path.abspath(SHARED_WORKFLOW)),
                    "photos")))
            table = widget.result.table
            self.assertEqual(len(table), 4)
            self.assertEqual(len(table.domain.class_var.values), 2)
        finally:
            scheme.clear()
            del errors


if __name__ == "__main__":
    unittest.main()
