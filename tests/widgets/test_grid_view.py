"""The grid view centres a grid smaller than itself, maps clicks to cells,
fits itself to its window and names the image under the mouse."""
import unittest

import numpy as np
from AnyQt.QtCore import QEvent, QPoint
from AnyQt.QtGui import QHelpEvent
from AnyQt.QtWidgets import QApplication, QToolTip
from Orange.widgets.tests.base import GuiTest

from orangecontrib.imageanalytics.widgets.utils.grid_view import (
    MARGIN, GridView, cell_tooltip)
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


if __name__ == "__main__":
    unittest.main()
