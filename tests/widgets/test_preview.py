"""The preview window: sized to the image, on its screen, captioned with the file."""
import os
import tempfile
import time
import unittest

from AnyQt.QtCore import QPoint, QRect, QSize
from AnyQt.QtWidgets import QApplication, QWidget
from orangewidget.tests.base import GuiTest
from thumbnail_fixtures import write_photo

from orangecontrib.imageanalytics.widgets.utils.preview import (
    COMFORTABLE_SHARE,
    MIN_WIDTH,
    ImagePreview,
    display_size,
    file_name,
    window_geometry,
)


class TestGeometry(unittest.TestCase):
    def test_small_images_grow_large_ones_shrink(self):
        room, comfortable = QSize(1400, 850), 576
        self.assertEqual(display_size(QSize(80, 60), room, comfortable), QSize(576, 432))
        self.assertEqual(display_size(QSize(4000, 3000), room, comfortable),
                         QSize(1133, 850))
        # between the two: as it is
        self.assertEqual(display_size(QSize(800, 600), room, comfortable), QSize(800, 600))
        # growing stops at the room
        self.assertEqual(display_size(QSize(40, 10), QSize(300, 300), comfortable),
                         QSize(300, 75))

    def test_window_stays_inside_a_short_screen(self):
        # a 1600 × 1000 screen with a panel; the opening widget near the bottom
        available = QRect(0, 0, 1600, 960)
        frame = QSize(8, 36)
        rect = window_geometry(QSize(1279, 800), available, QPoint(1400, 900), frame)
        self.assertEqual(rect.size(), QSize(1279, 800))
        outer = rect.adjusted(-4, -32, 4, 4)
        self.assertTrue(available.contains(outer), outer)
        # larger than the screen: shrunk to it
        rect = window_geometry(QSize(3000, 2000), available, QPoint(800, 480), frame)
        self.assertTrue(available.contains(rect.adjusted(-4, -32, 4, 4)), rect)
        # a second screen to the right
        right = QRect(1600, 0, 1920, 1080)
        rect = window_geometry(QSize(600, 400), right, QPoint(1610, 10), frame)
        self.assertTrue(right.contains(rect.adjusted(-4, -32, 4, 4)), rect)

    def test_file_name_of_paths_and_urls(self):
        self.assertEqual(file_name(os.path.join("a", "b", "IMG 1.jpg")), "IMG 1.jpg")
        self.assertEqual(file_name("https://example.org/pics/cat%20one.png?s=2"),
                         "cat one.png")
        self.assertEqual(file_name("https://example.org/"), "example.org")
        self.assertEqual(file_name(None), "")


class TestImagePreview(GuiTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.folder = self.tmp.name
        write_photo(os.path.join(self.folder, "small.jpg"), (80, 60))
        write_photo(os.path.join(self.folder, "wide.png"), (2400, 600))
        self.screen = QApplication.primaryScreen().availableGeometry()
        # the opening widget in the screen's bottom right corner
        self.parent = QWidget()
        self.parent.setGeometry(self.screen.right() - 300, self.screen.bottom() - 200,
                                280, 180)
        self.parent.show()
        self.preview = ImagePreview(self.parent)

    def tearDown(self):
        self.preview.close()
        self.parent.close()
        self.preview.deleteLater()
        self.parent.deleteLater()
        QApplication.processEvents()
        self.tmp.cleanup()

    def show(self, name, title=""):
        self.preview.show_image(name, self.folder, title)
        deadline = time.monotonic() + 10
        while self.preview.is_loading():
            self.assertLess(time.monotonic(), deadline, "the image did not load")
            QApplication.processEvents()
            time.sleep(0.01)
        QApplication.processEvents()

    def assert_on_screen(self):
        frame = self.preview.frameGeometry()
        self.assertTrue(self.screen.contains(frame), f"{frame} not inside {self.screen}")

    def test_small_image_grows_in_a_window_of_its_size(self):
        self.show("small.jpg", "cats")
        side = int(min(self.screen.width(), self.screen.height()) * COMFORTABLE_SHARE)
        shown = self.preview.image_label.pixmap().size()
        self.assertEqual(shown, QSize(side, side * 3 // 4))
        # the window fits the image, not a share of the screen
        self.assertLessEqual(self.preview.width(), max(MIN_WIDTH, shown.width() + 24))
        self.assertLess(self.preview.height(), shown.height() + 100)
        self.assertGreaterEqual(self.preview.image_label.height(), shown.height())
        self.assert_on_screen()

    def test_large_image_fits_the_screen(self):
        self.show("wide.png")
        shown = self.preview.image_label.pixmap().size()
        self.assertLessEqual(shown.width(), self.screen.width())
        self.assertAlmostEqual(shown.width() / shown.height(), 4, delta=0.05)
        self.assertGreater(shown.width(), self.screen.width() // 2)
        self.assert_on_screen()
        # the next, smaller image: the window follows it and stays on screen
        self.show("small.jpg")
        self.assertLess(self.preview.width(), shown.width())
        self.assert_on_screen()

    def test_caption_names_title_and_file(self):
        self.show("small.jpg", "cats")
        caption = self.preview.caption.text()
        self.assertIn("cats", caption)
        self.assertIn("small.jpg", caption)
        self.assertIn("cats", self.preview.windowTitle())
        self.assertIn("small.jpg", self.preview.windowTitle())
        # no title: the file name once
        self.show("small.jpg", "")
        self.assertEqual(self.preview.caption.text().count("small.jpg"), 1)
        self.assertEqual(self.preview.windowTitle(), "small.jpg")

    def test_failure_names_file_and_reason(self):
        self.show("gone.jpg", "dogs")
        self.assertEqual(self.preview.error(), "file not found")
        caption = self.preview.caption.text()
        for part in ("dogs", "gone.jpg", "file not found"):
            self.assertIn(part, caption)
        # no large empty field around the placeholder (128 pixels)
        self.assertLessEqual(self.preview.image_label.height(), 200)
        self.assert_on_screen()


if __name__ == "__main__":
    unittest.main()
