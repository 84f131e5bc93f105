"""Zoom of a thumbnail view: Ctrl + mouse wheel (or a touchpad's pinch-scroll)
changes the size; a grid can also be fitted to its window."""

from __future__ import annotations

import math
from collections.abc import Callable

from AnyQt.QtCore import QEvent, QObject, Qt

__all__ = ["CtrlWheelZoom", "fitted_size", "map_fitted_size", "zoomed_size"]

#: Each wheel notch (120 units of angle delta) changes the size by this factor.
FACTOR = 1.15


def zoomed_size(size: int, delta: int, lo: int, hi: int, step: int) -> int:
    """``size`` after a wheel turn of ``delta`` (eighths of a degree), in
    multiples of ``step`` within ``lo..hi``; always moves by at least a step."""
    notches = delta / 120
    if not notches:
        return size
    new = size * FACTOR ** notches
    new = int(round(new / step) * step)
    if new == size:
        new = size + step * (1 if notches > 0 else -1)
    return max(lo, min(hi, new))


def fitted_size(width: int, height: int, rows: int, cols: int, *,
                margin: int, extra_height: int, lo: int, hi: int) -> int:
    """The largest cell size at which ``rows × cols`` cells fit in
    ``width × height``, each cell taking ``size + margin`` across and
    ``size + margin + extra_height`` down; within ``lo..hi`` (at ``lo`` the
    grid may not fit and scrolls)."""
    if rows <= 0 or cols <= 0:
        return lo
    size = min(width // cols - margin, height // rows - margin - extra_height)
    return max(lo, min(hi, size))


def map_fitted_size(width: int, height: int, rows: int, cols: int, *,
                    margin_share: float, lo: float) -> float:
    """The largest cell size, not below ``lo``, at which ``rows × cols``
    cells fit in ``width × height`` when the margin between cells is a share
    of the cell (``size * (1 + margin_share)`` across and down), as on a map
    of cells too small for a fixed margin; rounded down to hundredths."""
    if rows <= 0 or cols <= 0:
        return lo
    size = min(width / cols, height / rows) / (1 + margin_share)
    return max(lo, math.floor(size * 100) / 100)


class CtrlWheelZoom(QObject):
    """Event filter for a view's viewport: Ctrl + wheel calls
    ``set_size(new size)`` instead of scrolling."""

    def __init__(self, target, get_size: Callable[[], int],
                 set_size: Callable[[int], None], lo: int, hi: int, step: int,
                 parent=None):
        super().__init__(parent)
        self._get, self._set = get_size, set_size
        self.lo, self.hi, self.step = lo, hi, step
        target.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Wheel and event.modifiers() & Qt.ControlModifier:
            delta = event.angleDelta().y()
            size = self._get()
            new = zoomed_size(size, delta, self.lo, self.hi, self.step)
            if new != size:
                self._set(new)
            event.accept()
            return True
        return super().eventFilter(obj, event)
