"""Ctrl + wheel zooms Image Viewer and Image Grid; a plain wheel scrolls."""
import unittest

from AnyQt.QtCore import QPoint, QPointF, Qt
from AnyQt.QtGui import QWheelEvent
from AnyQt.QtWidgets import QApplication
from widget_helpers import WidgetHelpersTest

from orangecontrib.imageanalytics.widgets.owimagegrid import OWImageGrid
from orangecontrib.imageanalytics.widgets.owimageviewer import OWImageViewer
from orangecontrib.imageanalytics.widgets.utils.zoom import fitted_size, zoomed_size


def wheel(widget, notches, modifiers=Qt.ControlModifier):
    pos = QPointF(20, 20)
    event = QWheelEvent(pos, pos, QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.NoButton, modifiers, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


class TestZoomedSize(unittest.TestCase):
    def test_steps_and_bounds(self):
        self.assertEqual(zoomed_size(100, 120, 32, 1024, 16), 112)
        self.assertEqual(zoomed_size(100, -120, 32, 1024, 16), 80)
        # a small turn still moves by a step
        self.assertEqual(zoomed_size(96, 15, 32, 1024, 16), 112)
        self.assertEqual(zoomed_size(1020, 1200, 32, 1024, 16), 1024)
        self.assertEqual(zoomed_size(40, -1200, 32, 1024, 16), 32)
        self.assertEqual(zoomed_size(100, 0, 32, 1024, 16), 100)


class TestFittedSize(unittest.TestCase):
    def test_largest_size_that_fits(self):
        # 8 columns of size + 6 in 800 px: 94; 4 rows of size + 6 in 500: 119
        self.assertEqual(fitted_size(800, 500, 4, 8, margin=6, extra_height=0,
                                     lo=32, hi=512), 94)
        # labels below the cells: the height decides
        self.assertEqual(fitted_size(800, 500, 4, 8, margin=6, extra_height=40,
                                     lo=32, hi=512), 79)
        self.assertEqual(fitted_size(8000, 5000, 2, 2, margin=6, extra_height=0,
                                     lo=32, hi=512), 512)
        self.assertEqual(fitted_size(100, 100, 40, 40, margin=6, extra_height=0,
                                     lo=32, hi=512), 32)
        self.assertEqual(fitted_size(100, 100, 0, 0, margin=6, extra_height=0,
                                     lo=32, hi=512), 32)


class TestCtrlWheel(WidgetHelpersTest):
    def check(self, widget):
        before = widget.imageSize
        wheel(widget.view.viewport(), 2)
        self.assertGreater(widget.imageSize, before)
        larger = widget.imageSize
        wheel(widget.view.viewport(), -1)
        self.assertLess(widget.imageSize, larger)
        # without Ctrl the wheel scrolls as usual
        size = widget.imageSize
        wheel(widget.view.viewport(), 1, Qt.NoModifier)
        self.assertEqual(widget.imageSize, size)

    def test_viewer(self):
        widget = self.create_widget(OWImageViewer)
        self.check(widget)
        self.assertEqual(widget.delegate.size, widget.imageSize)

    def test_grid(self):
        widget = self.create_widget(OWImageGrid)
        self.check(widget)
        self.assertEqual(widget.view.cell_size, widget.imageSize)


if __name__ == "__main__":
    unittest.main()
