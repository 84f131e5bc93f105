"""The Qt side of thumbnails: loader order, caches, placeholders, preview."""
import os
import tempfile
import threading
import time
import unittest
from unittest import mock

from AnyQt.QtCore import Qt
from AnyQt.QtGui import QImage
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication
from Orange.widgets.tests.base import GuiTest

from orangecontrib.imageanalytics import thumbnails
from orangecontrib.imageanalytics.widgets.utils import thumbnail_loader as tl
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.preview import ImagePreview
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader
from thumbnail_fixtures import bad_files, write_photo


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        QApplication.processEvents()
        time.sleep(0.005)


class TestThumbnailLoader(GuiTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.folder = self.tmp.name
        self.cache = thumbnails.ThumbnailCache(os.path.join(self.folder, "cache"))
        self.paths = [write_photo(os.path.join(self.folder, f"{i}.png"), (90, 60),
                                  color=(i * 20, 0, 0)) for i in range(6)]
        self.loader = ThumbnailLoader(max_workers=2, cache=self.cache)
        self.ready = []
        self.loader.thumbnailReady.connect(self.ready.append)

    def tearDown(self):
        self.loader.shutdown()
        self.tmp.cleanup()

    def test_request_then_ready_then_cached(self):
        self.assertIsNone(self.loader.request(0, self.paths[0], None, 50))
        self.assertTrue(self.loader.is_pending(0))
        wait_for(lambda: 0 in self.ready)
        self.assertFalse(self.loader.is_pending(0))
        image = self.loader.request(0, self.paths[0], None, 50)
        self.assertIsInstance(image, QImage)
        self.assertEqual((image.width(), image.height()), (64, 43))
        # a smaller size is served from the larger thumbnail at once
        self.assertIsNotNone(self.loader.request(1, self.paths[0], None, 20))
        # a larger one is not
        self.assertIsNone(self.loader.request(0, self.paths[0], None, 200))
        wait_for(lambda: self.ready.count(0) == 2)
        self.assertEqual(self.loader.request(0, self.paths[0], None, 200).width(), 90)

    def test_failures_and_reasons(self):
        files = bad_files(self.folder)
        for i, name in enumerate(sorted(files)):
            self.loader.request(name, name, self.folder, 64)
        self.loader.request("none", None, None, 64)
        wait_for(lambda: len(self.ready) == len(files) + 1)
        self.assertIn("not found", self.loader.error("missing.jpg"))
        self.assertIn("empty", self.loader.error("zero.jpg"))
        self.assertIn("too large", self.loader.error("bomb.png"))
        self.assertEqual(self.loader.error("none"), "missing value")
        self.assertIsNone(self.loader.request("none", None, None, 64))
        self.assertFalse(self.loader.is_pending("none"))

    def test_most_recent_first_and_retain_only(self):
        gate = threading.Event()
        order = []
        real = thumbnails.make_thumbnail

        def slow(value, size, **kwargs):
            gate.wait(5)
            order.append(value)
            return real(value, size, **kwargs)

        loader = ThumbnailLoader(max_workers=1, cache=None)
        ready = []
        loader.thumbnailReady.connect(ready.append)
        try:
            with mock.patch.object(tl, "make_thumbnail", slow):
                loader.request(0, self.paths[0], None, 64)  # taken by the worker
                time.sleep(0.1)
                for i in range(1, 6):
                    loader.request(i, self.paths[i], None, 64)
                loader.retain_only([0, 1, 4, 5])
                self.assertFalse(loader.is_pending(2))
                gate.set()
                wait_for(lambda: len(ready) == 4)
            self.assertEqual(order, [self.paths[i] for i in (0, 5, 4, 1)])
        finally:
            loader.shutdown()

    def test_memory_bounded(self):
        loader = ThumbnailLoader(max_workers=2, cache=None, memory_bytes=64 * 43 * 3 * 3)
        ready = []
        loader.thumbnailReady.connect(ready.append)
        try:
            for i, path in enumerate(self.paths):
                loader.request(i, path, None, 64)
            wait_for(lambda: len(ready) == 6)
            self.assertLessEqual(loader.memory_used(), loader.memory_bytes)
            self.assertLess(sum(loader.cached(i, 64) is not None for i in range(6)), 6)
        finally:
            loader.shutdown()

    def test_clear_drops_results_in_flight(self):
        self.loader.request(0, self.paths[0], None, 64)
        self.loader.clear()
        time.sleep(0.3)
        QApplication.processEvents()
        self.assertEqual(self.ready, [])
        self.assertIsNone(self.loader.cached(0, 64))

    def test_shutdown_stops_workers(self):
        for i, path in enumerate(self.paths):
            self.loader.request(i, path, None, 64)
        self.loader.shutdown()
        self.assertFalse(any(t.is_alive() for t in self.loader._threads))


class TestPlaceholders(GuiTest):
    def test_sizes(self):
        for size in (32, 100, 1024):
            self.assertEqual(loading_pixmap(size).width(), size)
            self.assertEqual(failed_pixmap(size).height(), size)
        self.assertFalse(loading_pixmap(64).toImage() == failed_pixmap(64).toImage())


class TestPreview(GuiTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = write_photo(os.path.join(self.tmp.name, "a.jpg"), (1200, 900))
        self.preview = ImagePreview()

    def tearDown(self):
        self.preview.close()
        self.preview.deleteLater()
        self.tmp.cleanup()

    def test_shows_image_and_failure(self):
        self.preview.show_image("a.jpg", self.tmp.name, "A photo")
        self.assertTrue(self.preview.isVisible())
        self.assertTrue(self.preview.is_loading())
        wait_for(lambda: not self.preview.is_loading())
        self.assertIsNone(self.preview.error())
        self.assertEqual(self.preview.windowTitle(), "A photo")
        self.preview.show_image("nothere.jpg", self.tmp.name, "Gone")
        wait_for(lambda: not self.preview.is_loading())
        self.assertIn("not found", self.preview.error())
        self.assertIn("not found", self.preview.caption.text())

    def test_keys(self):
        self.preview.show_image(self.path, None)
        moves = []
        self.preview.navigate.connect(moves.append)
        QTest.keyClick(self.preview, Qt.Key_Right)
        QTest.keyClick(self.preview, Qt.Key_Up)
        self.assertEqual(moves, [Qt.Key_Right, Qt.Key_Up])
        self.assertTrue(self.preview.isVisible())
        QTest.keyClick(self.preview, Qt.Key_Space)
        self.assertFalse(self.preview.isVisible())
        self.preview.show_image(self.path, None)
        QTest.keyClick(self.preview, Qt.Key_Escape)
        self.assertFalse(self.preview.isVisible())


if __name__ == "__main__":
    unittest.main()
