"""One custom-painted view of an image grid: only visible cells are drawn.

Thumbnails come from the shared ThumbnailLoader at the cell size; the view
keeps no item per image, so 10,000 images cost one array of cell indexes.
With ``fit`` on, the cell size follows the window: the whole grid in view at
the largest cell that fits (``cellSizeFitted`` tells the new size).
"""
from __future__ import annotations

from html import escape

import numpy as np
from AnyQt.QtCore import QEvent, QPoint, QRect, QSize, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtGui import QColor, QImage, QPainter, QPen
from AnyQt.QtWidgets import QAbstractScrollArea, QRubberBand, QToolTip

from orangecontrib.imageanalytics.widgets.utils.grid_groups import Mark
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap, loading_pixmap)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader
from orangecontrib.imageanalytics.widgets.utils.zoom import fitted_size

LABEL_HEIGHT = 16
FADED_OPACITY = 0.35
MARGIN = 6          # between cells: a group's frame is drawn in it
MIN_CELL, MAX_CELL = 32, 512


def mark_for(modifiers) -> Mark:
    """What a click or rubber band with these keyboard modifiers does:
    plain a new selection, Shift a new group, Shift+Ctrl add to the last
    group, Alt remove."""
    if modifiers & Qt.AltModifier:
        return Mark.REMOVE
    if modifiers & Qt.ShiftModifier and modifiers & Qt.ControlModifier:
        return Mark.ADD_TO_LAST
    if modifiers & Qt.ShiftModifier:
        return Mark.NEW_GROUP
    return Mark.NEW_SELECTION


def cell_tooltip(value, title: str | None, group: int, error: str | None) -> str:
    """A cell's tooltip (rich text): its file name, title, group and, for an
    image that cannot be shown, why."""
    text = "" if value is None else str(value)
    name = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or text
    lines = [f"<b>{escape(name)}</b>"]
    if title:
        lines.append(escape(title))
    lines.append(f"Group G{group}" if group else "In no group")
    if error:
        lines.append(f"<i>{escape(error)}</i>")
    return "<br/>".join(lines)


class GridView(QAbstractScrollArea):
    """Paints ``rows × cols`` cells; ``row_of_cell[c]`` is the data row or -1."""
    selectionMade = Signal(object, object)        # list of data rows, modifiers
    currentChanged = Signal(int)                  # data row
    previewRequested = Signal(int)
    cellSizeFitted = Signal(int)                  # the size that fits the window

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.loader.thumbnailReady.connect(self._on_ready)
        self.rows = self.cols = 0
        self.row_of_cell = np.zeros(0, dtype=int)
        self.values: list = []
        self.origin = None
        self.labels: list[str] | None = None
        self.titles: list[str] | None = None          # for tooltips
        self.colors: list[QColor] = []               # colour of group g at g - 1
        self.groups = np.zeros(0, dtype=np.int64)     # per data row, 0 = unselected
        self.faded = np.zeros(0, dtype=bool)
        self.label_selected_only = False
        self.cell_size = 100
        self.fit = False
        self.crop = False
        self.current = -1
        self._press = None
        self._band = QRubberBand(QRubberBand.Rectangle, self.viewport())
        self.setFocusPolicy(Qt.StrongFocus)
        self.viewport().setMouseTracking(False)

    # --- content -----------------------------------------------------------
    def set_grid(self, rows, cols, cell, values, origin):
        """``cell[i]`` is the cell of data row i (``GridLayout.cell``)."""
        cell = np.asarray(cell, dtype=np.int64)
        self.rows, self.cols = rows, cols
        self.row_of_cell = np.full(rows * cols, -1, dtype=np.int64)
        self.row_of_cell[cell] = np.arange(len(cell))
        self.values, self.origin = values, origin
        if len(self.groups) != len(values):
            self.groups = np.zeros(len(values), dtype=np.int64)
        if len(self.faded) != len(values):
            self.faded = np.zeros(len(values), dtype=bool)
        self.current = -1
        self._update_scroll()

    def clear(self):
        self.rows = self.cols = 0
        self.row_of_cell = np.zeros(0, dtype=np.int64)
        self.values, self.origin, self.labels = [], None, None
        self.groups = np.zeros(0, dtype=np.int64)
        self.faded = np.zeros(0, dtype=bool)
        self.current = -1
        self._update_scroll()

    def refresh(self):
        self._update_scroll()

    def set_cell_size(self, size: int):
        self.cell_size = size
        self._update_scroll()

    def set_fit(self, fit: bool):
        """Fit the grid to the window now and whenever it changes size."""
        self.fit = fit
        self._update_scroll()

    def _fit(self):
        # the size without scroll bars: a grid that fits needs none
        vs = self.maximumViewportSize()
        extra = LABEL_HEIGHT if self.labels is not None else 0
        size = fitted_size(vs.width(), vs.height(), self.rows, self.cols,
                           margin=MARGIN, extra_height=extra,
                           lo=MIN_CELL, hi=MAX_CELL)
        if size != self.cell_size:
            self.cell_size = size
            self.cellSizeFitted.emit(size)

    def set_labels(self, labels):
        self.labels = labels
        self._update_scroll()

    def set_colors(self, colors, faded):
        self.colors, self.faded = colors, np.asarray(faded, dtype=bool)
        self.viewport().update()

    def set_crop(self, crop: bool):
        self.crop = crop
        self.viewport().update()

    def _pitch(self) -> QSize:
        extra = LABEL_HEIGHT if self.labels is not None else 0
        return QSize(self.cell_size + MARGIN, self.cell_size + MARGIN + extra)

    def _update_scroll(self):
        if self.fit and self.cols:
            self._fit()
        p = self._pitch()
        vs = self.viewport().size()
        self.horizontalScrollBar().setRange(0, max(0, self.cols * p.width() - vs.width()))
        self.verticalScrollBar().setRange(0, max(0, self.rows * p.height() - vs.height()))
        self.horizontalScrollBar().setPageStep(vs.width())
        self.verticalScrollBar().setPageStep(vs.height())
        self.viewport().update()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._update_scroll()

    def _origin(self) -> QPoint:
        """Where the grid's top left corner is in the viewport: a grid smaller
        than the view is centred, a larger one scrolls."""
        p, vs = self._pitch(), self.viewport().size()
        return QPoint(max(0, (vs.width() - self.cols * p.width()) // 2)
                      - self.horizontalScrollBar().value(),
                      max(0, (vs.height() - self.rows * p.height()) // 2)
                      - self.verticalScrollBar().value())

    def cell_rect(self, cell: int) -> QRect:
        p = self._pitch()
        r, c = divmod(cell, self.cols)
        o = self._origin()
        return QRect(o.x() + c * p.width(), o.y() + r * p.height(), p.width(), p.height())

    def visible_cells(self) -> list[int]:
        if not self.cols:
            return []
        p = self._pitch()
        o = self._origin()
        x0, y0 = max(0, -o.x()), max(0, -o.y())
        vs = self.viewport().size()
        c0, c1 = x0 // p.width(), min(self.cols - 1, (x0 + vs.width()) // p.width())
        r0, r1 = y0 // p.height(), min(self.rows - 1, (y0 + vs.height()) // p.height())
        return [r * self.cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def cell_at(self, pos: QPoint) -> int:
        if not self.cols:
            return -1
        p = self._pitch()
        o = self._origin()
        x, y = pos.x() - o.x(), pos.y() - o.y()
        if x < 0 or y < 0:
            return -1
        c, r = x // p.width(), y // p.height()
        if 0 <= c < self.cols and 0 <= r < self.rows:
            return r * self.cols + c
        return -1

    # --- painting ----------------------------------------------------------
    def paintEvent(self, event):
        painter = QPainter(self.viewport())
        size = self.cell_size
        visible = self.visible_cells()
        rows_shown = []
        for cell in visible:
            row = int(self.row_of_cell[cell]) if cell < len(self.row_of_cell) else -1
            if row < 0:
                continue
            rows_shown.append(row)
            rect = self.cell_rect(cell)
            inner = QRect(rect.x() + 3, rect.y() + 3, size, size)
            painter.setOpacity(FADED_OPACITY if len(self.faded) and self.faded[row]
                               else 1.0)
            image = self.loader.request(row, self.values[row], self.origin, size,
                                        cover=self.crop)
            if image is None:
                image = self.loader.cached(row, size, cover=self.crop)
            if image is None:
                pix = (failed_pixmap(size) if self.loader.error(row) is not None
                       else loading_pixmap(size))
                painter.drawPixmap(inner, pix)
            else:
                self._draw_image(painter, image, inner)
            group = int(self.groups[row]) if row < len(self.groups) else 0
            if self.labels is not None and (group or not self.label_selected_only):
                painter.drawText(QRect(rect.x(), inner.bottom() + 2, rect.width(),
                                       LABEL_HEIGHT), Qt.AlignCenter | Qt.TextSingleLine,
                                 self.labels[row])
            painter.setOpacity(1.0)
            color = self.colors[(group - 1) % len(self.colors)] \
                if group and self.colors else None
            if color is not None:
                painter.setPen(QPen(color, 3))
                painter.drawRect(rect.adjusted(1, 1, -2, -2))
            if row == self.current and self.hasFocus():
                painter.setPen(QPen(self.palette().highlight().color(), 1, Qt.DashLine))
                painter.drawRect(rect.adjusted(0, 0, -1, -1))
        painter.end()
        self.loader.retain_only(rows_shown)

    def _draw_image(self, painter, image: QImage, inner: QRect):
        w, h = image.width(), image.height()
        if not w or not h:
            return
        if self.crop:
            scale = max(inner.width() / w, inner.height() / h)
            sw, sh = inner.width() / scale, inner.height() / scale
            src = QRect(int((w - sw) / 2), int((h - sh) / 2), int(sw), int(sh))
            painter.drawImage(inner, image, src)
        else:
            scale = min(inner.width() / w, inner.height() / h)
            dw, dh = int(w * scale), int(h * scale)
            target = QRect(inner.x() + (inner.width() - dw) // 2,
                           inner.y() + (inner.height() - dh) // 2, dw, dh)
            painter.drawImage(target, image)

    def _on_ready(self, key):
        if not self.cols:
            return
        cells = np.flatnonzero(self.row_of_cell == key) if isinstance(key, int) else []
        for cell in cells:
            self.viewport().update(self.cell_rect(int(cell)))

    # --- interaction -------------------------------------------------------
    def tooltip_at(self, pos: QPoint) -> str:
        """The tooltip of the image at ``pos`` (viewport coordinates), or ''."""
        cell = self.cell_at(pos)
        row = int(self.row_of_cell[cell]) if cell >= 0 else -1
        if row < 0 or row >= len(self.values):
            return ""
        title = self.titles[row] if self.titles is not None else None
        group = int(self.groups[row]) if row < len(self.groups) else 0
        return cell_tooltip(self.values[row], title, group, self.loader.error(row))

    def viewportEvent(self, event):
        if event.type() == QEvent.ToolTip:
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def rows_in(self, rect: QRect) -> list[int]:
        rect = rect.normalized()
        out = []
        for cell in self.visible_cells():
            row = int(self.row_of_cell[cell])
            if row >= 0 and self.cell_rect(cell).intersects(rect):
                out.append(row)
        return out

    def mousePressEvent(self, event):
        if event.button() != Qt.LeftButton:
            return super().mousePressEvent(event)
        self._press = event.pos()
        self._band.setGeometry(QRect(self._press, QSize()))
        self._band.show()

    def mouseMoveEvent(self, event):
        if self._press is not None:
            self._band.setGeometry(QRect(self._press, event.pos()).normalized())

    def mouseReleaseEvent(self, event):
        if self._press is None:
            return super().mouseReleaseEvent(event)
        rect = QRect(self._press, event.pos()).normalized()
        self._band.hide()
        self._press = None
        if rect.width() < 3 and rect.height() < 3:
            cell = self.cell_at(event.pos())
            row = int(self.row_of_cell[cell]) if cell >= 0 else -1
            rows = [row] if row >= 0 else []
            if row >= 0:
                self.current = row
                self.currentChanged.emit(row)
        else:
            rows = self.rows_in(rect)
        self.selectionMade.emit(rows, event.modifiers())

    def keyPressEvent(self, event):
        key = event.key()
        if key == Qt.Key_Space and self.current >= 0:
            self.previewRequested.emit(self.current)
            return
        moves = {Qt.Key_Left: (0, -1), Qt.Key_Right: (0, 1),
                 Qt.Key_Up: (-1, 0), Qt.Key_Down: (1, 0)}
        if key in moves and self.cols:
            self.move_current(key)
            return
        super().keyPressEvent(event)

    def move_current(self, key: int):
        """Move the current cell by an arrow key (Qt.Key)."""
        moves = {Qt.Key_Left: (0, -1), Qt.Key_Right: (0, 1),
                 Qt.Key_Up: (-1, 0), Qt.Key_Down: (1, 0)}
        if key not in moves or not self.cols:
            return
        dr, dc = moves[key]
        cells = np.flatnonzero(self.row_of_cell == self.current)
        cell = int(cells[0]) if len(cells) else 0
        r, c = divmod(cell, self.cols)
        r = min(max(r + dr, 0), self.rows - 1)
        c = min(max(c + dc, 0), self.cols - 1)
        row = int(self.row_of_cell[r * self.cols + c])
        if row >= 0:
            self.current = row
            self.currentChanged.emit(row)
            self.viewport().update()
