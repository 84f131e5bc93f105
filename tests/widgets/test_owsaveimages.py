"""Tests for the Save Images widget."""
# pylint: disable=missing-docstring,protected-access
from __future__ import annotations

import ast
import os
import tempfile
import threading
import time
import unittest
from unittest import mock

import numpy as np
from AnyQt.QtWidgets import QApplication
from Orange.data import DiscreteVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.imageanalytics import save_images as save_module
from orangecontrib.imageanalytics.save_images import KEEP_FORMAT, SaveReport
from orangecontrib.imageanalytics.widgets.owsaveimages import OWSaveImages, run

# Node properties of Save Images in the peer workflow saved by the older
# add-on (JPEG, scaled to SqueezeNet's size), as stored in the .ows
LEGACY_PROPERTIES = (
    "{'auto_save': False, 'controlAreaVisible': True, 'dirname': '', "
    "'file_format_index': 1, 'image_attr_current_index': 0, 'last_dir': '', "
    "'savedWidgetGeometry': None, 'scale_index': 1, 'use_scale': True, "
    "'__version__': 1}")
SHARED_WORKFLOW = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                               "data", "workflows", "peer-0.13-photos.ows")


def make_table(folder: str, n: int = 4, bad: bool = True) -> Table:
    """n photos in two categories, a prediction meta, and a broken row."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"photo{i}.jpg"
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, name))
        names.append(name)
    if bad:
        with open(os.path.join(folder, "broken.jpg"), "wb") as f:
            f.write(b"not an image")
        names.append("broken.jpg")
    image = StringVariable("image")
    image.attributes.update(type="image", origin=folder)
    title = StringVariable("title")
    category = DiscreteVariable("category", values=["cats", "dogs"])
    predicted = DiscreteVariable("predicted", values=["cat", "dog"])
    metas = np.array([[name, name.upper(), float(i % 2 == 0)] for i, name in enumerate(names)],
                     dtype=object)
    return Table.from_numpy(Domain([], category, metas=[title, image, predicted]),
                            np.empty((len(names), 0)), np.arange(len(names)) % 2,
                            metas=metas[:, [1, 0, 2]])


class TestOWSaveImages(WidgetTest):
    def setUp(self):
        self._dirs = [tempfile.TemporaryDirectory() for _ in range(2)]
        self.source, self.target = (d.name for d in self._dirs)
        self.data = make_table(self.source)
        self.widget: OWSaveImages = self.create_widget(OWSaveImages)

    def tearDown(self):
        self.widget.onDeleteWidget()
        for d in self._dirs:
            d.cleanup()
        super().tearDown()

    def save_into(self, folder):
        with mock.patch.object(self.widget, "choose_folder", return_value=folder):
            self.widget.save_as()
        self.wait_until_finished()

    def status(self):
        """The status line, with the folder it names given back in full."""
        text = self.widget.status_label.text()
        head, into, tail = text.partition(" saved into ")
        if into:
            folder, _, rest = tail.partition(", ")
            text = f"{head} saved into {os.path.expanduser(folder)}, {rest}"
        return text

    def listing(self, folder=None):
        folder = folder or self.target
        return sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                      for d, _, files in os.walk(folder) for f in files)

    def test_defaults_image_column_first_and_folders_by_class(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.assertIs(self.widget.folders_by, self.data.domain.class_var)
        self.assertEqual(list(self.widget.folders_model),
                         [None, self.data.domain.class_var, self.data.domain["predicted"]])

    def test_save_as_saves_by_class_and_reports(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.save_into(self.target)
        # a new widget keeps the photos' format: copies of the JPEGs
        self.assertEqual(self.widget.file_format, KEEP_FORMAT)
        self.assertEqual(self.listing(), ["cats/photo0.jpg", "cats/photo2.jpg",
                                          "dogs/photo1.jpg", "dogs/photo3.jpg"])
        with open(os.path.join(self.source, "photo1.jpg"), "rb") as f, \
                open(os.path.join(self.target, "dogs", "photo1.jpg"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(self.widget.dirname, self.target)
        self.assertEqual(self.status(), f"4 saved into {self.target}, 0 already there, "
                                        "1 skipped: 1 × not an image")
        self.assertEqual(os.path.expanduser(self.widget.folder_label.text()), self.target)
        self.assertTrue(self.widget.Warning.images_skipped.is_shown())
        self.assertIn("broken.jpg: not an image", self.widget.status_label.toolTip())
        self.assertEqual(self.widget.save_button.text(), "Save")
        self.widget.send_report()

    def test_save_again_changes_nothing(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.save_into(self.target)
        before = {p: os.path.getmtime(os.path.join(self.target, p)) for p in self.listing()}
        self.widget.save_or_stop()
        self.wait_until_finished()
        self.assertTrue(self.status().startswith(f"0 saved into {self.target}, 4 already there"))
        self.assertEqual(
            {p: os.path.getmtime(os.path.join(self.target, p)) for p in self.listing()}, before)

    def test_folders_by_prediction_or_none(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.widget.folders_by = self.data.domain["predicted"]
        self.save_into(self.target)
        self.assertEqual(self.listing(), ["cat/photo1.jpg", "cat/photo3.jpg",
                                          "dog/photo0.jpg", "dog/photo2.jpg"])
        other = os.path.join(self.target, "flat")
        self.widget.folders_by = None
        self.save_into(other)
        self.assertEqual(self.listing(other), [f"photo{i}.jpg" for i in range(4)])

    def test_folders_by_choice_persists_with_the_domain(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.widget.folders_by = None
        self.send_signal(self.widget.Inputs.data, None)
        self.send_signal(self.widget.Inputs.data, self.data)
        self.assertIsNone(self.widget.folders_by)
        settings = self.widget.settingsHandler.pack_data(self.widget)
        widget = self.create_widget(OWSaveImages, stored_settings=settings)
        self.send_signal(widget.Inputs.data, self.data, widget=widget)
        self.assertIsNone(widget.folders_by)
        self.widget.folders_by = self.data.domain["predicted"]
        settings = self.widget.settingsHandler.pack_data(self.widget)
        widget = self.create_widget(OWSaveImages, stored_settings=settings)
        self.send_signal(widget.Inputs.data, self.data, widget=widget)
        self.assertEqual(widget.folders_by.name, "predicted")

    def test_format_and_scale(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.widget.file_format = "webp"
        self.widget.use_scale = True
        self.widget.scale_embedder = "deeploc"
        self.widget.folders_by = None
        self.save_into(self.target)
        with Image.open(os.path.join(self.target, "photo0.webp")) as im:
            self.assertEqual(im.size, (64, 64))
        self.widget.keep_aspect = True
        self.save_into(os.path.join(self.target, "aspect"))
        with Image.open(os.path.join(self.target, "aspect", "photo0.webp")) as im:
            self.assertEqual(im.size, (64, 48))

    def test_legacy_settings_load_and_mean_the_same(self):
        settings = ast.literal_eval(LEGACY_PROPERTIES)
        widget = self.create_widget(OWSaveImages, stored_settings=settings)
        self.assertEqual(widget.file_format, "jpg")
        self.assertTrue(widget.use_scale)
        self.assertEqual(widget.scale_embedder, "squeezenet")
        self.assertEqual(widget.options()["size"], (227, 227))
        self.assertEqual(widget.scale_combo.currentText(), "SqueezeNet (227×227)")
        self.send_signal(widget.Inputs.data, self.data, widget=widget)
        self.assertEqual(widget.image_attr.name, "image")
        self.assertIs(widget.folders_by, self.data.domain.class_var)
        packed = widget.settingsHandler.pack_data(widget)
        self.assertNotIn("file_format_index", packed)
        self.assertEqual(packed["file_format"], "jpg")

    def test_stored_format_kept_new_widget_keeps_each_images_format(self):
        # settings of version 2 hold the format chosen then, PNG by default
        for stored, expected in (({"file_format": "jpg"}, "jpg"), ({}, "png"),
                                 ({"file_format": "png"}, "png")):
            widget = self.create_widget(
                OWSaveImages, stored_settings={**stored, "__version__": 2})
            self.assertEqual(widget.file_format, expected, stored)
        # the older add-on's default
        widget = self.create_widget(OWSaveImages, stored_settings={"__version__": 1})
        self.assertEqual(widget.file_format, "png")
        widget = self.create_widget(OWSaveImages)
        self.assertEqual(widget.file_format, KEEP_FORMAT)
        self.assertEqual(widget.controls.file_format.currentText(),
                         "Keep each image's format")
        packed = widget.settingsHandler.pack_data(widget)
        widget = self.create_widget(OWSaveImages, stored_settings=packed)
        self.assertEqual(widget.file_format, KEEP_FORMAT)

    def test_legacy_image_index_into_image_columns(self):
        settings = {"image_attr_current_index": 1, "__version__": 1}
        widget = self.create_widget(OWSaveImages, stored_settings=settings)
        self.send_signal(widget.Inputs.data, self.data, widget=widget)
        # type=image first, then the other string column
        self.assertEqual(widget.image_attr.name, "title")

    def test_legacy_out_of_range_indexes(self):
        widget = self.create_widget(OWSaveImages, stored_settings={
            "file_format_index": 42, "scale_index": -1, "__version__": 1})
        self.assertEqual(widget.file_format, "png")
        self.assertEqual(widget.scale_embedder, "inception-v3")

    @unittest.skipUnless(os.path.exists(SHARED_WORKFLOW), "peer workflow not available")
    def test_peer_workflow_settings(self):
        with open(SHARED_WORKFLOW, encoding="utf-8") as f:
            text = f.read()
        start = text.index('<properties node_id="4" format="literal">') + len(
            '<properties node_id="4" format="literal">')
        settings = ast.literal_eval(text[start:text.index("</properties>", start)])
        widget = self.create_widget(OWSaveImages, stored_settings=settings)
        self.assertEqual((widget.file_format, widget.use_scale, widget.scale_embedder),
                         ("jpg", True, "squeezenet"))

    def test_autosave_without_folder_is_an_error(self):
        self.widget.auto_save = True
        self.send_signal(self.widget.Inputs.data, self.data)
        self.assertTrue(self.widget.Error.no_file_name.is_shown())
        self.assertEqual(self.listing(), [])

    def test_autosave_on_new_data(self):
        self.widget.auto_save = True
        self.widget.dirname = self.target
        self.send_signal(self.widget.Inputs.data, self.data)
        self.wait_until_finished()
        self.assertEqual(len(self.listing()), 4)
        self.assertFalse(self.widget.Error.no_file_name.is_shown())

    def test_no_image_column(self):
        table = Table.from_numpy(Domain([], DiscreteVariable("c", values=["a"])),
                                 np.empty((1, 0)), np.zeros(1))
        self.send_signal(self.widget.Inputs.data, table)
        self.assertTrue(self.widget.Error.no_image_attr.is_shown())
        self.assertFalse(self.widget.save_button.isEnabled())
        self.send_signal(self.widget.Inputs.data, None)
        self.assertFalse(self.widget.Error.no_image_attr.is_shown())

    def test_target_error_is_shown(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        path = os.path.join(self.target, "a-file")
        with open(path, "w") as f:
            f.write("x")
        self.save_into(path)
        self.assertTrue(self.widget.Error.save_failed.is_shown())
        self.assertEqual(self.widget.save_button.text(), "Resume save")

    def test_stop_and_resume(self):
        data = make_table(self.source, n=12, bad=False)
        self.send_signal(self.widget.Inputs.data, data)
        self.widget.folders_by = None
        gate = threading.Event()
        real_prepare = save_module._prepare

        def slow_prepare(*args):
            gate.wait(5)
            return real_prepare(*args)

        with mock.patch.object(save_module, "_prepare", slow_prepare), \
                mock.patch.object(self.widget, "choose_folder", return_value=self.target):
            self.widget.save_as()
            self.assertEqual(self.widget.save_button.text(), "Stop")
            self.widget.save_or_stop()  # Stop
            gate.set()
            self.wait_until_finished()
        self.assertTrue(self.widget.Information.stopped.is_shown())
        self.assertEqual(self.widget.save_button.text(), "Resume save")
        saved = len(self.listing())
        self.assertLess(saved, 12)
        self.widget.save_or_stop()  # Resume save
        self.wait_until_finished()
        self.assertEqual(len(self.listing()), 12)
        self.assertEqual(self.status(),
                         f"{12 - saved} saved into {self.target}, {saved} already there")
        self.assertEqual(self.widget.save_button.text(), "Save")
        self.assertFalse(self.widget.Information.stopped.is_shown())

    def test_gui_thread_stays_responsive(self):
        data = make_table(self.source, n=40, bad=False)
        self.send_signal(self.widget.Inputs.data, data)
        self.widget.use_scale = True
        self.widget.scale_embedder = "inception-v3"
        with mock.patch.object(self.widget, "choose_folder", return_value=self.target):
            self.widget.save_as()
        longest = 0.0
        deadline = time.monotonic() + 60
        while self.widget.task is not None and time.monotonic() < deadline:
            start = time.perf_counter()
            QApplication.processEvents()
            longest = max(longest, time.perf_counter() - start)
            time.sleep(0.005)
        self.wait_until_finished()
        self.assertEqual(len(self.listing()), 40)
        self.assertLess(longest, 0.25)

    def test_new_data_withdraws_a_running_save(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        self.widget.dirname = self.target
        self.widget.save()
        self.send_signal(self.widget.Inputs.data, None)
        self.assertEqual(self.widget.save_button.text(), "Save")
        self.assertFalse(self.widget.save_button.isEnabled())


class TestRun(unittest.TestCase):
    def test_run_reports_progress_and_stops(self):
        with tempfile.TemporaryDirectory() as source, tempfile.TemporaryDirectory() as target:
            data = make_table(source, n=3, bad=False)
            state = mock.Mock()
            state.is_interruption_requested.return_value = False
            report = run(data, target, {"folders_by": None}, threading.Event(), state)
            self.assertIsInstance(report, SaveReport)
            self.assertEqual(len(report.saved), 3)
            state.set_progress_value.assert_called_with(100)
            stop = threading.Event()
            stop.set()
            report = run(data, os.path.join(target, "b"), {}, stop, state)
            self.assertTrue(report.cancelled)
            self.assertFalse(report.saved)


class TestHelpPage(unittest.TestCase):
    def test_canvas_finds_the_help_page(self):
        from orangecanvas.help.provider import HtmlIndexProvider

        from orangecontrib.imageanalytics import widgets

        index, _ = widgets.WIDGET_HELP_PATH[0]
        parser = HtmlIndexProvider._XHTMLParser(convert_charrefs=True)
        with open(index, encoding="utf-8") as f:
            parser.feed(f.read())
        items = {a.text.lower(): a.attrib["href"] for a in
                 parser.builder.close().findall(".//*[@id='widgets']//li/a")}
        page = os.path.join(os.path.dirname(index), items[OWSaveImages.name.lower()])
        with open(page, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("images/saveimages.png", text)
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(index), "images",
                                                    "saveimages.png")))


if __name__ == "__main__":
    unittest.main()
