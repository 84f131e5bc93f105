"""The Qt side of thumbnails: loader order, caches, placeholders, preview."""
import os
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

from AnyQt.QtCore import Qt
from AnyQt.QtGui import QColor, QImage
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication, QScrollBar
from Orange.widgets.tests.base import GuiTest
from PIL import Image
from thumbnail_fixtures import bad_files, write_photo

from orangecontrib.imageanalytics import thumbnails
from orangecontrib.imageanalytics.widgets.utils import thumbnail_loader as tl
from orangecontrib.imageanalytics.widgets.utils.fling import FlingPause
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.preview import ImagePreview
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader


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
        # made at the size shown (90 x 60 fitted into 50 x 50), in the
        # format the raster painter copies as it is
        self.assertEqual(image.width(), 50)
        self.assertAlmostEqual(image.height(), 33, delta=1)
        self.assertEqual(image.format(), QImage.Format_RGB32)
        self.assertEqual(QColor(image.pixel(25, 16)).getRgb()[:3], (0, 0, 0))
        # another size is queued; the one in memory serves meanwhile
        self.assertIsNone(self.loader.request(1, self.paths[0], None, 20))
        self.assertEqual(self.loader.cached(1, 20).width(), 50)
        wait_for(lambda: 1 in self.ready)
        self.assertEqual(self.loader.request(1, self.paths[0], None, 20).width(), 20)
        # never enlarged
        self.assertIsNone(self.loader.request(0, self.paths[0], None, 200))
        wait_for(lambda: self.ready.count(0) == 2)
        self.assertEqual(self.loader.request(0, self.paths[0], None, 200).width(), 90)

    def test_cover_fills_the_square(self):
        self.assertIsNone(self.loader.request(0, self.paths[1], None, 40, cover=True))
        wait_for(lambda: 0 in self.ready)
        image = self.loader.request(0, self.paths[1], None, 40, cover=True)
        self.assertEqual(image.height(), 40)
        self.assertAlmostEqual(image.width(), 60, delta=1)
        self.assertEqual(QColor(image.pixel(30, 20)).getRgb()[:3], (20, 0, 0))
        # the fitted one is another thumbnail
        self.assertIsNone(self.loader.request(0, self.paths[1], None, 40))

    def test_transparent_images_premultiplied(self):
        path = os.path.join(self.folder, "alpha.png")
        Image.new("RGBA", (30, 20), (255, 0, 0, 128)).save(path)
        self.loader.request("a", path, None, 64)
        wait_for(lambda: "a" in self.ready)
        image = self.loader.request("a", path, None, 64)
        self.assertEqual(image.format(), QImage.Format_ARGB32_Premultiplied)
        self.assertEqual((image.width(), image.height()), (30, 20))
        color = image.pixelColor(5, 5)
        self.assertEqual(color.alpha(), 128)
        self.assertGreater(color.red(), 240)
        self.assertEqual(color.green(), 0)

    def test_failures_and_reasons(self):
        files = bad_files(self.folder)
        for name in sorted(files):
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
        started, gate = threading.Event(), threading.Event()
        real = thumbnails.make_thumbnail

        def held(value, size, **kwargs):
            if value == self.paths[0]:
                started.set()
                gate.wait(5)
            return real(value, size, **kwargs)

        loader = ThumbnailLoader(max_workers=1, cache=None)
        ready = []
        loader.thumbnailReady.connect(ready.append)
        try:
            with mock.patch.object(tl, "make_thumbnail", held):
                loader.request(0, self.paths[0], None, 64)
                # the worker is making it: its result is in flight
                self.assertTrue(started.wait(5))
                loader.clear()
                gate.set()
                # one worker takes its jobs in turn: once this one is known,
                # the result from before the clear has reached the loader too
                loader.request(1, self.paths[1], None, 64)
                wait_for(lambda: 1 in ready)
            self.assertEqual(ready, [1])
            self.assertIsNone(loader.cached(0, 64))
            # nothing of it was kept: asked again, it is made anew
            self.assertIsNone(loader.request(0, self.paths[0], None, 64))
            self.assertTrue(loader.is_pending(0))
        finally:
            gate.set()
            loader.shutdown()

    def test_shutdown_stops_workers(self):
        for i, path in enumerate(self.paths):
            self.loader.request(i, path, None, 64)
        workers = list(self.loader._threads)
        self.assertEqual(len(workers), 2)
        self.loader.shutdown()
        self.assertEqual([t.name for t in workers if t.is_alive()], [])
        # a request after the shutdown starts no worker again
        self.loader.request("late", self.paths[0], None, 64)
        self.assertEqual(self.loader._threads, [])

    def test_interpreter_settings_left_alone(self):
        # the loader lives in the canvas process with every other widget
        before = sys.getswitchinterval()
        sys.setswitchinterval(0.005)
        try:
            loader = ThumbnailLoader(max_workers=2, cache=None)
            ready = []
            loader.thumbnailReady.connect(ready.append)
            for i, path in enumerate(self.paths):
                loader.request(i, path, None, 64)
            wait_for(lambda: len(ready) == len(self.paths))
            loader.shutdown()
            self.assertEqual(sys.getswitchinterval(), 0.005)
        finally:
            sys.setswitchinterval(before)


class TestPauseAndFling(GuiTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.paths = [write_photo(os.path.join(self.tmp.name, f"{i}.png"), (40, 30))
                      for i in range(3)]
        self.loader = ThumbnailLoader(max_workers=1, cache=None)
        self.ready = []
        self.loader.thumbnailReady.connect(self.ready.append)

    def tearDown(self):
        self.loader.shutdown()
        self.tmp.cleanup()

    def test_paused_loader_starts_nothing_until_resumed(self):
        self.loader.set_paused(True)
        for i, path in enumerate(self.paths):
            self.loader.request(i, path, None, 32)
        time.sleep(0.3)
        QApplication.processEvents()
        self.assertEqual(self.ready, [])
        self.assertEqual(self.loader.pending_count(), 3)
        self.loader.set_paused(False)
        wait_for(lambda: len(self.ready) == 3)
        # the last requested first
        self.assertEqual(self.ready[0], 2)

    def test_fling_pauses_and_stillness_resumes(self):
        bar = QScrollBar(Qt.Vertical)
        bar.setRange(0, 100_000)
        bar.setPageStep(800)
        now = [100.0]
        fling = FlingPause(bar, self.loader, clock=lambda: now[0])
        # a slow scroll: a quarter of a page every 0.1 s keeps loading
        for _ in range(10):
            now[0] += 0.1
            bar.setValue(bar.value() + 200)
        self.assertFalse(fling.is_flinging())
        # one jump is not a fling
        now[0] += 0.1
        bar.setValue(bar.value() + 50_000)
        self.assertFalse(fling.is_flinging())
        # a page every 30 ms is
        for _ in range(4):
            now[0] += 0.03
            bar.setValue(bar.value() + 800)
        self.assertTrue(fling.is_flinging())
        self.assertTrue(self.loader.is_paused())
        # once the bar is still, loading resumes
        wait_for(lambda: not self.loader.is_paused(), timeout=2)
        self.assertFalse(fling.is_flinging())


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
        # the caption's full form is test_preview.py's
        self.assertTrue(self.preview.windowTitle().startswith("A photo"))
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
