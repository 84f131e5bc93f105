"""A list model over a table's image column and a delegate that paints it.

:class:`ImageListModel` keeps the column's values as one array and computes
everything else (titles, thumbnails, tooltips) in ``data()``, for the rows
the view paints: taking a table of 50,000 rows costs no more than reading
its column. Thumbnails come from a :class:`ThumbnailLoader`; until one is
known the model gives a loading placeholder, and after a failure the failed
placeholder with the reason in the tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from AnyQt.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtGui import QImage, QPainter, QPalette, QPixmap
from AnyQt.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from orangecontrib.imageanalytics.image_sources import resolve_source
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader

__all__ = ["ErrorRole", "ImageListModel", "ThumbnailDelegate", "ValueRole"]

#: The image column's value of a row (str or None).
ValueRole = Qt.UserRole + 1
#: Why a row's image cannot be shown (str), or None.
ErrorRole = Qt.UserRole + 2

_PADDING = 6


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) \
        or (isinstance(value, str) and not value.strip())


class ImageListModel(QAbstractListModel):
    """One item per row of a table: its thumbnail and its title."""

    #: A row's thumbnail (or its failure) arrived; the view repaints its cell.
    thumbnailChanged = Signal(int)

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.values: np.ndarray = np.empty(0, dtype=object)
        self.origin: str | None = None
        self._titles: np.ndarray | None = None
        self._title_var = None
        self.size = 100
        self._failures: dict[int, str] = {}
        self.loader.thumbnailReady.connect(self._on_ready)

    # ------------------------------------------------------------ content

    def set_column(self, values: Sequence | None, origin: str | None,
                   titles: np.ndarray | None = None, title_var=None) -> None:
        """Show ``values`` (a column of image paths or URLs)."""
        self.beginResetModel()
        self.values = np.asarray(values if values is not None else [], dtype=object)
        self.origin = origin
        self._titles, self._title_var = titles, title_var
        self._failures = {}
        self.endResetModel()

    def set_titles(self, titles: np.ndarray | None, title_var) -> None:
        self._titles, self._title_var = titles, title_var
        if len(self.values):
            self.dataChanged.emit(self.index(0), self.index(len(self.values) - 1),
                                  [Qt.DisplayRole])

    def set_size(self, size: int) -> None:
        self.size = size

    def title(self, row: int) -> str:
        if self._titles is None or self._title_var is None:
            return ""
        return self._title_var.str_val(self._titles[row])

    def failures(self) -> dict[int, str]:
        """Rows whose image could not be shown so far, with the reasons."""
        return self._failures

    def missing_count(self) -> int:
        return int(sum(map(_is_missing, self.values)))

    # ------------------------------------------------------------ Qt model

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self.values)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self.values):
            return None
        if role == Qt.DisplayRole:
            return self.title(row)
        if role == Qt.DecorationRole:
            return self.thumbnail(row)
        if role == ValueRole:
            value = self.values[row]
            return None if _is_missing(value) else str(value)
        if role == ErrorRole:
            return self._error(row)
        if role == Qt.ToolTipRole:
            return self._tooltip(row)
        return None

    def thumbnail(self, row: int) -> QImage | QPixmap:
        """The row's thumbnail, the best one in memory meanwhile, or a
        placeholder; queues the right size when it is not in memory."""
        value = self.values[row]
        if _is_missing(value):
            self._failures[row] = "missing value"
            return failed_pixmap(self.size)
        image = self.loader.request(row, str(value), self.origin, self.size)
        if image is not None:
            return image
        if self._error(row) is not None:
            return failed_pixmap(self.size)
        interim = self.loader.cached(row, self.size)
        return interim if interim is not None else loading_pixmap(self.size)

    def _error(self, row: int) -> str | None:
        if _is_missing(self.values[row]):
            return "missing value"
        return self.loader.error(row)

    def _tooltip(self, row: int) -> str:
        value = self.values[row]
        source = resolve_source(value, self.origin) if not _is_missing(value) else None
        lines = [self.title(row) or "", source or "(no image)"]
        error = self._error(row)
        if error:
            lines.append(f"Cannot be shown: {error}")
        return "\n".join(line for line in lines if line)

    def _on_ready(self, key) -> None:
        if not isinstance(key, int) or not 0 <= key < len(self.values):
            return
        error = self.loader.error(key)
        if error is not None:
            self._failures[key] = error
        # no dataChanged: QListView lays out all its rows again after one
        # (50,000 rows: a freeze per thumbnail); views repaint the cell
        # themselves (thumbnailChanged)
        self.thumbnailChanged.emit(key)


class ThumbnailDelegate(QStyledItemDelegate):
    """A thumbnail fitted into a square cell, its title below."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.size = 100

    def set_size(self, size: int) -> None:
        self.size = size

    def _text_height(self, option) -> int:
        return option.fontMetrics.height() + 2

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.size + 2 * _PADDING,
                     self.size + 2 * _PADDING + self._text_height(option))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        painter.save()
        style = option.widget.style() if option.widget else QApplication.style()
        rect = option.rect
        selected = bool(option.state & QStyle.State_Selected)
        if selected:
            painter.fillRect(rect.adjusted(1, 1, -1, -1),
                             option.palette.brush(QPalette.Highlight))
        elif option.state & QStyle.State_MouseOver:
            painter.fillRect(rect.adjusted(1, 1, -1, -1),
                             option.palette.brush(QPalette.AlternateBase))
        cell = QRect(rect.x() + _PADDING, rect.y() + _PADDING, self.size, self.size)
        picture = index.data(Qt.DecorationRole)
        if picture is not None and not picture.isNull():
            target = _fit(picture.size(), cell)
            # thumbnails come at the cell's size: copied, not scaled
            if target.size() != picture.size():
                painter.setRenderHint(QPainter.SmoothPixmapTransform)
            if isinstance(picture, QImage):
                painter.drawImage(target, picture)
            else:
                painter.drawPixmap(target, picture)
        title = index.data(Qt.DisplayRole)
        if title:
            text_rect = QRect(rect.x() + 2, cell.bottom() + 2, rect.width() - 4,
                              self._text_height(option))
            painter.setPen(option.palette.color(
                QPalette.HighlightedText if selected else QPalette.Text))
            elided = option.fontMetrics.elidedText(title, Qt.ElideRight, text_rect.width())
            painter.drawText(text_rect, Qt.AlignHCenter | Qt.AlignTop, elided)
        if option.state & QStyle.State_HasFocus:
            focus = QStyleOptionViewItem(option)
            style.drawPrimitive(QStyle.PE_FrameFocusRect, focus, painter, option.widget)
        painter.restore()


def _fit(size: QSize, cell: QRect) -> QRect:
    """The largest rectangle of ``size``'s aspect within ``cell``, centred;
    never larger than ``size`` times the cell's need (small images grow)."""
    scaled = size.scaled(cell.size(), Qt.KeepAspectRatio)
    scaled = QSize(max(1, scaled.width()), max(1, scaled.height()))
    x = cell.x() + (cell.width() - scaled.width()) // 2
    y = cell.y() + (cell.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())
