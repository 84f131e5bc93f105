"""Image Grid through WidgetTest: outputs, groups, modifiers, subset, settings."""
import base64
import os
import pickle
import threading
import time
import unittest
import unittest.mock

import numpy as np
from AnyQt.QtCore import QPoint, QRect, Qt
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication
from Orange.data import ContinuousVariable, Domain, StringVariable, Table
from Orange.widgets.settings import Context
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.imageanalytics.image_grid import auto_size
from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid
from orangecontrib.imageanalytics.widgets.utils.grid_view import MARGIN

SHARED_WORKFLOW = os.path.join(os.path.dirname(__file__), "..", "..", "..",
                               "shared", "data", "workflows", "peer-0.13-photos.ows")


def make_table(n=40, d=8, missing_image=0, nan_rows=0, seed=0):
    rng = np.random.default_rng(seed)
    image = StringVariable("image")
    image.attributes["type"] = "image"
    attrs = [ContinuousVariable(f"n{i}") for i in range(d)]
    domain = Domain(attrs, metas=[StringVariable("name"), image])
    x = rng.normal(size=(n, d))
    x[:nan_rows, 0] = np.nan
    metas = np.array([[f"img{i}", f"missing/img{i}.png"] for i in range(n)], dtype=object)
    for i in range(missing_image):
        metas[n - 1 - i, 1] = ""
    return Table.from_numpy(domain, x, metas=metas)


class TestOWImageGrid(WidgetTest):
    def setUp(self):
        self.widget = self.create_widget(OWImageGrid)
        self.data = make_table()

    def send(self, data):
        self.send_signal(self.widget.Inputs.data, data)
        self.wait_until_finished(timeout=60000)

    def test_outputs_keep_ids_and_order(self):
        self.send(self.data)
        w = self.widget
        self.assertIsNone(self.get_output(w.Outputs.selected_data))
        images = self.get_output(w.Outputs.data)
        np.testing.assert_array_equal(images.ids, self.data.ids)
        self.assertEqual(images.domain.class_var.name, "Selected")
        cells = w._layout.cell
        self.assertEqual(len(set(cells.tolist())), len(self.data))

    def test_one_group(self):
        self.send(self.data)
        w = self.widget
        w.select([3, 1, 7])
        sel = self.get_output(w.Outputs.selected_data)
        np.testing.assert_array_equal(sel.ids, self.data.ids[[1, 3, 7]])
        self.assertEqual(sel.domain["Group"].values, ("G1",))
        images = self.get_output(w.Outputs.data)
        self.assertEqual(images.domain.class_var.values, ("No", "Yes"))
        self.assertEqual(int(images.Y.sum()), 3)

    def test_modifiers_and_groups(self):
        self.send(self.data)
        w = self.widget
        w.select([0, 1])
        w.select([2, 3], Qt.ShiftModifier)               # a new group
        w.select([4], Qt.ShiftModifier | Qt.ControlModifier)  # add to the last
        np.testing.assert_array_equal(w.view.groups[:5], [1, 1, 2, 2, 2])
        w.select([1, 2], Qt.AltModifier)                 # remove
        np.testing.assert_array_equal(w.view.groups[:5], [1, 0, 0, 2, 2])
        sel = self.get_output(w.Outputs.selected_data)
        self.assertEqual(len(sel), 3)
        self.assertEqual(sel.domain["Group"].values, ("G1", "G2"))
        images = self.get_output(w.Outputs.data)
        self.assertEqual(images.domain.class_var.values, ("G1", "G2", "Unselected"))
        w.select([5])                                     # plain: a new selection
        np.testing.assert_array_equal(np.flatnonzero(w.view.groups), [5])
        w.select([0, 1], Qt.AltModifier)
        w.select([5], Qt.AltModifier)
        self.assertIsNone(self.get_output(w.Outputs.selected_data))

    def test_subset_fades_and_warns(self):
        self.send(self.data)
        w = self.widget
        self.send_signal(w.Inputs.data_subset, self.data[:5])
        self.assertEqual(int((~w.view.faded).sum()), 5)
        self.assertFalse(w.Warning.some_subset_missing.is_shown())
        other = make_table(3)
        with other.unlocked():
            other.metas[:, 1] = ["x", "y", "z"]
            other.ids = np.array([-1, -2, -3])
        self.send_signal(w.Inputs.data_subset, other)
        self.assertTrue(w.Warning.no_subset_in_data.is_shown())
        mixed = Table.concatenate([self.data[:2], other])
        self.send_signal(w.Inputs.data_subset, mixed)
        self.assertTrue(w.Warning.some_subset_missing.is_shown())
        self.assertFalse(w.Warning.no_subset_in_data.is_shown())
        self.send_signal(w.Inputs.data_subset, None)
        self.assertFalse(w.view.faded.any())
        self.assertFalse(w.Warning.some_subset_missing.is_shown())

    def test_no_data_no_attributes_no_image_column(self):
        w = self.widget
        self.send(None)
        self.assertIsNone(self.get_output(w.Outputs.data))
        no_attrs = self.data.transform(Domain([], metas=self.data.domain.metas))
        self.send(no_attrs)
        self.assertTrue(w.Warning.no_valid_data.is_shown())
        no_image = self.data.transform(Domain(self.data.domain.attributes))
        self.send(no_image)
        self.assertTrue(w.Error.no_image_attr.is_shown())
        self.assertIsNone(self.get_output(w.Outputs.data))
        self.send(self.data)
        self.assertFalse(w.Error.no_image_attr.is_shown())
        self.assertFalse(w.Warning.no_valid_data.is_shown())

    def test_rows_without_vectors_or_images_left_out(self):
        data = make_table(30, missing_image=2, nan_rows=3)
        self.send(data)
        w = self.widget
        self.assertTrue(w.Information.left_out.is_shown())
        images = self.get_output(w.Outputs.data)
        self.assertEqual(len(images), 25)
        np.testing.assert_array_equal(images.ids, data.ids[3:28])

    def test_features_are_read_off_the_gui_thread(self):
        # 100,000 rows are 800 MB of features: the check for whole vectors
        # runs in the worker, not in the input call
        from orangecontrib.imageanalytics.widgets.utils import grid_rows
        threads = []
        usable = grid_rows.usable_rows

        def recording(*args):
            threads.append(threading.current_thread())
            return usable(*args)
        with unittest.mock.patch.object(grid_rows, "usable_rows", recording):
            self.send(make_table(30, nan_rows=3))
        self.assertEqual(len(threads), 1)
        self.assertIsNot(threads[0], threading.main_thread())
        self.assertEqual(len(self.widget.data), 27)
        self.assertTrue(self.widget.Information.left_out.is_shown())

    def test_a_failure_while_reading_the_rows_is_a_message(self):
        # reading the rows runs in the worker: what goes wrong there (here:
        # no memory for the rows kept) is shown, the outputs stay empty
        from orangecontrib.imageanalytics.widgets.utils import grid_rows

        def no_memory(*_):
            raise MemoryError("cannot allocate 800 MB")
        with unittest.mock.patch.object(grid_rows, "grid_rows", no_memory):
            self.send(make_table(30, nan_rows=3))
        w = self.widget
        self.assertTrue(w.Error.layout_failed.is_shown())
        self.assertIn("800 MB", str(w.Error.layout_failed))
        self.assertIsNone(w.data)
        self.assertIsNone(self.get_output(w.Outputs.data))
        self.send(self.data)
        self.assertFalse(w.Error.layout_failed.is_shown())
        self.assertEqual(len(self.get_output(w.Outputs.data)), len(self.data))

    def test_size_chosen_while_new_data_is_read_is_kept(self):
        w = self.widget
        self.send_signal(w.Inputs.data, make_table(30))
        self.assertIsNone(w.data)          # the worker has the rows
        w.rows, w.columns = 4, 9
        w._on_size()
        self.wait_until_finished(timeout=60000)
        self.assertEqual((w.rows, w.columns), (4, 9))
        self.assertEqual((w.view.rows, w.view.cols), (4, 9))

    def test_too_small_grid_is_a_message(self):
        self.send(self.data)
        w = self.widget
        w.rows, w.columns = 2, 3
        w._on_size()
        self.assertTrue(w.Warning.too_small.is_shown())
        w.set_auto_size()
        self.wait_until_finished(timeout=60000)
        self.assertFalse(w.Warning.too_small.is_shown())

    def test_resize_resnaps_without_projection(self):
        self.send(self.data)
        w = self.widget
        coords = w._coords
        w.rows, w.columns = 4, 12
        w._on_size()
        self.wait_until_finished(timeout=60000)
        self.assertIs(w._coords, coords)
        self.assertEqual((w.view.rows, w.view.cols), (4, 12))

    def test_settings_restored(self):
        self.send(self.data)
        w = self.widget
        w._cell_fit_index = 1
        w._on_cell_fit()
        w.label_attr = self.data.domain["name"]
        w._set_labels()
        w.rows, w.columns = 5, 9
        w._on_size()
        self.wait_until_finished(timeout=60000)
        w.select([2, 4])
        w.select([6], Qt.ShiftModifier)
        settings = self.widget.settingsHandler.pack_data(w)
        w2 = self.create_widget(OWImageGrid, stored_settings=settings)
        self.send_signal(w2.Inputs.data, self.data, widget=w2)
        self.wait_until_finished(w2, timeout=60000)
        self.assertEqual(w2.cell_fit, "Crop")
        self.assertTrue(w2.view.crop)
        self.assertEqual(w2.label_attr.name, "name")
        self.assertEqual((w2.rows, w2.columns), (5, 9))
        np.testing.assert_array_equal(np.flatnonzero(w2.view.groups), [2, 4, 6])
        sel = self.get_output(w2.Outputs.selected_data, widget=w2)
        self.assertEqual(len(sel), 3)

    def test_migrate_old_settings(self):
        settings = {"cell_fit": 1, "columns": np.int32(5), "rows": np.int32(4),
                    "imageSize": 100, "auto_update": True, "__version__": 1}
        w = self.create_widget(OWImageGrid, stored_settings=settings)
        self.assertEqual(w.cell_fit, "Crop")
        self.assertEqual((w.rows, w.columns), (4, 5))
        self.assertIsInstance(w.rows, int)

    @unittest.skipUnless(os.path.exists(SHARED_WORKFLOW), "shared workflow absent")
    def test_peer_workflow_settings(self):
        import xml.etree.ElementTree as ET
        tree = ET.parse(SHARED_WORKFLOW)
        props = [p for p in tree.iter("properties") if p.get("node_id") == "2"][0]
        settings = pickle.loads(base64.b64decode(props.text))
        w = self.create_widget(OWImageGrid, stored_settings=settings)
        self.assertEqual(w.cell_fit, "Resize")
        self.assertEqual((w.rows, w.columns), (5, 5))
        self.send_signal(w.Inputs.data, self.data, widget=w)
        self.wait_until_finished(w, timeout=60000)
        self.assertIsNotNone(self.get_output(w.Outputs.data, widget=w))
        self.assertIs(w.imageAttr, self.data.domain["image"])

    def test_imageattr_stored_as_variable(self):
        self.send(self.data)
        w = self.widget
        w.imageAttr = self.data.domain["name"]
        w._on_image_attr()
        self.wait_until_finished(timeout=60000)
        settings = w.settingsHandler.pack_data(w)
        stored = settings["context_settings"][0].values["imageAttr"]
        self.assertEqual(stored, ("name", 103))
        w2 = self.create_widget(OWImageGrid, stored_settings=settings)
        self.send_signal(w2.Inputs.data, self.data, widget=w2)
        self.wait_until_finished(w2, timeout=60000)
        self.assertIs(w2.imageAttr, self.data.domain["name"])
        self.assertEqual(w2.view.values[0], "img0")

    def test_old_imageattr_index_migrated(self):
        # the older add-on stored an index into the image columns (those
        # marked type=image first): 1 is "name", though it comes first
        context = Context(values={"imageAttr": (np.int64(1), -2), "__version__": 1},
                          attributes={}, metas={"name": 3, "image": 3})
        settings = {"rows": 5, "columns": 8, "__version__": 1,
                    "context_settings": [context]}
        w = self.create_widget(OWImageGrid, stored_settings=settings)
        self.send_signal(w.Inputs.data, self.data, widget=w)
        self.wait_until_finished(w, timeout=60000)
        self.assertIs(w.imageAttr, self.data.domain["name"])
        self.assertEqual(w.view.values[:2], ["img0", "img1"])
        self.assertEqual(w.settingsHandler.pack_data(w)["context_settings"][0]
                         .values["imageAttr"], ("name", 103))

    def test_preview_and_report(self):
        self.send(self.data)
        w = self.widget
        w.view.current = 0
        w.toggle_preview()
        self.assertTrue(w.preview.isVisible())
        w.toggle_preview()
        self.assertFalse(w.preview.isVisible())
        w.send_report()


def shown(test, widget):
    """``widget`` on screen at its default size, laid out."""
    widget.resize(widget.sizeHint())
    widget.show()
    QApplication.processEvents()
    return widget


class TestFirstDataSize(WidgetTest):
    def setUp(self):
        self.widget = shown(self, self.create_widget(OWImageGrid))

    def send(self, widget, data):
        self.send_signal(widget.Inputs.data, data, widget=widget)
        self.wait_until_finished(widget, timeout=60000)

    def test_fresh_widget_sizes_itself_for_its_first_data(self):
        w = self.widget
        self.assertEqual((w.rows, w.columns), (10, 10))  # the stored default
        self.send(w, make_table(30))
        self.assertGreaterEqual(w.rows * w.columns, 30)
        # not the default 10 × 10: at most one row or column is left empty
        self.assertLess(min(w.rows, w.columns) * max(w.rows, w.columns) - 30,
                        max(w.rows, w.columns))
        vp = w.view.viewport().size()
        self.assertEqual((w.rows, w.columns), auto_size(30, vp.width() / vp.height()))

    def test_size_restored_from_a_workflow_stays(self):
        w = self.widget
        self.send(w, make_table(30))
        w.rows, w.columns = 6, 7
        w._on_size()
        w.auto_update = True       # sized by hand, then asked to size itself
        settings = w.settingsHandler.pack_data(w)
        w2 = shown(self, self.create_widget(OWImageGrid, stored_settings=settings))
        self.send(w2, make_table(30))
        self.assertEqual((w2.rows, w2.columns), (6, 7))
        # later data is sized automatically, as asked
        self.send(w2, make_table(12))
        self.assertLess(w2.rows * w2.columns, 6 * 7)

    def test_old_workflow_size_stays(self):
        settings = {"rows": np.int32(6), "columns": np.int32(6),
                    "auto_update": True, "__version__": 1}
        w = shown(self, self.create_widget(OWImageGrid, stored_settings=settings))
        self.send(w, make_table(30))
        self.assertEqual((w.rows, w.columns), (6, 6))


class TestFitToWindow(WidgetTest):
    def setUp(self):
        self.widget = shown(self, self.create_widget(OWImageGrid))

    def send(self, data):
        self.send_signal(self.widget.Inputs.data, data)
        self.wait_until_finished(timeout=60000)
        QApplication.processEvents()

    def assert_whole_grid_in_view(self):
        view = self.widget.view
        vp = view.viewport().rect()
        for cell in (0, view.rows * view.cols - 1):
            self.assertTrue(vp.contains(view.cell_rect(cell)), cell)
        self.assertEqual(view.horizontalScrollBar().maximum(), 0)
        self.assertEqual(view.verticalScrollBar().maximum(), 0)

    def assert_largest_fit(self):
        view = self.widget.view
        vp = view.viewport().size()
        size = view.cell_size + 1 + MARGIN
        self.assertTrue(view.cols * size > vp.width() or view.rows * size > vp.height())

    def test_new_widget_fits_the_grid_in_its_window(self):
        w = self.widget
        self.send(make_table(64))
        self.assertTrue(w.zoom_to_fit)
        self.assert_whole_grid_in_view()
        self.assert_largest_fit()
        self.assertEqual(w.imageSize, w.view.cell_size)   # the slider shows it
        # the tutorial's 8 × 8 grid fits too
        w.rows, w.columns = 8, 8
        w._on_size()
        self.wait_until_finished(timeout=60000)
        QApplication.processEvents()
        self.assert_whole_grid_in_view()
        self.assert_largest_fit()

    def test_fits_again_on_resize_until_zoomed_by_hand(self):
        w = self.widget
        self.send(make_table(30))
        before = w.view.cell_size
        w.resize(w.width() + 300, w.height() + 200)
        QApplication.processEvents()
        self.assertGreater(w.view.cell_size, before)
        self.assert_whole_grid_in_view()
        self.assert_largest_fit()
        # Ctrl + wheel zooms by hand: a resize no longer changes the size
        wheel(w.view.viewport(), 1)
        self.assertFalse(w.zoom_to_fit)
        zoomed = w.view.cell_size
        self.assertEqual(zoomed, w.imageSize)
        w.resize(w.width() - 300, w.height() - 200)
        QApplication.processEvents()
        self.assertEqual(w.view.cell_size, zoomed)
        # "Fit to window" again
        w.controls.zoom_to_fit.click()
        QApplication.processEvents()
        self.assertTrue(w.zoom_to_fit)
        self.assert_whole_grid_in_view()
        self.assert_largest_fit()

    def test_slider_still_zooms(self):
        w = self.widget
        self.send(make_table(30))
        fitted = w.view.cell_size
        w.controls.imageSize.setValue(fitted + 40)   # as a user drags it
        self.assertFalse(w.zoom_to_fit)
        self.assertEqual(w.view.cell_size, fitted + 40)
        self.assertGreater(w.view.verticalScrollBar().maximum()
                           + w.view.horizontalScrollBar().maximum(), 0)

    def test_many_images_are_an_overview_map(self):
        w = self.widget
        self.send(make_table(1500, d=4))
        view = w.view
        # the whole grid in view, each image too small for a picture
        self.assertTrue(w.zoom_to_fit)
        self.assert_whole_grid_in_view()
        self.assertTrue(view.is_map())
        self.assertEqual(w.imageSize, max(1, round(view.cell_size)))
        # average colours are on their way for every image (the files are
        # missing here: each fails with its reason, nothing is left pending)
        self.assertEqual(len(w.averages.state), 1500)
        for _ in range(1000):
            if not w.averages.pending():
                break
            QApplication.processEvents()
            time.sleep(0.01)
        self.assertTrue((w.averages.state == -1).all())
        # a rubber band on the map marks a block of images, which go out
        vp = view.viewport()
        start = view.cell_rect(2 * view.cols + 2).center()
        end = view.cell_rect(9 * view.cols + 12).center()
        rows = view.rows_in(QRect(start, end))
        QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, start)
        QTest.mouseMove(vp, end)
        QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, end)
        self.assertGreaterEqual(len(rows), 60)
        selected = self.get_output(w.Outputs.selected_data)
        self.assertEqual(sorted(selected.ids), sorted(w.data.ids[rows]))
        # Ctrl + wheel zooms in at the mouse to pictures; fitting is off
        for _ in range(12):
            wheel(vp, 1, pos=end)
        self.assertFalse(view.is_map())
        self.assertFalse(w.zoom_to_fit)
        self.assertEqual(w.imageSize, round(view.cell_size))


class TestGroupsKeptByImage(WidgetTest):
    def setUp(self):
        self.widget = shown(self, self.create_widget(OWImageGrid))
        self.data = make_table(40)

    def send(self, data):
        self.send_signal(self.widget.Inputs.data, data)
        self.wait_until_finished(timeout=60000)
        QApplication.processEvents()

    def drag(self, first_cell, last_cell, modifiers=Qt.NoModifier):
        """Drag the mouse over a block of cells; the rows it marks."""
        view = self.widget.view
        vp = view.viewport()
        start, end = view.cell_rect(first_cell).center(), view.cell_rect(last_cell).center()
        rows = view.rows_in(QRect(start, end))
        QTest.mousePress(vp, Qt.LeftButton, modifiers, start)
        QTest.mouseMove(vp, QPoint((start.x() + end.x()) // 2, start.y()))
        QTest.mouseMove(vp, end)
        QTest.mouseRelease(vp, Qt.LeftButton, modifiers, end)
        self.assertTrue(rows)
        return rows

    def marked(self, data):
        """{image value: group name} of the Selected Images output."""
        out = self.get_output(self.widget.Outputs.selected_data)
        group = out.domain["Group"]
        return {img: group.str_val(g) for img, g in
                zip(out.get_column("image"), out.get_column(group), strict=True)}, out

    def test_drag_groups_kept_through_a_new_embedding(self):
        w = self.widget
        self.send(self.data)
        cols = w.view.cols
        first = self.drag(0, cols + 1)                                  # G1
        second = self.drag(3 * cols + 2, 4 * cols + 3, Qt.ShiftModifier)  # G2
        images = self.data.get_column("image")
        expected = {images[r]: "G1" for r in first}
        expected.update({images[r]: "G2" for r in second})
        marked, _ = self.marked(self.data)
        self.assertEqual(marked, expected)
        # the embedder is switched away (other vectors, other columns) ...
        self.send(None)
        other = make_table(40, d=5, seed=1)
        order = np.random.default_rng(3).permutation(40)
        self.send(other[order])
        marked, out = self.marked(other)
        self.assertEqual(marked, expected)
        self.assertEqual(out.domain["Group"].values, ("G1", "G2"))
        # ... and back: still the same groups, shown on the grid
        self.send(self.data)
        self.assertEqual(self.marked(self.data)[0], expected)
        self.assertEqual(int((w.view.groups > 0).sum()), len(expected))
        all_images = self.get_output(w.Outputs.data)
        self.assertEqual(all_images.domain.class_var.values, ("G1", "G2", "Unselected"))

    def test_subset_keeps_the_groups_of_its_images(self):
        w = self.widget
        self.send(self.data)
        w.select([0, 1, 2, 3])
        w.select([10, 11], Qt.ShiftModifier)
        self.send(self.data[1::2])      # rows 1, 3, 11 are still there
        marked, out = self.marked(self.data)
        self.assertEqual(marked, {"missing/img1.png": "G1", "missing/img3.png": "G1",
                                  "missing/img11.png": "G2"})
        # only the first group left: it stays G1, the second becomes G1 too
        self.send(self.data[[10, 11, 12]])
        self.assertEqual(self.marked(self.data)[0],
                         {"missing/img10.png": "G1", "missing/img11.png": "G1"})

    def test_groups_saved_by_image_and_old_positional_form(self):
        w = self.widget
        self.send(self.data)
        w.select([5, 6])
        settings = w.settingsHandler.pack_data(w)
        self.assertEqual(settings["selection"],
                         {"missing/img5.png": 1, "missing/img6.png": 1})
        w2 = self.create_widget(OWImageGrid, stored_settings=settings)
        self.send_signal(w2.Inputs.data, self.data[::-1], widget=w2)
        self.wait_until_finished(w2, timeout=60000)
        np.testing.assert_array_equal(np.flatnonzero(w2.view.groups), [33, 34])
        # settings version 2 kept one group per row
        old = {"selection": [0, 2, 0, 1] + [0] * 36, "__version__": 2}
        w3 = self.create_widget(OWImageGrid, stored_settings=old)
        self.send_signal(w3.Inputs.data, self.data, widget=w3)
        self.wait_until_finished(w3, timeout=60000)
        np.testing.assert_array_equal(w3.view.groups[:4], [0, 2, 0, 1])
        # ... and is kept by image from then on
        self.assertEqual(w3.selection, {"missing/img1.png": 2, "missing/img3.png": 1})
        self.send_signal(w3.Inputs.data, self.data[3:], widget=w3)
        self.wait_until_finished(w3, timeout=60000)
        np.testing.assert_array_equal(np.flatnonzero(w3.view.groups), [0])


def wheel(widget, notches, pos=None):
    from AnyQt.QtCore import QPointF
    from AnyQt.QtGui import QWheelEvent
    pos = QPointF(pos if pos is not None else QPoint(20, 20))
    event = QWheelEvent(pos, pos, QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.NoButton, Qt.ControlModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


if __name__ == "__main__":
    unittest.main()
