"""The grid view centres a grid smaller than itself and maps clicks to cells."""
import unittest

from AnyQt.QtCore import QPoint
from Orange.widgets.tests.base import GuiTest

from orangecontrib.imageanalytics.widgets.utils.grid_view import GridView
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


if __name__ == "__main__":
    unittest.main()
