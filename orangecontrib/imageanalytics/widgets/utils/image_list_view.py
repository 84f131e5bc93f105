"""The list view of Image Viewer: a grid of thumbnails that knows which rows
are in view and selects rows by ranges."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from AnyQt.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QPoint
from AnyQt.QtWidgets import QAbstractItemView, QListView

__all__ = ["ImageListView"]


class ImageListView(QListView):
    """A grid of thumbnails; tells when the visible rows change."""

    def __init__(self, parent=None):
        super().__init__(parent)
        # icon mode keeps the laid-out cells in a tree, so painting and
        # hit-testing a scrolled view cost the same at 200 and 50,000 rows
        # (list mode with wrapping walks all rows on every scroll)
        self.setViewMode(QListView.IconMode)
        self.setMovement(QListView.Static)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.Batched)
        self.setBatchSize(500)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setSelectionRectVisible(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setSpacing(2)

    def visible_rows(self) -> range:
        """The rows whose cells the viewport shows now."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return range(0)
        n = model.rowCount()
        area = self.viewport().rect()
        cell = self.visualRect(model.index(0, 0))
        step_x = cell.width() + 2 * self.spacing()
        step_y = cell.height() + 2 * self.spacing()
        # the first cell on the top line: the top edge may lie in the gap
        # between two lines, so look down until a cell is hit
        first = QModelIndex()
        for dy in range(0, max(1, step_y) + 1, 2):
            first = self.indexAt(QPoint(area.left() + step_x // 2, area.top() + dy))
            if first.isValid():
                break
        start = first.row() if first.isValid() else 0
        per_line = max(1, area.width() // max(1, step_x))
        lines = area.height() // max(1, step_y) + 2
        stop = min(n, start + per_line * lines)
        while stop > start and not self.visualRect(model.index(stop - 1, 0)).intersects(area):
            stop -= 1
        return range(start, stop)

    def select_rows(self, rows: Iterable[int]) -> None:
        """Select exactly these rows, as a click or a rubber band would.

        The selection is given as ranges of consecutive rows, not one index
        per row: Ctrl+A or a restored selection of 50,000 rows stays instant.
        """
        model = self.model()
        selection = QItemSelection()
        for start, stop in _runs(sorted(rows)):
            selection.select(model.index(start, 0), model.index(stop, 0))
        self.selectionModel().select(selection, QItemSelectionModel.ClearAndSelect)


def _runs(rows: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers in sorted ``rows``."""
    start = prev = None
    for row in rows:
        if start is None:
            start = prev = row
        elif row == prev + 1:
            prev = row
        else:
            yield start, prev
            start = prev = row
    if start is not None:
        yield start, prev
