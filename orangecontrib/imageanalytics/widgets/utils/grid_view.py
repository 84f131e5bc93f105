"""One custom-painted view of an image grid, a map that zooms from the
whole collection down to single photos.

The view keeps no item per image: 100,000 images cost a few arrays. Only
visible cells are drawn. Cells large enough for a picture get a thumbnail
from the shared ThumbnailLoader at the cell size; smaller ones are drawn as
each image's average colour (:mod:`.grid_colors`, made in worker threads)
from one image with a pixel per cell (:mod:`.grid_map`), scaled in a single
call, so the whole grid in view paints in milliseconds.

Ctrl + wheel zooms at the mouse; a drag with the middle or right button
pans, and so does a drag in the overview inset in the corner, which shows
where the view is on the whole grid. A left click or drag marks images at
every zoom. With ``fit`` on, the cell size follows the window: the whole grid
in view (``cellSizeFitted`` tells the new size).
"""
from __future__ import annotations

import math
from html import escape

import numpy as np
from AnyQt.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt
from AnyQt.QtCore import pyqtSignal as Signal
from AnyQt.QtGui import QColor, QImage, QPainter, QPen
from AnyQt.QtWidgets import QAbstractScrollArea, QRubberBand, QToolTip

from orangecontrib.imageanalytics.widgets.utils.grid_colors import GridColors
from orangecontrib.imageanalytics.widgets.utils.grid_groups import Mark
from orangecontrib.imageanalytics.widgets.utils.grid_map import (
    cell_colors,
    group_colors,
    set_colors,
    to_qimage,
)
from orangecontrib.imageanalytics.widgets.utils.placeholders import (
    failed_pixmap,
    loading_pixmap,
)
from orangecontrib.imageanalytics.widgets.utils.thumbnail_loader import ThumbnailLoader
from orangecontrib.imageanalytics.widgets.utils.zoom import fitted_size, map_fitted_size

LABEL_HEIGHT = 16
FADED_OPACITY = 0.35
MARGIN = 6          # between cells: a group's frame is drawn in it
MIN_CELL, MAX_CELL = 32, 512
#: Cells smaller than this are drawn as their image's average colour.
MAP_CELL = 20
#: The smallest cell a map zooms out to (a grid of 1,000 × 1,000 in 1,000 px).
MIN_MAP = 0.5
#: Marked cells get a frame from this pitch on; smaller ones are filled.
FRAMES_FROM = 8
#: Each wheel notch (120 units) zooms by this factor.
ZOOM_FACTOR = 1.25
#: The overview inset's longest side and its distance from the corner.
INSET_SIZE, INSET_MARGIN = 180, 10


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
    cellSizeFitted = Signal(float)                # the size that fits the window
    zoomed = Signal(float)                        # the size after a wheel zoom

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.loader.thumbnailReady.connect(self._on_ready)
        self.averages: GridColors | None = None
        self.rows = self.cols = 0
        self.row_of_cell = np.zeros(0, dtype=np.int64)
        self.cell_of_row = np.zeros(0, dtype=np.int64)
        self.values: list = []
        self.origin = None
        self.labels: list[str] | None = None
        self.titles: list[str] | None = None          # for tooltips
        self.colors: list[QColor] = []               # colour of group g at g - 1
        self.groups = np.zeros(0, dtype=np.int64)     # per data row, 0 = unselected
        self.faded = np.zeros(0, dtype=bool)
        self.label_selected_only = False
        self.cell_size: float = 100
        self.fit = False
        self.crop = False
        self.current = -1
        self._press = None          # where a rubber band started
        self._pan = None            # (mouse, scroll x, scroll y) of a pan
        self._inset_drag = False
        self._map_image: QImage | None = None
        self._map_rgba = np.zeros((0, 0, 4), dtype=np.uint8)  # the image's pixels
        self._groups_image: QImage | None = None
        self._groups_image_valid = False
        self._preferred = None      # the visible block whose colours were asked first
        self._band = QRubberBand(QRubberBand.Rectangle, self.viewport())
        self.setFocusPolicy(Qt.StrongFocus)
        self.viewport().setMouseTracking(False)

    def set_averages(self, averages: GridColors) -> None:
        """Where the average colours of the overview come from."""
        self.averages = averages
        averages.colorsReady.connect(self._on_colors)

    # --- content -----------------------------------------------------------
    def set_grid(self, rows, cols, cell, values, origin):
        """``cell[i]`` is the cell of data row i (``GridLayout.cell``)."""
        cell = np.asarray(cell, dtype=np.int64)
        self.rows, self.cols = rows, cols
        self.row_of_cell = np.full(rows * cols, -1, dtype=np.int64)
        self.row_of_cell[cell] = np.arange(len(cell))
        self.cell_of_row = cell.copy()
        self.values, self.origin = values, origin
        if len(self.groups) != len(values):
            self.groups = np.zeros(len(values), dtype=np.int64)
        if len(self.faded) != len(values):
            self.faded = np.zeros(len(values), dtype=bool)
        self.current = -1
        self._preferred = None
        self._invalidate()
        self._update_scroll()

    def clear(self):
        self.rows = self.cols = 0
        self.row_of_cell = np.zeros(0, dtype=np.int64)
        self.cell_of_row = np.zeros(0, dtype=np.int64)
        self.values, self.origin, self.labels = [], None, None
        self.groups = np.zeros(0, dtype=np.int64)
        self.faded = np.zeros(0, dtype=bool)
        self.current = -1
        self._invalidate()
        self._update_scroll()

    def refresh(self):
        """Show changed groups, faded rows or labels."""
        self._invalidate()
        self._update_scroll()

    def _invalidate(self):
        self._map_image = None
        self._groups_image_valid = False

    def set_cell_size(self, size: float):
        """Zoom to ``size`` about the middle of the view."""
        self.zoom_at(self.viewport().rect().center(), size)

    def set_fit(self, fit: bool):
        """Fit the grid to the window now and whenever it changes size."""
        self.fit = fit
        self._update_scroll()

    def _fit(self):
        # the size without scroll bars: a grid that fits needs none
        vs = self.maximumViewportSize()
        extra = LABEL_HEIGHT if self.labels is not None else 0
        size = fitted_size(vs.width(), vs.height(), self.rows, self.cols,
                           margin=MARGIN, extra_height=extra, lo=1, hi=MAX_CELL)
        if size < MIN_CELL:
            # a map: margins shrink with the cells, labels are not drawn
            size = min(map_fitted_size(vs.width(), vs.height(), self.rows, self.cols,
                                       margin_share=MARGIN / MIN_CELL, lo=MIN_MAP),
                       MIN_CELL - 0.01)
        if size != self.cell_size:
            self.cell_size = size
            self.cellSizeFitted.emit(float(size))

    def min_size(self) -> float:
        """The smallest cell size the view zooms out to: the whole grid in
        view, or :data:`MIN_CELL` for a grid that fits at that size."""
        if not self.cols:
            return MIN_CELL
        vs = self.maximumViewportSize()
        return min(MIN_CELL, map_fitted_size(vs.width(), vs.height(), self.rows, self.cols,
                                             margin_share=MARGIN / MIN_CELL, lo=MIN_MAP))

    def set_labels(self, labels):
        self.labels = labels
        self._update_scroll()

    def set_colors(self, colors, faded):
        self.colors, self.faded = colors, np.asarray(faded, dtype=bool)
        self._invalidate()
        self.viewport().update()

    def set_crop(self, crop: bool):
        self.crop = crop
        self.viewport().update()

    def is_map(self) -> bool:
        """Whether cells are drawn as colours (too small for a picture)."""
        return self.cell_size < MAP_CELL

    # --- geometry ----------------------------------------------------------
    def _margin(self) -> float:
        return MARGIN if self.cell_size >= MIN_CELL else MARGIN * self.cell_size / MIN_CELL

    def _pitch_xy(self) -> tuple[float, float]:
        margin = self._margin()
        extra = LABEL_HEIGHT if self.labels is not None and self.cell_size >= MIN_CELL else 0
        return self.cell_size + margin, self.cell_size + margin + extra

    def _pitch(self) -> QSize:
        px, py = self._pitch_xy()
        return QSize(round(px), round(py))

    def _extent(self) -> tuple[int, int]:
        px, py = self._pitch_xy()
        return math.ceil(self.cols * px - 1e-6), math.ceil(self.rows * py - 1e-6)

    def _update_scroll(self):
        if self.fit and self.cols:
            self._fit()
        gw, gh = self._extent()
        vs = self.viewport().size()
        self.horizontalScrollBar().setRange(0, max(0, gw - vs.width()))
        self.verticalScrollBar().setRange(0, max(0, gh - vs.height()))
        self.horizontalScrollBar().setPageStep(vs.width())
        self.verticalScrollBar().setPageStep(vs.height())
        self.horizontalScrollBar().setSingleStep(max(1, round(self._pitch_xy()[0])))
        self.verticalScrollBar().setSingleStep(max(1, round(self._pitch_xy()[1])))
        self.viewport().update()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._update_scroll()

    def _origin_xy(self) -> tuple[float, float]:
        gw, gh = self._extent()
        vs = self.viewport().size()
        return (max(0, (vs.width() - gw) // 2) - self.horizontalScrollBar().value(),
                max(0, (vs.height() - gh) // 2) - self.verticalScrollBar().value())

    def _origin(self) -> QPoint:
        """Where the grid's top left corner is in the viewport: a grid smaller
        than the view is centred, a larger one scrolls."""
        ox, oy = self._origin_xy()
        return QPoint(round(ox), round(oy))

    def cell_rect(self, cell: int) -> QRect:
        px, py = self._pitch_xy()
        r, c = divmod(cell, self.cols)
        ox, oy = self._origin_xy()
        x0, y0 = round(ox + c * px), round(oy + r * py)
        return QRect(x0, y0, round(ox + (c + 1) * px) - x0, round(oy + (r + 1) * py) - y0)

    def _block(self, left, top, right, bottom):
        """Rows and columns (inclusive) of the cells that overlap the
        viewport's pixels ``left..right × top..bottom``; None if none."""
        if not self.cols:
            return None
        px, py = self._pitch_xy()
        ox, oy = self._origin_xy()
        # pixel x is in the cell whose rounded edges hold it (as cell_rect)
        c0 = max(0, math.floor((left + 0.5 - ox) / px))
        c1 = min(self.cols - 1, math.floor((right + 0.5 - ox) / px))
        r0 = max(0, math.floor((top + 0.5 - oy) / py))
        r1 = min(self.rows - 1, math.floor((bottom + 0.5 - oy) / py))
        if c0 > c1 or r0 > r1:
            return None
        return r0, r1, c0, c1

    def _visible_block(self):
        vs = self.viewport().size()
        return self._block(0, 0, vs.width() - 1, vs.height() - 1)

    def visible_cells(self) -> list[int]:
        block = self._visible_block()
        if block is None:
            return []
        r0, r1, c0, c1 = block
        return [r * self.cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def cell_at(self, pos: QPoint) -> int:
        if not self.cols:
            return -1
        px, py = self._pitch_xy()
        ox, oy = self._origin_xy()
        c = math.floor((pos.x() + 0.5 - ox) / px)
        r = math.floor((pos.y() + 0.5 - oy) / py)
        if 0 <= c < self.cols and 0 <= r < self.rows:
            return r * self.cols + c
        return -1

    def rows_in(self, rect: QRect) -> list[int]:
        """Data rows whose cells overlap ``rect`` (viewport coordinates)."""
        rect = rect.normalized().intersected(self.viewport().rect())
        if rect.isEmpty():
            return []
        block = self._block(rect.left(), rect.top(), rect.right(), rect.bottom())
        if block is None:
            return []
        r0, r1, c0, c1 = block
        cells = self.row_of_cell.reshape(self.rows, self.cols)[r0:r1 + 1, c0:c1 + 1]
        return cells[cells >= 0].tolist()

    # --- zoom and pan --------------------------------------------------------
    def zoom_at(self, pos: QPoint, size: float) -> None:
        """Cells of ``size``, keeping the grid's point at ``pos`` under it
        (a size chosen so no longer follows the window)."""
        self.fit = False
        size = max(self.min_size(), min(MAX_CELL, float(size)))
        if size >= MIN_CELL:
            size = round(size)
        if self.cols:
            px, py = self._pitch_xy()
            ox, oy = self._origin_xy()
            gx, gy = (pos.x() - ox) / px, (pos.y() - oy) / py
        self.cell_size = size
        self._update_scroll()
        if self.cols:
            px, py = self._pitch_xy()
            self.horizontalScrollBar().setValue(round(gx * px - pos.x()))
            self.verticalScrollBar().setValue(round(gy * py - pos.y()))

    def wheelEvent(self, event):
        if not event.modifiers() & Qt.ControlModifier:
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y()
        if delta:
            pos = event.position().toPoint() if hasattr(event, "position") else event.pos()
            self.zoom_at(pos, self.cell_size * ZOOM_FACTOR ** (delta / 120))
            self.zoomed.emit(float(self.cell_size))
        event.accept()

    def pan_by(self, dx: int, dy: int) -> None:
        """Move the grid by ``dx, dy`` pixels (as a drag does)."""
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() - dx)
        v.setValue(v.value() - dy)

    def inset_rect(self) -> QRect | None:
        """The overview inset's place in the viewport, or None while the
        whole grid is in view."""
        gw, gh = self._extent()
        vs = self.viewport().size()
        if not self.cols or gw <= vs.width() and gh <= vs.height():
            return None
        w = min(INSET_SIZE, vs.width() / 4)
        h = w * gh / gw
        if h > vs.height() / 4:
            h = vs.height() / 4
            w = h * gw / gh
        w, h = max(8, round(w)), max(8, round(h))
        return QRect(vs.width() - w - INSET_MARGIN, vs.height() - h - INSET_MARGIN, w, h)

    def center_on_inset(self, pos: QPoint) -> None:
        """Centre the view on the grid's point shown at ``pos`` in the inset."""
        inset = self.inset_rect()
        if inset is None:
            return
        gw, gh = self._extent()
        vs = self.viewport().size()
        fx = (pos.x() - inset.x()) / inset.width()
        fy = (pos.y() - inset.y()) / inset.height()
        self.horizontalScrollBar().setValue(round(fx * gw - vs.width() / 2))
        self.verticalScrollBar().setValue(round(fy * gh - vs.height() / 2))

    # --- painting ----------------------------------------------------------
    def paintEvent(self, event):
        painter = QPainter(self.viewport())
        rows_shown = []
        if self.cols:
            if self.is_map():
                self._paint_map(painter)
            else:
                rows_shown = self._paint_cells(painter)
            self._paint_inset(painter)
        painter.end()
        self.loader.retain_only(rows_shown)
        self._prefer_visible()

    def _map(self) -> QImage:
        averages = self.averages
        n = len(self.values)
        known = averages is not None and len(averages.state) == n
        if self._map_image is None:
            if known:
                colors, state = averages.colors, averages.state
                averages.take_changed()
            else:
                colors, state = np.zeros((n, 3), np.uint8), np.zeros(n, np.int8)
            self._map_rgba = cell_colors(
                self.row_of_cell, self.rows, self.cols, colors, state,
                self.faded, round(255 * FADED_OPACITY))
            self._map_image = to_qimage(self._map_rgba, share=True)
        elif known:
            # only the pixels of the colours that came since the last paint
            changed = averages.take_changed()
            changed = changed[changed < len(self.cell_of_row)]
            set_colors(self._map_rgba, self.cell_of_row, changed,
                       averages.colors, averages.state)
        return self._map_image

    def _groups(self) -> QImage | None:
        if not self._groups_image_valid:
            palette = np.array([c.getRgb()[:3] for c in self.colors], dtype=np.uint8) \
                .reshape(-1, 3)
            rgba = group_colors(self.row_of_cell, self.rows, self.cols,
                                self.groups, palette)
            self._groups_image = to_qimage(rgba) if rgba is not None else None
            self._groups_image_valid = True
        return self._groups_image

    def _paint_map(self, painter: QPainter) -> None:
        block = self._visible_block()
        if block is None:
            return
        r0, r1, c0, c1 = block
        px, py = self._pitch_xy()
        ox, oy = self._origin_xy()
        source = QRectF(c0, r0, c1 - c0 + 1, r1 - r0 + 1)
        target = QRectF(ox + c0 * px, oy + r0 * py, (c1 - c0 + 1) * px, (r1 - r0 + 1) * py)
        painter.drawImage(target, self._map(), source)
        groups = self._groups()
        if groups is not None:
            if px < FRAMES_FROM:
                painter.drawImage(target, groups, source)
            else:
                self._paint_frames(painter, block, max(1, round(px / 8)))
        if 0 <= self.current < len(self.cell_of_row) and self.hasFocus():
            painter.setPen(QPen(self.palette().highlight().color(), 1, Qt.DashLine))
            painter.drawRect(self.cell_rect(int(self.cell_of_row[self.current]))
                             .adjusted(0, 0, -1, -1))

    def _paint_frames(self, painter: QPainter, block, width: int) -> None:
        r0, r1, c0, c1 = block
        rows = self.row_of_cell.reshape(self.rows, self.cols)[r0:r1 + 1, c0:c1 + 1]
        filled = rows >= 0
        group = np.zeros(rows.shape, dtype=np.int64)
        group[filled] = self.groups[rows[filled]]
        for g in np.unique(group[group > 0]).tolist():
            rr, cc = np.nonzero(group == g)
            cells = (rr + r0) * self.cols + cc + c0
            painter.setPen(QPen(self.colors[(g - 1) % len(self.colors)], width))
            painter.setBrush(Qt.NoBrush)
            painter.drawRects([self.cell_rect(int(c)) for c in cells])

    def _paint_cells(self, painter: QPainter) -> list[int]:
        size = round(self.cell_size)
        pad = round(self._margin() / 2)
        averages = self.averages
        rows_shown = []
        for cell in self.visible_cells():
            row = int(self.row_of_cell[cell])
            if row < 0:
                continue
            rows_shown.append(row)
            rect = self.cell_rect(cell)
            inner = QRect(rect.x() + pad, rect.y() + pad, size, size)
            painter.setOpacity(FADED_OPACITY if len(self.faded) and self.faded[row]
                               else 1.0)
            image = self.loader.request(row, self.values[row], self.origin, size,
                                        cover=self.crop)
            if image is None:
                image = self.loader.cached(row, size, cover=self.crop)
            if image is not None:
                self._draw_image(painter, image, inner)
            elif self.loader.error(row) is not None:
                painter.drawPixmap(inner, failed_pixmap(size))
            elif averages is not None and row < len(averages.state) \
                    and averages.state[row] > 0:
                # the image's colour while its thumbnail is on the way
                painter.fillRect(inner, QColor(*averages.colors[row].tolist()))
            else:
                painter.drawPixmap(inner, loading_pixmap(size))
            group = int(self.groups[row]) if row < len(self.groups) else 0
            if self.labels is not None and self.cell_size >= MIN_CELL \
                    and (group or not self.label_selected_only):
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
        return rows_shown

    def _paint_inset(self, painter: QPainter) -> None:
        inset = self.inset_rect()
        if inset is None:
            return
        painter.setOpacity(1.0)
        painter.fillRect(inset.adjusted(-2, -2, 2, 2), QColor(255, 255, 255, 230))
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        painter.drawImage(QRectF(inset), self._map())
        groups = self._groups()
        if groups is not None:
            painter.drawImage(QRectF(inset), groups)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, False)
        painter.setPen(QPen(QColor(120, 120, 120), 1))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(inset.adjusted(-1, -1, 0, 0))
        painter.setPen(QPen(self.palette().highlight().color(), 2))
        painter.drawRect(self.inset_view_rect())

    def inset_view_rect(self) -> QRect:
        """The part of the inset that the view shows."""
        inset = self.inset_rect()
        gw, gh = self._extent()
        vs = self.viewport().size()
        h, v = self.horizontalScrollBar().value(), self.verticalScrollBar().value()
        sx, sy = inset.width() / gw, inset.height() / gh
        x0, y0 = inset.x() + h * sx, inset.y() + v * sy
        x1 = inset.x() + min(gw, h + vs.width()) * sx
        y1 = inset.y() + min(gh, v + vs.height()) * sy
        return QRectF(x0, y0, x1 - x0, y1 - y0).toRect()

    def _prefer_visible(self) -> None:
        # the colours of the images in view are made first
        averages = self.averages
        block = self._visible_block()
        if averages is None or block is None or block == self._preferred \
                or len(averages.state) != len(self.values):
            return
        self._preferred = block
        r0, r1, c0, c1 = block
        if (r1 - r0 + 1) * (c1 - c0 + 1) >= len(self.row_of_cell):
            return      # the whole grid: the shuffled order fills it evenly
        rows = self.row_of_cell.reshape(self.rows, self.cols)[r0:r1 + 1, c0:c1 + 1]
        rows = rows[rows >= 0]
        averages.prefer(rows[averages.state[rows] == 0])

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
        if not self.cols or self.is_map() or not isinstance(key, int) \
                or not 0 <= key < len(self.cell_of_row):
            return
        self.viewport().update(self.cell_rect(int(self.cell_of_row[key])))

    def _on_colors(self):
        if self.is_map() or self.inset_rect() is not None:
            self.viewport().update()

    # --- interaction -------------------------------------------------------
    def tooltip_at(self, pos: QPoint) -> str:
        """The tooltip of the image at ``pos`` (viewport coordinates), or ''."""
        cell = self.cell_at(pos)
        row = int(self.row_of_cell[cell]) if cell >= 0 else -1
        if row < 0 or row >= len(self.values):
            return ""
        title = self.titles[row] if self.titles is not None else None
        group = int(self.groups[row]) if row < len(self.groups) else 0
        error = self.loader.error(row)
        if error is None and self.averages is not None:
            error = self.averages.error(row)  # known from the map's colours
        return cell_tooltip(self.values[row], title, group, error)

    def viewportEvent(self, event):
        if event.type() == QEvent.ToolTip:
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def mousePressEvent(self, event):
        pos = event.pos()
        if event.button() in (Qt.MiddleButton, Qt.RightButton):
            self._pan = (pos, self.horizontalScrollBar().value(),
                         self.verticalScrollBar().value())
            self.viewport().setCursor(Qt.ClosedHandCursor)
            return
        if event.button() != Qt.LeftButton:
            return super().mousePressEvent(event)
        inset = self.inset_rect()
        if inset is not None and inset.adjusted(-2, -2, 2, 2).contains(pos):
            self._inset_drag = True
            self.center_on_inset(pos)
            return
        self._press = pos
        self._band.setGeometry(QRect(self._press, QSize()))
        self._band.show()

    def mouseMoveEvent(self, event):
        pos = event.pos()
        if self._pan is not None:
            start, h, v = self._pan
            self.horizontalScrollBar().setValue(h - (pos.x() - start.x()))
            self.verticalScrollBar().setValue(v - (pos.y() - start.y()))
        elif self._inset_drag:
            self.center_on_inset(pos)
        elif self._press is not None:
            self._band.setGeometry(QRect(self._press, pos).normalized())

    def mouseReleaseEvent(self, event):
        if self._pan is not None and event.button() in (Qt.MiddleButton, Qt.RightButton):
            self.mouseMoveEvent(event)
            self._pan = None
            self.viewport().unsetCursor()
            return
        if self._inset_drag and event.button() == Qt.LeftButton:
            self._inset_drag = False
            return
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

    def contextMenuEvent(self, event):
        event.accept()      # the right button pans

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
        cell = int(self.cell_of_row[self.current]) \
            if 0 <= self.current < len(self.cell_of_row) else 0
        r, c = divmod(cell, self.cols)
        r = min(max(r + dr, 0), self.rows - 1)
        c = min(max(c + dc, 0), self.cols - 1)
        row = int(self.row_of_cell[r * self.cols + c])
        if row >= 0:
            self.current = row
            self.currentChanged.emit(row)
            self.viewport().update()
