"""Image Viewer: defaults, placeholders with reasons, selection, restore, preview."""
import base64
import os
import pickle
import tempfile
import time
import unittest

import numpy as np
from AnyQt.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from AnyQt.QtGui import QImage, QMouseEvent
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from orangewidget.settings import Context
from orangewidget.utils.signals import LazyValue
from thumbnail_fixtures import bad_files, image_server, write_panorama, write_photo
from widget_helpers import WidgetHelpersTest

from orangecontrib.imageanalytics.widgets.owimageviewer import OWImageViewer

OLD_VIEWER = "Orange.widgets.data.owimageviewer.OWImageViewer"
QUALIFIED = "orangecontrib.imageanalytics.widgets.owimageviewer.OWImageViewer"


def image_table(values, origin=None, labels=None, extra_string=True):
    image = StringVariable("image")
    image.attributes["type"] = "image"
    if origin is not None:
        image.attributes["origin"] = origin
    metas = [image]
    columns = [list(values)]
    if extra_string:
        metas.append(StringVariable("name"))
        columns.append([f"n{i}" for i in range(len(values))])
    class_var = None
    y = None
    if labels is not None:
        class_var = DiscreteVariable("label", values=tuple(sorted(set(labels))))
        y = np.array([class_var.values.index(v) for v in labels], float)
    domain = Domain([ContinuousVariable("x")], class_var, metas)
    x = np.arange(len(values), dtype=float)[:, None]
    m = np.array(columns, dtype=object).T
    return Table.from_numpy(domain, x, y, m)


class TestOWImageViewer(WidgetTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.folder = self.tmp.name
        self.names = []
        for i in range(5):
            name = f"photo{i}.jpg"
            write_photo(os.path.join(self.folder, name), (80, 60), color=(40 * i, 90, 10))
            self.names.append(name)
        self.widget = self.create_widget(OWImageViewer)

    def tearDown(self):
        self.widget.onDeleteWidget()
        super().tearDown()
        self.tmp.cleanup()

    def wait_loaded(self, timeout=15):
        model = self.widget.model
        deadline = time.monotonic() + timeout
        while True:
            QApplication.processEvents()
            rows = range(model.rowCount())
            # ask for every row, as painting does
            for r in rows:
                model.thumbnail(r)
            if not any(self.widget.loader.is_pending(r) for r in rows):
                break
            if time.monotonic() > deadline:
                self.fail("thumbnails did not load")
            time.sleep(0.01)
        self.widget._update_info()

    def test_metadata(self):
        self.assertEqual(OWImageViewer.name, "Image Viewer")
        self.assertIn(OLD_VIEWER, OWImageViewer.replaces)
        self.assertEqual(OWImageViewer.Inputs.data.name, "Data")
        self.assertEqual(OWImageViewer.Outputs.selected_data.name, "Selected Images")
        self.assertEqual(OWImageViewer.Outputs.data.name, "Data")
        self.assertEqual(OWImageViewer.settings_version, 2)

    def test_defaults(self):
        data = image_table(self.names, self.folder, labels=list("aabba"))
        self.send_signal(self.widget.Inputs.data, data)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.assertIs(self.widget.title_attr, data.domain.class_var)
        self.assertEqual(self.widget.model.rowCount(), 5)
        self.assertEqual(self.widget.model.data(self.widget.model.index(2)), "b")
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        self.assertEqual(self.widget.title_attr.name, "name")

    def test_no_string_column(self):
        self.send_signal(self.widget.Inputs.data, Table("iris"))
        self.assertTrue(self.widget.Error.no_image_attr.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.send_signal(self.widget.Inputs.data, None)
        self.assertFalse(self.widget.Error.no_image_attr.is_shown())

    def test_bad_inputs_stay_with_reasons(self):
        bad = bad_files(self.folder)
        pano = write_panorama(os.path.join(self.folder, "pano.png"))
        with image_server({}) as base:
            values = [self.names[0], *sorted(bad), "", pano, base + "/nothing.png"]
            data = image_table(values, self.folder)
            self.send_signal(self.widget.Inputs.data, data)
            model = self.widget.model
            self.assertEqual(model.rowCount(), len(values))
            self.wait_loaded()
        self.assertIsInstance(model.thumbnail(0), QImage)
        self.assertIsInstance(model.thumbnail(values.index(pano)), QImage)
        reasons = {values[r]: reason for r, reason in model.failures().items()}
        self.assertIn("empty", reasons["zero.jpg"])
        self.assertIn("truncated", reasons["truncated.jpg"])
        self.assertIn("not an image", reasons["text.jpg"])
        self.assertIn("too large", reasons["bomb.png"])
        self.assertIn("not found", reasons["missing.jpg"])
        self.assertEqual(reasons[""], "missing value")
        self.assertIn("404", reasons[base + "/nothing.png"])
        tooltip = model.data(model.index(values.index("text.jpg")), Qt.ToolTipRole)
        self.assertIn("not an image", tooltip)
        self.assertIn(os.path.join(self.folder, "text.jpg"), tooltip)
        self.assertTrue(self.widget.Warning.not_shown.is_shown())
        self.assertTrue(self.widget.Information.missing_values.is_shown())
        self.assertIn("7 could not be shown", self.widget.info_label.text())

    def test_selection_outputs(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        self.assertIsNone(self.get_output(self.widget.Outputs.selected_data))
        annotated = self.get_output(self.widget.Outputs.data)
        self.assertEqual(len(annotated), 5)
        self.widget.select_rows([1, 3])
        selected = self.get_output(self.widget.Outputs.selected_data)
        self.assertEqual(list(selected.metas[:, 0]), [self.names[1], self.names[3]])
        # the annotated table is made only when a linked widget asks for it
        raw = self.widget.signalManager.get_output(self.widget, "Data", 0)
        self.assertTrue(LazyValue.is_lazy(raw))
        annotated = self.get_output(self.widget.Outputs.data)
        self.assertEqual(annotated.domain.class_var.name, "Selected")
        self.assertEqual(list(annotated.Y), [0, 1, 0, 1, 0])
        self.assertEqual(self.widget.selected_items, {self.names[1], self.names[3]})
        # runs of rows
        self.widget.select_rows([4, 0, 1, 2])
        selected = self.get_output(self.widget.Outputs.selected_data)
        self.assertEqual(list(selected.metas[:, 0]), [self.names[i] for i in (0, 1, 2, 4)])

    def test_ctrl_a_and_keys(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        view = self.widget.view
        view.setFocus()
        QTest.keyClick(view, Qt.Key_A, Qt.ControlModifier)
        self.assertEqual(len(self.get_output(self.widget.Outputs.selected_data)), 5)

    def test_mouse_selection(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        view = self.widget.view
        # wide enough for the five images on one line
        self.widget.resize(1400, 500)
        self.widget.show()
        QApplication.processEvents()

        def click(row, modifier=Qt.NoModifier):
            rect = view.visualRect(self.widget.model.index(row))
            QTest.mouseClick(view.viewport(), Qt.LeftButton, modifier, rect.center())

        def selected():
            out = self.get_output(self.widget.Outputs.selected_data)
            return [] if out is None else sorted(out.metas[:, 0])

        click(1)
        self.assertEqual(selected(), [self.names[1]])
        click(3, Qt.ControlModifier)
        self.assertEqual(selected(), [self.names[1], self.names[3]])
        click(1, Qt.ControlModifier)
        self.assertEqual(selected(), [self.names[3]])
        click(0)
        click(2, Qt.ShiftModifier)
        self.assertEqual(selected(), self.names[:3])
        # a rubber band dragged from the empty corner to the middle of image 3
        viewport = view.viewport()
        corner = viewport.rect().bottomRight() - QPoint(5, 5)
        self.assertFalse(view.indexAt(corner).isValid())
        target = view.visualRect(self.widget.model.index(3)).center()
        QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, corner)
        for t in (0.3, 0.6, 1.0):
            point = corner + (target - corner) * t
            QApplication.sendEvent(viewport, QMouseEvent(
                QEvent.MouseMove, QPointF(point), Qt.NoButton, Qt.LeftButton,
                Qt.NoModifier))
        QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, target)
        band = QRect(target, corner).normalized()
        inside = [self.names[r] for r in range(5)
                  if view.visualRect(self.widget.model.index(r)).intersects(band)]
        self.assertIn(self.names[3], inside)
        self.assertEqual(selected(), inside)
        self.widget.hide()

    def test_selection_survives_reload_and_reorder(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        self.widget.select_rows([0, 4])
        settings = self.widget.settingsHandler.pack_data(self.widget)
        w2 = self.create_widget(OWImageViewer, stored_settings=settings)
        self.send_signal(w2.Inputs.data, data[::-1], widget=w2)
        selected = self.get_output(w2.Outputs.selected_data, widget=w2)
        self.assertEqual(sorted(selected.metas[:, 0]), [self.names[0], self.names[4]])
        w2.onDeleteWidget()

    def test_zoom_requests_new_size(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        self.wait_loaded()
        self.assertEqual(self.widget.model.thumbnail(0).width(), 80)
        self.widget.controls.imageSize.setValue(32)
        self.assertEqual(self.widget.delegate.size, 32)
        self.assertIsInstance(self.widget.model.thumbnail(0), QImage)

    def test_space_opens_and_closes_preview(self):
        data = image_table(self.names, self.folder)
        self.send_signal(self.widget.Inputs.data, data)
        view = self.widget.view
        view.setCurrentIndex(self.widget.model.index(1))
        QTest.keyClick(view, Qt.Key_Space)
        preview = self.widget.preview
        self.assertTrue(preview.isVisible())
        self.assertIn("photo1", preview.image_label.toolTip())
        self.assertIn("photo1.jpg", preview.caption.text())
        preview.navigate.emit(Qt.Key_Right)
        self.assertEqual(view.currentIndex().row(), 2)
        self.assertIn("photo2", preview.image_label.toolTip())
        QTest.keyClick(view, Qt.Key_Space)
        self.assertFalse(preview.isVisible())

    def test_report(self):
        names = [*self.names, "gone.jpg"]
        data = image_table(names, self.folder, labels=list("aabbab"))
        self.send_signal(self.widget.Inputs.data, data)
        self.wait_loaded()
        self.widget.select_rows([1, 3])
        self.widget.create_report_html()
        report = self.widget.report_html
        for item in ("<b>Image column:</b> image</br>", "<b>Title:</b> label</br>",
                     "<b>Images:</b> 6</br>", "<b>Could not be shown:</b> 1</br>",
                     "<b>Selected:</b> 2</br>"):
            self.assertIn(item, report)
        # a picture of the thumbnails
        self.assertIn('<img src="data:image/png;base64,', report)


class TestVisibleRows(WidgetHelpersTest):
    def test_every_scroll_position_finds_the_rows_in_view(self):
        """At some positions the viewport's top edge lies in the gap between
        two lines of thumbnails; the rows in view must still be found (the
        loader keeps only their requests)."""
        widget = self.create_widget(OWImageViewer)
        widget.resize(900, 600)
        widget.show()
        n = 400
        names = [f"img{i}.png" for i in range(n)]
        image = StringVariable("image")
        image.attributes["type"] = "image"
        data = Table.from_numpy(Domain([], metas=[image]), np.empty((n, 0)), None,
                                np.array(names, dtype=object)[:, None])
        self.send_signal(widget.Inputs.data, data)
        view = widget.view
        bar = view.verticalScrollBar()
        self.process_events(until=lambda: bar.maximum() > 0)
        self.assertGreater(bar.maximum(), 300)
        model, area = view.model(), view.viewport().rect()
        for value in range(0, 300):
            bar.setValue(value)
            shown = {r for r in range(n) if view.visualRect(model.index(r)).intersects(area)}
            self.assertTrue(shown)
            self.assertLessEqual(shown, set(view.visible_rows()), f"scrolled to {value}")


class TestOldSettings(WidgetHelpersTest):
    def test_version_1_context_dropped(self):
        context = Context(values={"imageAttr": 0, "titleAttr": 1,
                                  "image_attr": (0, -2)},
                          attributes={"image": 3}, metas={})
        settings = {"context_settings": [context], "imageSize": 200,
                    "__version__": 1}
        w = self.create_widget(OWImageViewer, stored_settings=settings)
        self.assertEqual(w.imageSize, 200)
        self.assertEqual(w.settingsHandler.global_contexts if hasattr(
            w.settingsHandler, "global_contexts") else [], [])
        self.assertEqual(w.context_settings, [])
        w.onDeleteWidget()

    def test_version_2_context_restores_columns_and_selection(self):
        with tempfile.TemporaryDirectory() as folder:
            names = [write_photo(os.path.join(folder, f"{i}.png"), (10, 10)) for i in range(3)]
            data = image_table([os.path.basename(n) for n in names], folder)
            w = self.create_widget(OWImageViewer)
            self.send_signal(w.Inputs.data, data, widget=w)
            w.title_attr = data.domain["x"]
            w.select_rows([2])
            settings = w.settingsHandler.pack_data(w)
            w.onDeleteWidget()
            w2 = self.create_widget(OWImageViewer, stored_settings=settings)
            self.send_signal(w2.Inputs.data, data, widget=w2)
            self.assertEqual(w2.title_attr.name, "x")
            self.assertEqual(w2.selected_items, {"2.png"})
            self.assertEqual(len(self.get_output(w2.Outputs.selected_data, widget=w2)), 1)
            w2.onDeleteWidget()


def _encoded(values):
    return base64.b64encode(pickle.dumps(values)).decode()


def ows_with_viewer(qualified_name, settings) -> str:
    """A workflow File -> Image Viewer whose viewer holds ``settings``
    (pickled, as the canvas stores them), linked to the viewer's "Data"."""
    properties = _encoded(settings)
    return f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="" description="">
  <nodes>
    <node id="0" name="File" qualified_name="Orange.widgets.data.owfile.OWFile"
          project_name="Orange3" version="" title="File" position="(0, 100)" />
    <node id="1" name="Image Viewer" qualified_name="{qualified_name}"
          project_name="Orange3" version="" title="Image Viewer" position="(100, 100)" />
    <node id="2" name="Data Table" qualified_name="Orange.widgets.data.owtable.OWTable"
          project_name="Orange3" version="" title="Data Table" position="(200, 100)" />
  </nodes>
  <links>
    <link id="0" source_node_id="0" sink_node_id="1" source_channel="Data"
          sink_channel="Data" enabled="true" />
    <link id="1" source_node_id="1" sink_node_id="2" source_channel="Data"
          sink_channel="Data" enabled="true" />
  </links>
  <annotations />
  <node_properties>
    <properties node_id="1" format="pickle">{properties}</properties>
  </node_properties>
</scheme>"""


class TestOldWorkflows(WidgetHelpersTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from Orange.canvas.config import Config
        from orangecanvas.registry import WidgetRegistry

        cls.registry = WidgetRegistry()
        Config.widget_discovery(cls.registry).run(Config.widgets_entry_points())

    def load(self, ows: str):
        from orangecanvas.scheme import Scheme, readwrite

        scheme = Scheme()
        errors = []
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "old.ows")
            with open(path, "w", encoding="utf-8") as f:
                f.write(ows)
            with open(path, "rb") as f:
                readwrite.scheme_load(scheme, f, registry=self.registry,
                                      error_handler=errors.append)
        self.assertEqual(errors, [])
        return scheme

    def viewer_from(self, ows: str):
        scheme = self.load(ows)
        node = scheme.nodes[1]
        self.assertEqual(node.description.qualified_name, QUALIFIED)
        # the link to the old viewer's "Data" output is kept
        self.assertEqual(len(scheme.links), 2)
        self.assertEqual(scheme.links[1].source_channel.name, "Data")
        return self.create_widget(OWImageViewer, stored_settings=node.properties)

    def test_removed_core_viewer_opens_this_widget(self):
        w = self.viewer_from(ows_with_viewer(OLD_VIEWER, {"imageSize": 150}))
        self.assertEqual(w.imageSize, 150)
        w.onDeleteWidget()

    def _data(self, folder):
        names = [os.path.basename(write_photo(os.path.join(folder, f"{i}.png"), (10, 10)))
                 for i in range(3)]
        return image_table(names, folder), names

    def test_version_1_workflow_context_dropped(self):
        # the older viewer stored int indexes into its combos
        context = Context(values={"imageAttr": 0, "titleAttr": 1, "image_attr": 0,
                                  "selected_items": {"1.png"}},
                          attributes={"x": 2}, metas={"image": 3, "name": 3})
        settings = {"imageSize": 64, "context_settings": [context], "__version__": 1}
        w = self.viewer_from(ows_with_viewer(QUALIFIED, settings))
        with tempfile.TemporaryDirectory() as folder:
            data, _ = self._data(folder)
            self.send_signal(w.Inputs.data, data, widget=w)
            self.assertEqual(w.image_attr.name, "image")
            self.assertEqual(w.title_attr.name, "name")  # the default
            self.assertEqual(w.selected_items, set())
            self.assertIsNone(self.get_output(w.Outputs.selected_data, widget=w))
        self.assertEqual(w.imageSize, 64)
        w.onDeleteWidget()

    def test_version_2_workflow_restores_columns_and_selection(self):
        context = Context(values={"image_attr": ("image", 103), "title_attr": ("x", 102),
                                  "selected_items": {"2.png", "0.png"}},
                          attributes={"x": 2}, metas={"image": 3, "name": 3})
        settings = {"imageSize": 96, "context_settings": [context], "__version__": 2}
        w = self.viewer_from(ows_with_viewer(QUALIFIED, settings))
        with tempfile.TemporaryDirectory() as folder:
            data, _ = self._data(folder)
            self.send_signal(w.Inputs.data, data[::-1], widget=w)
            self.assertEqual(w.title_attr.name, "x")
            selected = self.get_output(w.Outputs.selected_data, widget=w)
            self.assertEqual(sorted(selected.metas[:, 0]), ["0.png", "2.png"])
            annotated = self.get_output(w.Outputs.data, widget=w)
            self.assertEqual(list(annotated.Y), [1, 0, 1])
        w.onDeleteWidget()


if __name__ == "__main__":
    unittest.main()
