"""The overview of an image grid as pictures: one pixel per cell.

When cells are too small for a thumbnail, Image Grid shows each image as its
average colour. Drawing 100,000 small rectangles one by one would stall the
GUI thread, so the colours are put into one image with a pixel per cell
(made with numpy in milliseconds) that the painter scales to the view in a
single call. Marked groups get a second image of the same shape, so that a
group stays visible at every zoom.

No Qt widgets here; only QImage, which the GUI thread paints.
"""
from __future__ import annotations

import numpy as np
from AnyQt.QtGui import QImage

__all__ = ["FAILED", "UNKNOWN", "cell_colors", "group_colors", "set_colors", "to_qimage"]

#: The colour of an image whose average is not known yet (light grey).
UNKNOWN = (226, 226, 226)
#: The colour of an image that cannot be shown (a muted red).
FAILED = (196, 120, 120)


def cell_colors(row_of_cell: np.ndarray, rows: int, cols: int,
                colors: np.ndarray, state: np.ndarray, faded: np.ndarray,
                faded_alpha: int) -> np.ndarray:
    """RGBA pixels (``rows × cols × 4``, uint8) of the cells' colours.

    Parameters
    ----------
    row_of_cell : the data row in each cell, -1 for an empty cell
    colors : ``n × 3`` uint8, each data row's average colour
    state : per data row, 1 when its colour is known, -1 when it failed,
        0 while it is not known
    faded : per data row, whether it is drawn faded (not in a Data Subset)
    faded_alpha : the opacity (0..255) of a faded cell

    Empty cells are transparent.
    """
    out = np.zeros((rows * cols, 4), dtype=np.uint8)
    filled = row_of_cell >= 0
    data_rows = row_of_cell[filled]
    rgb = np.empty((len(data_rows), 3), dtype=np.uint8)
    rgb[:] = UNKNOWN
    row_state = state[data_rows]
    known = row_state > 0
    rgb[known] = colors[data_rows[known]]
    rgb[row_state < 0] = FAILED
    alpha = np.full(len(data_rows), 255, dtype=np.uint8)
    if len(faded):
        alpha[faded[data_rows]] = faded_alpha
    out[filled, :3] = rgb
    out[filled, 3] = alpha
    return out.reshape(rows, cols, 4)


def set_colors(rgba: np.ndarray, cell_of_row: np.ndarray, rows: np.ndarray,
               colors: np.ndarray, state: np.ndarray) -> None:
    """Update the pixels of ``rows`` in ``rgba`` (made by :func:`cell_colors`)
    to their colours now known (or failed); alpha stays."""
    if not len(rows):
        return
    flat = rgba.reshape(-1, 4)
    cells = cell_of_row[rows]
    row_state = state[rows]
    rgb = np.empty((len(rows), 3), dtype=np.uint8)
    rgb[:] = UNKNOWN
    rgb[row_state > 0] = colors[rows[row_state > 0]]
    rgb[row_state < 0] = FAILED
    flat[cells, :3] = rgb


def group_colors(row_of_cell: np.ndarray, rows: int, cols: int,
                 groups: np.ndarray, palette: np.ndarray) -> np.ndarray | None:
    """RGBA pixels of the marked cells in their group's colour (others
    transparent), or None when no cell is marked.

    ``palette`` is ``k × 3`` uint8, group g's colour at ``(g - 1) % k``.
    """
    if not len(groups) or not groups.any() or not len(palette):
        return None
    out = np.zeros((rows * cols, 4), dtype=np.uint8)
    filled = np.flatnonzero(row_of_cell >= 0)
    group = groups[row_of_cell[filled]]
    marked = group > 0
    cells = filled[marked]
    out[cells, :3] = palette[(group[marked] - 1) % len(palette)]
    out[cells, 3] = 255
    return out.reshape(rows, cols, 4)


def to_qimage(rgba: np.ndarray, *, share: bool = False) -> QImage:
    """A QImage of ``rgba`` (``h × w × 4``, uint8, C-contiguous): a copy, or
    with ``share`` the same pixels, so that changes to the array show at the
    next paint (the caller keeps the array alive as long as the image)."""
    h, w = rgba.shape[:2]
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format_RGBA8888)
    return image if share else image.copy()
