"""Tests for the Review Images widget."""
import os
import sys
import tempfile
import threading
import time
from unittest import mock

import numpy as np
from Orange.data import ContinuousVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from orangewidget.tests.utils import simulate
from orangewidget.utils.signals import LazyValue

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from review_fixtures import blurred, decoded, jpeg, next_frame, scene, write  # noqa: E402

from orangecontrib.imageanalytics import review as review_module  # noqa: E402
from orangecontrib.imageanalytics.review import ReviewCancelled, Strictness  # noqa: E402
from orangecontrib.imageanalytics.widgets import owreviewimages  # noqa: E402
from orangecontrib.imageanalytics.widgets.owreviewimages import OWReviewImages  # noqa: E402

SAME_PICTURE = int(Strictness.SAME_PICTURE)


def make_collection(folder):
    """Rows: 0 original, 1 copy, 2 poor copy, 3 other, 4 blurry, 5 broken."""
    data = jpeg(scene(1))
    names = ["original.jpg", "copy.jpg", "poor.jpg", "other.jpg", "blurry.jpg",
             "broken.jpg"]
    write(folder, names[0], data, age=100)
    write(folder, names[1], data)
    write(folder, names[2], jpeg(decoded(data), 25))
    write(folder, names[3], jpeg(scene(2)))
    write(folder, names[4], jpeg(blurred(scene(3))))
    write(folder, names[5], b"not an image" * 10)
    var = StringVariable("image")
    var.attributes.update(type="image", origin=str(folder))
    return Table.from_list(Domain([], metas=[var]), [[n] for n in names])


def column(table, name="image"):
    return None if table is None else list(table.get_column(name))


class TestOWReviewImages(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._tmp = tempfile.TemporaryDirectory()
        cls.folder = cls._tmp.name
        cls.table = make_collection(cls.folder)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(
            OWReviewImages, stored_settings={"strictness": SAME_PICTURE})

    def reviewed(self, widget=None, data=None):
        widget = widget or self.widget
        self.send_signal(widget.Inputs.data, self.table if data is None else data,
                         widget=widget)
        self.wait_until_finished(widget, timeout=60000)
        return widget

    def outputs(self, widget=None):
        widget = widget or self.widget
        return (self.get_output(widget.Outputs.unique, widget=widget),
                self.get_output(widget.Outputs.duplicates, widget=widget),
                self.get_output(widget.Outputs.data, widget=widget))

    def test_outputs(self):
        self.reviewed()
        unique, duplicates, data = self.outputs()
        self.assertEqual(column(unique), ["original.jpg", "other.jpg", "blurry.jpg"])
        self.assertEqual(column(duplicates), ["copy.jpg", "poor.jpg"])
        self.assertEqual([duplicates.domain["Kind"].str_val(v)
                          for v in duplicates.get_column("Kind")],
                         ["same file", "same picture"])
        self.assertEqual(column(duplicates, "Keeper"), ["original.jpg"] * 2)
        self.assertEqual(len(data), len(self.table))
        self.assertEqual(data[4, "Issues"], "blurry")
        self.assertEqual(data[5, "skip reason"], "not an image")
        self.assertTrue(self.widget.Warning.skipped.is_shown())
        # made only when asked for: each copies its rows' features
        for name, n in (("Unique Images", 3), ("Duplicates", 2), ("Data", len(self.table))):
            raw = self.widget.signalManager.get_output(self.widget, name, 0)
            self.assertTrue(LazyValue.is_lazy(raw))
            self.assertEqual(raw.length, n)

    def test_leave_out_flagged(self):
        self.reviewed()
        self.widget.controls.leave_out_flagged.click()
        unique, _, _ = self.outputs()
        self.assertEqual(column(unique), ["original.jpg", "other.jpg"])

    def test_groups_view_marks_the_keeper(self):
        self.reviewed()
        buttons = {row: b for row, bs in self.widget._buttons.items() for b in bs}
        self.assertEqual(sorted(buttons), [0, 1, 2])
        self.assertTrue(buttons[0].property("keeper"))
        self.assertFalse(buttons[1].property("keeper"))
        self.assertEqual(self.widget.flagged_list.count(), 1)
        simulate.combobox_activate_item(self.widget.controls.issue_filter, "dark")
        self.assertEqual(self.widget.flagged_list.count(), 0)
        simulate.combobox_activate_item(self.widget.controls.issue_filter, "blurry")
        self.assertEqual(self.widget.flagged_list.count(), 1)

    def test_large_groups_and_many_groups_do_not_hold_the_gui(self):
        """A group of hundreds shows its first photos and counts the rest;
        hundreds of groups are built a slice at a time."""
        from AnyQt.QtWidgets import QApplication, QLabel

        from orangecontrib.imageanalytics.widgets.utils import review_view
        # 40 copies of each of 30 files: 30 groups of 40 rows
        names = [f"f{k}.jpg" for k in range(30)]
        with tempfile.TemporaryDirectory() as folder:
            for k, name in enumerate(names):
                write(folder, name, jpeg(scene(100 + k, size=(64, 48))))
            other = StringVariable("image")
            other.attributes.update(type="image", origin=folder)
            table = Table.from_list(Domain([], metas=[other]),
                                    [[names[i % 30]] for i in range(1200)])
            w = self.widget
            w.strictness = 0


            def built():
                frames = w.groups_area.widget().findChildren(review_view.QFrame)
                return [f for f in frames if f.findChildren(review_view.PhotoButton)]
            # one group a slice: the first at once, the others from the event loop
            with mock.patch.object(review_view.Progressive, "BUDGET", 0.0):
                self.reviewed(data=table)
                self.assertEqual(len(w.review.groups), 30)
                self.assertLess(len(built()), 30)
                self.assertTrue(w._builder.pending())
            deadline = time.monotonic() + 30
            while w._builder.pending() and time.monotonic() < deadline:
                QApplication.processEvents()
            rows = built()
            self.assertEqual(len(rows), 30)
            for frame in rows:
                self.assertEqual(len(frame.findChildren(review_view.PhotoButton)),
                                 review_view.MAX_MEMBERS)
                self.assertTrue(any("28 more photos" in label.text()
                                    for label in frame.findChildren(QLabel)))
            self.assertEqual(len(self.get_output(w.Outputs.duplicates)), 1200 - 30)

    def test_thumbnails_arrive(self):
        self.reviewed()
        button = self.widget._buttons[0][0]
        first = button.icon().cacheKey()
        deadline = time.monotonic() + 20
        while button.icon().cacheKey() == first and time.monotonic() < deadline:
            self.process_events()
            time.sleep(0.02)
        self.assertNotEqual(button.icon().cacheKey(), first)

    def test_change_keeper_and_take_out_are_kept_in_the_workflow(self):
        self.reviewed()
        self.widget.make_keeper(2)
        unique, duplicates, _ = self.outputs()
        self.assertEqual(column(unique), ["poor.jpg", "other.jpg", "blurry.jpg"])
        self.assertEqual(column(duplicates, "Keeper"), ["poor.jpg"] * 2)
        self.widget.take_out(1)
        unique, duplicates, _ = self.outputs()
        self.assertEqual(column(unique), ["copy.jpg", "poor.jpg", "other.jpg",
                                          "blurry.jpg"])
        self.assertEqual(column(duplicates), ["original.jpg"])

        settings = self.widget.settingsHandler.pack_data(self.widget)
        self.assertEqual(settings["chosen_keepers"], ["poor.jpg"])
        self.assertEqual(settings["taken_out"], ["copy.jpg"])
        # a new review of the same photos, in another order
        restored = self.create_widget(OWReviewImages, stored_settings=settings)
        self.reviewed(restored, self.table[[5, 4, 3, 2, 1, 0]])
        unique, duplicates, _ = self.outputs(restored)
        self.assertEqual(sorted(column(unique)),
                         ["blurry.jpg", "copy.jpg", "other.jpg", "poor.jpg"])
        self.assertEqual(column(duplicates), ["original.jpg"])

        restored.put_back(4)  # copy.jpg is row 4 of the reordered table
        restored.reset_changes()
        unique, _, _ = self.outputs(restored)
        self.assertEqual(sorted(column(unique)),
                         ["blurry.jpg", "original.jpg", "other.jpg"])

    def test_strictness_same_file(self):
        self.reviewed()
        self.widget.controls.strictness.buttons[int(Strictness.SAME_FILE)].click()
        self.wait_until_finished(timeout=60000)
        _, duplicates, _ = self.outputs()
        self.assertEqual(column(duplicates), ["copy.jpg"])

    def test_embedded_table_uses_its_vectors(self):
        folder = tempfile.mkdtemp(dir=self.folder)
        im = scene(5)
        write(folder, "a.jpg", jpeg(im))
        write(folder, "b.jpg", jpeg(next_frame(im, 0.10, 0.06)))
        write(folder, "c.jpg", jpeg(scene(6)))
        var = StringVariable("image")
        var.attributes.update(type="image", origin=folder)
        hidden = [ContinuousVariable(f"n{i}") for i in range(4)]
        for v in hidden:
            v.attributes["hidden"] = True
        vectors = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1]], dtype=float)
        table = Table.from_numpy(Domain(hidden, metas=[var]), vectors,
                                 metas=np.array([["a.jpg"], ["b.jpg"], ["c.jpg"]], object))
        widget = self.create_widget(OWReviewImages)  # near duplicates
        with mock.patch.object(review_module, "_embed",
                               side_effect=AssertionError("embedded again")):
            self.reviewed(widget, table)
        _, duplicates, _ = self.outputs(widget)
        self.assertEqual(column(duplicates), ["b.jpg"])
        self.assertEqual(duplicates.domain["Kind"].str_val(duplicates[0, "Kind"]),
                         "near duplicate")

    def test_cancel(self):
        started = threading.Event()

        def slow(data, column, strictness, state):
            started.set()
            for _ in range(500):  # at most 10 s
                if state.is_interruption_requested():
                    raise ReviewCancelled
                time.sleep(0.02)
            raise AssertionError("not cancelled")

        with mock.patch.object(owreviewimages, "run", slow):
            self.send_signal(self.widget.Inputs.data, self.table)
            self.assertTrue(started.wait(10))
            self.assertTrue(self.widget.cancel_button.isEnabled())
            self.widget.cancel_button.click()
        self.assertTrue(self.widget.Information.cancelled.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.unique))
        self.assertFalse(self.widget.cancel_button.isEnabled())

    def test_no_image_column(self):
        table = Table.from_list(Domain([ContinuousVariable("x")]), [[1], [2]])
        self.send_signal(self.widget.Inputs.data, table)
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.send_signal(self.widget.Inputs.data, None)
        self.assertFalse(self.widget.Error.no_image_column.is_shown())

    def test_removing_data_clears_outputs(self):
        self.reviewed()
        self.send_signal(self.widget.Inputs.data, None)
        self.assertEqual(self.outputs(), (None, None, None))

    def test_report(self):
        self.reviewed()
        self.widget.make_keeper(2)
        self.widget.send_report()

    def test_files_untouched(self):
        before = {n: os.stat(os.path.join(self.folder, n)).st_mtime_ns
                  for n in os.listdir(self.folder) if n.endswith(".jpg")}
        self.reviewed()
        self.widget.make_keeper(1)
        self.widget.take_out(2)
        after = {n: os.stat(os.path.join(self.folder, n)).st_mtime_ns
                 for n in os.listdir(self.folder) if n.endswith(".jpg")}
        self.assertEqual(before, after)
