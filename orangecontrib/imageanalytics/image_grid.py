"""Lay vectors out on a grid so that similar ones sit next to each other.

The layout is a t-SNE projection (openTSNE, PCA-initialised, on at most 50
principal components) snapped to the grid cells. An exact assignment of n
points to n cells costs O(n^3) time and an n x n matrix, so the snapping
splits the grid recursively: the longer side of a block of cells is halved,
the points go to the two halves by their coordinate along that side (as many
as each half has cells, in proportion), and blocks of at most ``TILE_CELLS``
cells are solved exactly with scipy's ``linear_sum_assignment``. Changing the
grid size only repeats the snapping (``snap_to_grid``), not the projection.

No Qt here: a script can call ``layout_grid`` directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["GridLayout", "LayoutCancelled", "GridTooSmall", "auto_size",
           "project", "snap_to_grid", "layout_grid", "knn_preservation"]

TILE_CELLS = 64
PCA_DIMS = 50
# t-SNE schedule and accuracy, chosen by benchmarks/bench_grid.py: on 2,000
# SqueezeNet vectors (whole layout, openTSNE's import included) Barnes-Hut at
# theta 1 with 80 + 120 iterations and perplexity 20 took 4.1 s at k-NN
# preservation 0.278, against 20.8 s and 0.281 for FFT gradients with
# 125 + 250 iterations at perplexity 30 (numpy's FFT is slow here, and the
# snapping to cells loses more than the finer settings gain)
EARLY_ITERATIONS = 80
ITERATIONS = 120
PERPLEXITY = 20.0
THETA = 1.0


class LayoutCancelled(Exception):
    """The caller asked the layout to stop."""


class GridTooSmall(ValueError):
    """The chosen grid has fewer cells than there are images."""

    def __init__(self, n: int, rows: int, cols: int):
        super().__init__(f"A {rows}×{cols} grid has {rows * cols} cells, "
                         f"too few for {n} images.")
        self.n, self.rows, self.cols = n, rows, cols


@dataclass(frozen=True)
class GridLayout:
    """Where each input row lies: ``cell[i] = r * cols + c`` (all distinct)."""
    rows: int
    cols: int
    cell: np.ndarray

    def positions(self) -> np.ndarray:
        """(n, 2) array of (row, column) of each input row."""
        return np.column_stack(np.divmod(self.cell, self.cols))


def auto_size(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """Rows and columns for n images: few empty cells, close to ``aspect``.

    ``aspect`` is width / height of the view. Among the grids with at least n
    cells and at most one empty row or column, the one whose shape is nearest
    the aspect wins.
    """
    if n <= 0:
        return 0, 0
    aspect = max(aspect, 1e-3)
    best, best_score = (1, n), math.inf
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        if (rows - 1) * cols >= n:
            continue
        empty = rows * cols - n
        shape_err = abs(math.log((cols / rows) / aspect))
        score = shape_err + 2.0 * empty / n
        if score < best_score:
            best, best_score = (rows, cols), score
        if rows > 4 * math.sqrt(n / aspect) + 2:
            break
    return best


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    x = x - x.mean(axis=0)
    if x.shape[1] <= dims:
        return x
    # Deterministic: SVD of the covariance, with signs fixed.
    cov = x.T @ x
    w, v = np.linalg.eigh(cov)
    v = v[:, ::-1][:, :dims]
    signs = np.sign(v[np.abs(v).argmax(axis=0), range(v.shape[1])])
    signs[signs == 0] = 1
    return x @ (v * signs)


def project(vectors: np.ndarray, *, seed: int = 0,
            progress: Callable[[float], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            n_jobs: int = 1) -> np.ndarray:
    """2-D t-SNE coordinates of the rows of ``vectors`` (cosine geometry).

    One thread by default: on a two-core machine that also paints the GUI
    and decodes thumbnails, two t-SNE threads measured 2-3x slower.
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    x = _pca(x, PCA_DIMS)
    if n < 8 or not np.any(np.ptp(x, axis=0) > 1e-12):
        # Too few points (or all equal) for t-SNE: the first two components,
        # with a tiny deterministic spread so ties break by input order.
        out = np.zeros((n, 2))
        out[:, :min(2, x.shape[1])] = x[:, :2]
        out += np.arange(n)[:, None] * 1e-9
        return out

    from openTSNE import TSNE

    stopped = False

    def callback(iteration, error, embedding):
        nonlocal stopped
        if progress is not None:
            progress(min(iteration / (EARLY_ITERATIONS + ITERATIONS), 1.0))
        if should_stop is not None and should_stop():
            stopped = True
            return True
        return False

    tsne = TSNE(
        n_components=2, perplexity=min(PERPLEXITY, (n - 1) / 3),
        initialization="pca", metric="euclidean", n_jobs=n_jobs,
        random_state=seed, early_exaggeration_iter=EARLY_ITERATIONS, n_iter=ITERATIONS,
        neighbors="exact" if n < 1000 else "annoy",
        negative_gradient_method="bh", theta=THETA,
        callbacks=callback, callbacks_every_iters=10, verbose=False)
    if should_stop is not None and should_stop():
        raise LayoutCancelled
    emb = np.asarray(tsne.fit(x))
    if stopped:
        raise LayoutCancelled
    return emb


def snap_to_grid(coords: np.ndarray, rows: int, cols: int, *,
                 should_stop: Callable[[], bool] | None = None) -> GridLayout:
    """Assign each 2-D point its own cell of a rows × cols grid."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    n = len(coords)
    if rows * cols < n:
        raise GridTooSmall(n, rows, cols)
    cell = np.full(n, -1, dtype=np.int64)
    # Rank-normalise each axis so the points fill the grid evenly.
    stack = [(np.arange(n), 0, 0, rows, cols)]
    while stack:
        if should_stop is not None and should_stop():
            raise LayoutCancelled
        idx, r0, c0, h, w = stack.pop()
        if len(idx) == 0:
            continue
        if h * w <= TILE_CELLS:
            _assign_tile(coords[idx], idx, r0, c0, h, w, cols, cell)
            continue
        axis = 1 if w >= h else 0      # x (column) when the block is wide
        size = w if axis == 1 else h
        first = size // 2
        first_cells = first * (h if axis == 1 else w)
        k = round(len(idx) * first_cells / (h * w))
        k = min(k, first_cells)
        k = max(k, len(idx) - (h * w - first_cells))
        key = coords[idx, 0 if axis == 1 else 1]
        order = np.lexsort((idx, key))
        a, b = idx[order[:k]], idx[order[k:]]
        if axis == 1:
            stack.append((a, r0, c0, h, first))
            stack.append((b, r0, c0 + first, h, w - first))
        else:
            stack.append((a, r0, c0, first, w))
            stack.append((b, r0 + first, c0, h - first, w))
    return GridLayout(rows, cols, cell)


def _assign_tile(pts, idx, r0, c0, h, w, cols, cell):
    # Map the points into the tile's box by rank so both fill it alike.
    n = len(pts)
    scaled = np.empty_like(pts)
    for d, extent in ((0, w), (1, h)):
        ranks = np.argsort(np.argsort(pts[:, d], kind="stable"), kind="stable")
        scaled[:, d] = (ranks + 0.5) / n * extent
    cy, cx = np.divmod(np.arange(h * w), w)
    centres = np.column_stack((cx + 0.5, cy + 0.5))
    cost = ((scaled[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    rows_i, cols_i = linear_sum_assignment(cost)
    cell[idx[rows_i]] = (r0 + cy[cols_i]) * cols + c0 + cx[cols_i]


def layout_grid(vectors, rows: int | None = None, cols: int | None = None, *,
                seed: int = 0, aspect: float = 1.0,
                progress: Callable[[float], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> GridLayout:
    """Project ``vectors`` with t-SNE and snap them to a grid.

    Parameters
    ----------
    vectors : (n, d) array; rows with NaN must be removed by the caller
    rows, cols : grid size; automatic (``auto_size``) when either is None
    seed : the same seed gives the same layout
    aspect : width / height of the view, for the automatic size
    progress : called with a fraction in [0, 1]
    should_stop : polled; when it returns True, ``LayoutCancelled`` is raised

    Raises
    ------
    GridTooSmall : rows × cols < n
    LayoutCancelled : should_stop returned True
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    n = len(x)
    if rows is None or cols is None:
        rows, cols = auto_size(n, aspect)
    if rows * cols < n:
        raise GridTooSmall(n, rows, cols)
    coords = project(x, seed=seed, should_stop=should_stop,
                     progress=None if progress is None
                     else (lambda f: progress(0.95 * f)))
    layout = snap_to_grid(coords, rows, cols, should_stop=should_stop)
    if progress is not None:
        progress(1.0)
    return layout


def knn_preservation(vectors, layout: GridLayout, k: int = 10) -> float:
    """Mean share of each image's k nearest (cosine) also k nearest on the grid.

    Grid distance is between cell centres; ties on the grid are broken by
    row index. A random layout scores about k / n.
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n <= 1:
        return 1.0
    k = min(k, n - 1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    pos = layout.positions().astype(np.float64)
    total = 0.0
    for start in range(0, n, 1000):
        sl = slice(start, min(start + 1000, n))
        sim = x[sl] @ x.T
        gd = ((pos[sl, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
        rng = np.arange(sl.start, sl.stop)
        sim[rng - sl.start, rng] = -np.inf
        gd[rng - sl.start, rng] = np.inf
        nn_v = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        # Grid distances are integers with many ties; a tiny index term
        # makes the choice deterministic.
        gd = gd + np.arange(n)[None, :] * 1e-9
        nn_g = np.argpartition(gd, k - 1, axis=1)[:, :k]
        for a, b in zip(nn_v, nn_g):
            total += len(np.intersect1d(a, b, assume_unique=True)) / k
    return total / n
