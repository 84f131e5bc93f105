"""Image Grid's work off the GUI thread: which rows to lay out, the grid's
size for them, the projection and the snapping. No Qt here; ``state`` is
the widget's task state (progress, status, interruption)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orangecontrib.imageanalytics import image_grid
from orangecontrib.imageanalytics.widgets.utils import grid_rows

__all__ = ["Prepared", "grid_size", "run_layout", "run_prepare"]


def run_layout(vectors, coords, rows, cols, seed, state):
    """Worker: t-SNE (unless ``coords`` are given), then snap to the grid."""
    def progress(f):
        state.set_progress_value(100 * f)
    stop = state.is_interruption_requested
    if coords is None:
        coords = image_grid.project(vectors, seed=seed, progress=progress, should_stop=stop)
    layout = image_grid.snap_to_grid(coords, rows, cols, should_stop=stop)
    return coords, layout


def grid_size(n: int, rows: int, cols: int, aspect: float, auto: bool) -> tuple[int, int]:
    """The grid for ``n`` images: the given one, unless sizing is ``auto`` or
    it has too few cells."""
    if auto or rows * cols < n:
        return image_grid.auto_size(n, aspect)
    return rows, cols


@dataclass
class Prepared:
    """What the worker gives for new data: the rows, the grid's size and
    the layout (None when no row can be laid out)."""
    rows: grid_rows.GridRows
    size: tuple[int, int] = (0, 0)
    coords: np.ndarray | None = None
    layout: image_grid.GridLayout | None = None


def run_prepare(data, var, stored_groups, size, seed, state):
    """Worker for new data: which rows to lay out (a pass over all the
    features), the grid's size for them (``size(n)``), then the layout."""
    state.set_status("Reading the vectors")
    rows = grid_rows.grid_rows(data, var, stored_groups)
    if rows.data is None:
        return Prepared(rows)
    shape = size(len(rows.data))
    coords, layout = run_layout(rows.data.X, None, *shape, seed, state)
    return Prepared(rows, shape, coords, layout)
