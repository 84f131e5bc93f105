"""The grid view centres a grid smaller than itself, maps clicks to cells,
fits itself to its window and names the image under the mouse; as a map it
zooms at the mouse, pans, shows an overview inset, draws small cells as
their images' average colours and marks images at every zoom."""
import os
import tempfile
import time
import unittest

import numpy as np
from AnyQt.QtCore import QEvent, QPoint, QPointF, Qt
from AnyQt.QtGui import QColor, QHelpEvent, QWheelEvent
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication, QToolTip
from Orange.widgets.tests.base import GuiTest
from PIL import Image

from orangecontrib.imageanalytics.widgets.utils.grid_colors import (
    GridColors,
    average_color,
)
from orangecontrib.imageanalytics.widgets.utils.grid_map import UNKNOWN
from orangecontrib.imageanalytics.widgets.utils.grid_view import (
    MAP_CELL,
    MARGIN,
    GridView,
    cell_tooltip,
)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader


class TestGridGeometry(GuiTest):
    def setUp(self):
        self.loader = ThumbnailLoader(max_workers=1, cache=None)
        self.view = GridView(self.loader)
        self.view.resize(640, 640)
        self.view.show()
        self.view.set_cell_size(100)

    def tearDown(self):
        self.loader.shutdown()
        self.view.close()
        self.view.deleteLater()

    def test_small_grid_is_centred(self):
        self.view.set_grid(2, 3, [0, 1, 2, 3, 4, 5], [None] * 6, None)
        vp = self.view.viewport().size()
        first, last = self.view.cell_rect(0), self.view.cell_rect(5)
        self.assertEqual(first.left(), (vp.width() - 3 * 106) // 2)
        self.assertEqual(first.top(), (vp.height() - 2 * 106) // 2)
        self.assertAlmostEqual(vp.width() - last.right() - 1, first.left(), delta=1)
        for cell in range(6):
            self.assertEqual(self.view.cell_at(self.view.cell_rect(cell).center()), cell)
        self.assertEqual(self.view.cell_at(QPoint(2, 2)), -1)
        self.assertEqual(sorted(self.view.visible_cells()), list(range(6)))
        self.assertEqual(sorted(self.view.rows_in(self.view.viewport().rect())), list(range(6)))

    def test_large_grid_scrolls_from_the_corner(self):
        n = 30 * 30
        self.view.set_grid(30, 30, list(range(n)), [None] * n, None)
        self.assertEqual(self.view.cell_rect(0).topLeft(), QPoint(0, 0))
        bar = self.view.verticalScrollBar()
        bar.setValue(212)
        self.assertEqual(self.view.cell_rect(60).top(), 0)
        self.assertEqual(self.view.cell_at(QPoint(5, 5)), 60)
        self.assertIn(60, self.view.visible_cells())
        self.assertNotIn(0, self.view.visible_cells())

    def test_fit_to_window(self):
        fitted = []
        self.view.cellSizeFitted.connect(fitted.append)
        self.view.set_grid(8, 4, list(range(30)), [None] * 30, None)
        self.view.set_fit(True)
        vp = self.view.viewport().size()
        size = self.view.cell_size
        self.assertEqual(fitted, [size])
        # every cell in view, and one pixel more would not fit down
        self.assertLessEqual(8 * (size + MARGIN), vp.height())
        self.assertGreater(8 * (size + 1 + MARGIN), vp.height())
        self.assertTrue(self.view.viewport().rect().contains(self.view.cell_rect(31)))
        # labels take room below each cell: the cells shrink to keep all in view
        self.view.set_labels(["x"] * 30)
        self.assertLess(self.view.cell_size, size)
        self.assertTrue(self.view.viewport().rect().contains(self.view.cell_rect(31)))
        size = self.view.cell_size
        # the window grows: the cells grow with it
        self.view.resize(900, 900)
        QApplication.processEvents()
        self.assertGreater(self.view.cell_size, size)
        self.assertEqual(fitted[-1], self.view.cell_size)
        # off: the size no longer follows the window
        self.view.set_fit(False)
        kept = self.view.cell_size
        self.view.resize(500, 500)
        QApplication.processEvents()
        self.assertEqual(self.view.cell_size, kept)

    def test_tooltip_names_file_title_and_group(self):
        values = [f"photos/cats/cat{i}.jpg" for i in range(6)]
        self.view.set_grid(2, 3, [5, 4, 3, 2, 1, 0], values, None)
        self.view.titles = [f"title {i}" for i in range(6)]
        self.view.groups = np.array([0, 2, 0, 0, 0, 0])
        # data row 1 sits in cell 4
        text = self.view.tooltip_at(self.view.cell_rect(4).center())
        self.assertIn("cat1.jpg", text)
        self.assertNotIn("photos/cats", text)
        self.assertIn("title 1", text)
        self.assertIn("G2", text)
        self.assertIn("In no group", self.view.tooltip_at(self.view.cell_rect(0).center()))
        self.assertEqual(self.view.tooltip_at(QPoint(1, 1)), "")
        # the viewport shows it on hover
        vp = self.view.viewport()
        pos = self.view.cell_rect(4).center()
        QApplication.sendEvent(vp, QHelpEvent(QEvent.ToolTip, pos, vp.mapToGlobal(pos)))
        self.assertIn("cat1.jpg", QToolTip.text())
        QToolTip.hideText()

    def test_tooltip_text(self):
        self.assertEqual(cell_tooltip("a/b<1>.png", None, 0, None),
                         "<b>b&lt;1&gt;.png</b><br/>In no group")
        self.assertEqual(cell_tooltip("http://x.org/p/q.jpg", "Cat", 3, "Not found"),
                         "<b>q.jpg</b><br/>Cat<br/>Group G3<br/><i>Not found</i>")


def wheel(widget, pos, notches, modifiers=Qt.ControlModifier):
    pos = QPointF(pos)
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.NoButton, modifiers,
                        Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def pixel(view, pos: QPoint) -> QColor:
    return QColor(view.viewport().grab().toImage().pixel(pos))


class TestMap(GuiTest):
    """A grid of 200 × 300 cells: 60,000 images (no files)."""
    ROWS, COLS = 200, 300

    def setUp(self):
        self.loader = ThumbnailLoader(max_workers=1, cache=None)
        self.averages = GridColors(cache=None)
        self.view = GridView(self.loader)
        self.view.set_averages(self.averages)
        self.view.colors = [QColor(255, 0, 0), QColor(0, 0, 255)]
        self.view.resize(640, 480)
        self.view.show()
        n = self.ROWS * self.COLS
        self.rng = np.random.default_rng(0)
        self.cell = self.rng.permutation(n)
        self.view.set_grid(self.ROWS, self.COLS, self.cell, [None] * n, None)
        # as if the workers had made every colour (no threads run)
        self.averages.colors = self.rng.integers(0, 256, (n, 3)).astype(np.uint8)
        self.averages.state = np.ones(n, dtype=np.int8)
        self.view.set_fit(True)
        QApplication.processEvents()

    def tearDown(self):
        self.loader.shutdown()
        self.averages.shutdown()
        self.view.close()
        self.view.deleteLater()

    def test_whole_grid_is_an_overview_of_average_colours(self):
        view = self.view
        self.assertTrue(view.is_map())
        vp = view.viewport().rect()
        for cell in (0, self.ROWS * self.COLS - 1):
            self.assertTrue(vp.contains(view.cell_rect(cell).center()), cell)
        self.assertIsNone(view.inset_rect())   # the whole grid is in view
        for cell in (0, 1234, 40000, self.ROWS * self.COLS - 1):
            rect = view.cell_rect(cell)
            row = int(view.row_of_cell[cell])
            got = pixel(view, rect.topLeft())
            self.assertEqual(got.getRgb()[:3], tuple(self.averages.colors[row]), cell)
        # a colour not known yet: the light grey of "loading"
        row = int(view.row_of_cell[7])
        self.averages.state[row] = 0
        view.refresh()
        self.assertEqual(pixel(view, view.cell_rect(7).topLeft()).getRgb()[:3], UNKNOWN)
        # ... until a worker's batch brings it: that pixel is updated
        self.averages._done = [(self.averages._generation, row, ("x", None), (9, 99, 199),
                                None)]
        self.averages._on_finished()
        self.assertEqual(pixel(view, view.cell_rect(7).topLeft()).getRgb()[:3], (9, 99, 199))
        # the view asks for nothing to be loaded: the whole map is colours
        self.assertEqual(self.loader.pending_count(), 0)
        # an image whose colour failed: its tooltip says why
        row = int(view.row_of_cell[9])
        self.averages._values = [None] * len(self.cell)
        self.averages._reasons[(None, None)] = "file not found"
        self.averages.state[row] = -1
        self.assertIn("file not found", view.tooltip_at(view.cell_rect(9).center()))
        self.assertNotIn("not found", view.tooltip_at(view.cell_rect(10).center()))

    def test_wheel_zooms_at_the_mouse(self):
        view = self.view
        vp = view.viewport()
        pos = QPoint(400, 150)
        cell = view.cell_at(pos)
        zoomed = []
        view.zoomed.connect(zoomed.append)
        size = view.cell_size
        for _ in range(12):
            wheel(vp, pos, 1)
            self.assertEqual(view.cell_at(pos), cell)   # the same image under the mouse
        self.assertGreater(view.cell_size, 10 * size)
        self.assertEqual(zoomed[-1], view.cell_size)
        self.assertFalse(view.fit)
        self.assertIsNotNone(view.inset_rect())
        wheel(vp, pos, -3)
        self.assertEqual(view.cell_at(pos), cell)
        # zooming out stops at the whole grid in view
        wheel(vp, pos, -40)
        self.assertAlmostEqual(view.cell_size, size, delta=0.02)
        self.assertIsNone(view.inset_rect())
        # a plain wheel does not zoom
        before = view.cell_size
        wheel(vp, pos, 1, Qt.NoModifier)
        self.assertEqual(view.cell_size, before)

    def test_thumbnails_when_zoomed_in(self):
        view = self.view
        view.zoom_at(QPoint(320, 240), MAP_CELL + 20)
        self.assertFalse(view.is_map())
        QApplication.processEvents()
        view.viewport().grab()
        visible = {int(view.row_of_cell[c]) for c in view.visible_cells()}
        # thumbnails (None: failed at once) are asked for the cells in view only
        self.assertLess(len(visible), 1000)
        self.assertTrue(all(self.loader.error(r) is not None or self.loader.is_pending(r)
                            for r in list(visible)[:50]))
        hidden = int(view.row_of_cell[-1])
        self.assertNotIn(hidden, visible)
        self.assertFalse(self.loader.is_pending(hidden))

    def test_drag_with_middle_or_right_button_pans(self):
        view = self.view
        vp = view.viewport()
        view.zoom_at(QPoint(320, 240), 30)
        marked = []
        view.selectionMade.connect(lambda rows, _: marked.append(rows))
        for button in (Qt.MiddleButton, Qt.RightButton):
            h, v = view.horizontalScrollBar().value(), view.verticalScrollBar().value()
            cell = view.cell_at(QPoint(300, 200))
            QTest.mousePress(vp, button, Qt.NoModifier, QPoint(300, 200))
            QTest.mouseMove(vp, QPoint(250, 180))
            QTest.mouseMove(vp, QPoint(200, 150))
            QTest.mouseRelease(vp, button, Qt.NoModifier, QPoint(200, 150))
            self.assertEqual(view.horizontalScrollBar().value(), h + 100)
            self.assertEqual(view.verticalScrollBar().value(), v + 50)
            # the grid moved with the mouse
            self.assertEqual(view.cell_at(QPoint(200, 150)), cell)
        self.assertEqual(marked, [])      # panning marks nothing

    def test_inset_shows_and_moves_the_view(self):
        view = self.view
        view.zoom_at(QPoint(0, 0), 40)
        inset = view.inset_rect()
        self.assertIsNotNone(inset)
        self.assertTrue(view.viewport().rect().contains(inset))
        shown = view.inset_view_rect()
        self.assertTrue(inset.adjusted(-1, -1, 1, 1).contains(shown))
        self.assertLess(shown.width(), inset.width() / 4)
        # a click in the inset's middle brings the grid's middle into view
        marked = []
        view.selectionMade.connect(lambda rows, _: marked.append(rows))
        middle_of_inset = inset.topLeft() + QPoint(inset.width() // 2, inset.height() // 2)
        QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, middle_of_inset)
        middle = (self.ROWS // 2) * self.COLS + self.COLS // 2
        vp = view.viewport().rect()
        self.assertTrue(vp.contains(view.cell_rect(middle)))
        self.assertLess((view.cell_rect(middle).center() - vp.center()).manhattanLength(),
                        2 * 46)
        self.assertEqual(marked, [])

    def test_marking_at_low_zoom(self):
        view = self.view
        vp = view.viewport()
        self.assertTrue(view.is_map())
        marked = []
        view.selectionMade.connect(lambda rows, mods: marked.append((rows, mods)))
        # a rubber band over a block of 20 × 30 cells, with Shift
        first, last = 40 * self.COLS + 100, 59 * self.COLS + 129
        start, end = view.cell_rect(first).center(), view.cell_rect(last).center()
        QTest.mousePress(vp, Qt.LeftButton, Qt.ShiftModifier, start)
        QTest.mouseMove(vp, QPoint((start.x() + end.x()) // 2, start.y()))
        QTest.mouseMove(vp, end)
        QTest.mouseRelease(vp, Qt.LeftButton, Qt.ShiftModifier, end)
        rows, mods = marked[-1]
        (r0, c0), (r1, c1) = divmod(view.cell_at(start), self.COLS), \
            divmod(view.cell_at(end), self.COLS)
        self.assertLessEqual(abs(r1 - r0 - 19) + abs(c1 - c0 - 29), 2)
        block = self.view.row_of_cell.reshape(self.ROWS, self.COLS)[r0:r1 + 1, c0:c1 + 1]
        self.assertEqual(sorted(rows), sorted(block.ravel().tolist()))
        self.assertEqual(mods, Qt.ShiftModifier)
        # a click on one tiny cell marks its image
        inside = view.cell_rect(first + 5).center()
        QTest.mouseClick(vp, Qt.LeftButton, Qt.NoModifier, inside)
        self.assertEqual(marked[-1][0], [int(view.row_of_cell[first + 5])])
        # marked images are drawn in their group's colour on the map
        view.groups = np.zeros(len(self.cell), dtype=np.int64)
        view.groups[block.ravel()] = 2
        view.refresh()
        got = pixel(view, view.cell_rect(first + 31 * 0 + 3).center())
        self.assertEqual(got.getRgb()[:3], (0, 0, 255))
        outside = view.cell_rect(first - 5)
        row = int(view.row_of_cell[first - 5])
        self.assertEqual(pixel(view, outside.topLeft()).getRgb()[:3],
                         tuple(self.averages.colors[row]))

    def test_frames_of_marked_cells_when_larger(self):
        view = self.view
        view.zoom_at(QPoint(0, 0), 12)     # a map still, large enough for frames
        self.assertTrue(view.is_map())
        view.groups = np.zeros(len(self.cell), dtype=np.int64)
        row = int(view.row_of_cell[self.COLS + 1])
        view.groups[row] = 1
        view.refresh()
        rect = view.cell_rect(self.COLS + 1)
        self.assertEqual(pixel(view, rect.topLeft()).getRgb()[:3], (255, 0, 0))
        # the frame leaves the image's colour in the middle
        self.assertEqual(pixel(view, rect.center()).getRgb()[:3],
                         tuple(self.averages.colors[row]))


class TestGridColors(GuiTest):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.colors = GridColors(cache=None, max_workers=2)

    def tearDown(self):
        self.colors.shutdown()
        self.tmp.cleanup()

    def wait(self, done):
        # bounded: at most 20 s
        for _ in range(2000):
            if done():
                return
            QApplication.processEvents()
            time.sleep(0.01)

    def test_average_color(self):
        self.assertEqual(average_color(Image.new("RGB", (8, 8), (10, 20, 30))), (10, 20, 30))
        half = Image.new("RGB", (8, 8), (0, 0, 0))
        half.paste((200, 100, 50), (0, 0, 4, 8))
        self.assertEqual(average_color(half), (100, 50, 25))
        # transparent parts count as white
        self.assertEqual(average_color(Image.new("RGBA", (4, 4), (0, 0, 0, 0))),
                         (255, 255, 255))

    def test_colours_of_files_made_in_workers(self):
        values = []
        for i, color in enumerate([(255, 0, 0), (0, 128, 0), (0, 0, 255)] * 10):
            path = os.path.join(self.tmp.name, f"{i}.png")
            Image.new("RGB", (40, 30), color).save(path)
            values.append(path)
        values.append(os.path.join(self.tmp.name, "missing.png"))
        values.append(None)
        ready = []
        self.colors.colorsReady.connect(lambda: ready.append(1))
        self.colors.start(values, None)
        self.wait(lambda: self.colors.pending() == 0)
        self.assertEqual(self.colors.pending(), 0)
        np.testing.assert_array_equal(self.colors.state, [1] * 30 + [-1, -1])
        self.assertEqual(tuple(self.colors.colors[0]), (255, 0, 0))
        self.assertEqual(tuple(self.colors.colors[4]), (0, 128, 0))
        self.assertEqual(tuple(self.colors.colors[29]), (0, 0, 255))
        self.assertTrue(ready)
        # why an image failed, for its tooltip on the map
        self.assertIn("not found", self.colors.error(30).lower())
        self.assertIsNone(self.colors.error(0))
        # the same images again (other data): known at once, from memory
        self.colors.clear()
        self.colors.start(values[::-1], None)
        self.assertEqual(self.colors.pending(), 0)
        self.assertEqual(tuple(self.colors.colors[-1]), (255, 0, 0))
        np.testing.assert_array_equal(self.colors.state[:2], [-1, -1])

    def test_rows_in_view_come_first(self):
        values = []
        for i in range(40):
            path = os.path.join(self.tmp.name, f"{i}.png")
            Image.new("RGB", (20, 20), (i, i, i)).save(path)
            values.append(path)
        colors = GridColors(cache=None, max_workers=1)
        try:
            with colors._cond:      # the worker takes nothing meanwhile
                colors.start(values, None)
                order = list(colors._order)
                self.assertEqual(sorted(order), list(range(40)))
                self.assertNotEqual(order, list(range(40)))   # shuffled
                wanted = order[-3:]
                colors.prefer(wanted)
                self.assertEqual([colors._next() for _ in range(4)],
                                 wanted + [order[0]])
        finally:
            colors.shutdown()


if __name__ == "__main__":
    unittest.main()
