"""Image Grid through WidgetTest: outputs, groups, modifiers, subset, settings."""
import base64
import os
import pickle
import unittest

import numpy as np
from AnyQt.QtCore import Qt
from Orange.data import ContinuousVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid

SHARED_WORKFLOW = os.path.join(os.path.dirname(__file__), "..", "..", "..",
                               "shared", "data", "workflows", "peer-0.13-photos.ows")


def make_table(n=40, d=8, missing_image=0, nan_rows=0):
    rng = np.random.default_rng(0)
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
        w._on_label()
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
        self.assertEqual(w.imageAttr, 0)

    def test_preview_and_report(self):
        self.send(self.data)
        w = self.widget
        w.view.current = 0
        w.toggle_preview()
        self.assertTrue(w.preview.isVisible())
        w.toggle_preview()
        self.assertFalse(w.preview.isVisible())
        w.send_report()


if __name__ == "__main__":
    unittest.main()
