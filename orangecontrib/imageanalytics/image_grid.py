"""Lay vectors out on a grid so that similar ones sit next to each other.

The layout is a t-SNE projection (openTSNE, PCA-initialised, on at most 50
principal components) snapped to the grid cells. An exact assignment of n
points to n cells costs O(n^3) time and an n x n matrix, so the snapping
splits the grid recursively: the longer side of a block of cells is halved,
the points go to the two halves by their coordinate along that side (as many
as each half has cells, in proportion), and blocks of at most ``TILE_CELLS``
cells are solved exactly with scipy's ``linear_sum_assignment``. Changing the
grid size only repeats the snapping (``snap_to_grid``), not the projection.

Above ``SAMPLE_ABOVE`` rows a t-SNE of every row costs too much (50,000
photos: 115 s, 1.1 GB, and only 0.18 k-NN preservation with the short
schedule above; see benchmarks/README.md), so ``project`` takes another
road, chosen by ``benchmarks/bench_grid.py`` on real SqueezeNet vectors:

1. the rows are normalised and reduced to 50 principal components a block
   at a time, without a full-size copy of the input;
2. t-SNE as above maps a fixed random sample of ``SAMPLE_SIZE`` rows;
3. every other row starts on its nearest sampled row (placing rows at a
   weighted mean of several sampled neighbours scored lower: the mean falls
   between the clusters), and the map is stretched to the room n rows need;
4. a t-SNE of all rows, started from there, with FFT-interpolated
   gradients and no early exaggeration, refines the map for
   ``REFINE_ITERATIONS``; its neighbours come from an inverted-list search
   (``_near``: each row compared only with the rows of the lists of its
   nearest pivots), not from a search over all pairs.

No Qt here: a script can call ``layout_grid`` directly.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
CALLBACK_EVERY = 10
#: Above this many rows, t-SNE runs on a sample (see the module docstring);
#: up to it the layout is the same as before the sample path existed.
SAMPLE_ABOVE = 20_000
SAMPLE_SIZE = 10_000
# The refinement, chosen by benchmarks/bench_grid.py on 50,000 SqueezeNet
# vectors (k-NN preservation on 2,000 rows): 30 neighbours (perplexity 10;
# 15 scored 0.243 against 0.254); 75 iterations scored as 150 did (0.252,
# 0.254) in half the time; the wider the start (the sample's map stretched
# by REFINE_SPREAD * sqrt(n / sample)), the better and the dearer (FFT cost
# grows with the map's area): unstretched gave 0.227 in 150 iterations;
# FFT cells of 2 units (ints_in_interval) cost a third of 1 unit's at
# about the same score, 4 units fell to 0.189.
REFINE_NEIGHBOURS = 30
REFINE_ITERATIONS = 75
REFINE_SPREAD = 2.2
REFINE_INTS_IN_INTERVAL = 2
#: approximate neighbour search (``_near``): pivots per square root of the
#: points, and the lists searched for a query
LISTS_PER_ROOT = 2.0
PROBES = 8
EXACT_PAIRS = 50_000_000
#: float64 values in one block of work (32 MB)
CHUNK_VALUES = 4_000_000


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


def project(vectors, *, seed: int = 0,
            progress: Callable[[float], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            n_jobs: int = 1, sample_above: int | None = None) -> np.ndarray:
    """2-D t-SNE coordinates of the rows of ``vectors`` (cosine geometry).

    One thread by default: on a two-core machine that also paints the GUI
    and decodes thumbnails, two t-SNE threads measured 2-3x slower.

    Above ``sample_above`` rows (default ``SAMPLE_ABOVE``), t-SNE maps a
    fixed random sample of ``min(SAMPLE_SIZE, sample_above)`` rows, every
    other row starts beside its nearest sampled row, and a short t-SNE of all
    rows refines the map (see the module's docstring).
    """
    x = np.asarray(vectors)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    n = len(x)
    if sample_above is None:
        sample_above = SAMPLE_ABOVE
    if n > max(sample_above, 1):
        return _project_sampled(x, seed=seed, progress=progress,
                                should_stop=should_stop, n_jobs=n_jobs,
                                sample_size=min(SAMPLE_SIZE, sample_above))
    x = np.asarray(x, dtype=np.float64)
    if n == 0:
        return np.zeros((0, 2))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    x = _pca(x, PCA_DIMS)
    return _tsne(x, seed=seed, progress=progress, should_stop=should_stop,
                 n_jobs=n_jobs)


def _tsne(x: np.ndarray, *, seed: int,
          progress: Callable[[float], None] | None,
          should_stop: Callable[[], bool] | None, n_jobs: int) -> np.ndarray:
    n = len(x)
    if n < 8 or not np.any(np.ptp(x, axis=0) > 1e-12):
        # Too few points (or all equal) for t-SNE: the first two components,
        # with a tiny deterministic spread so ties break by input order.
        out = np.zeros((n, 2))
        out[:, :min(2, x.shape[1])] = x[:, :2]
        out += np.arange(n)[:, None] * 1e-9
        return out

    from openTSNE import TSNE

    stopped = False
    done = 0

    def callback(iteration, error, embedding):
        # openTSNE counts the iterations of each phase from zero
        nonlocal stopped, done
        done += CALLBACK_EVERY
        if progress is not None:
            progress(min(done / (EARLY_ITERATIONS + ITERATIONS), 1.0))
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
        callbacks=callback, callbacks_every_iters=CALLBACK_EVERY, verbose=False)
    if should_stop is not None and should_stop():
        raise LayoutCancelled
    emb = np.asarray(tsne.fit(x))
    if stopped:
        raise LayoutCancelled
    return emb


def _check(should_stop):
    if should_stop is not None and should_stop():
        raise LayoutCancelled


def _reduce(x: np.ndarray, dims: int, should_stop) -> np.ndarray:
    """Unit-length rows projected on their ``dims`` principal axes.

    The same projection as ``_pca`` of the normalised rows, computed a block
    of rows at a time so that no full-size copy of the input is made (at
    100,000 x 1,000 each float64 copy is 800 MB).
    """
    n, d = x.shape
    step = max(1, CHUNK_VALUES // max(d, 1))

    def unit(block):
        block = np.asarray(block, dtype=np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        return np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)

    total = np.zeros(d)
    gram = np.zeros((d, d)) if d > dims else None
    for start in range(0, n, step):
        _check(should_stop)
        block = unit(x[start:start + step])
        total += block.sum(axis=0)
        if gram is not None:
            gram += block.T @ block
    mean = total / n
    if gram is None:
        basis = None
    else:
        cov = gram - n * np.outer(mean, mean)
        w, v = np.linalg.eigh(cov)
        v = v[:, ::-1][:, :dims]
        signs = np.sign(v[np.abs(v).argmax(axis=0), range(v.shape[1])])
        signs[signs == 0] = 1
        basis = v * signs
    out = np.empty((n, min(d, dims)))
    for start in range(0, n, step):
        _check(should_stop)
        block = unit(x[start:start + step]) - mean
        out[start:start + step] = block if basis is None else block @ basis
    return out


def _nearest(queries: np.ndarray, points: np.ndarray, k: int, should_stop=None):
    """Indices and squared distances of the k nearest ``points`` of each query,
    nearest first (exact)."""
    k = min(k, len(points))
    sq_points = (points ** 2).sum(axis=1)
    step = max(1, CHUNK_VALUES // max(len(points), 1))
    idx = np.empty((len(queries), k), dtype=np.int64)
    dist = np.empty((len(queries), k))
    for start in range(0, len(queries), step):
        _check(should_stop)
        q = queries[start:start + step]
        d2 = q @ points.T
        d2 *= -2
        d2 += sq_points
        if k == 1:
            part = d2.argmin(axis=1)[:, None]
        elif k < len(points):
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(k), d2.shape).copy()
        part_d = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(part_d, axis=1, kind="stable")
        idx[start:start + step] = np.take_along_axis(part, order, axis=1)
        dist[start:start + step] = np.maximum(
            np.take_along_axis(part_d, order, axis=1)
            + (q ** 2).sum(axis=1)[:, None], 0)
    return idx, dist


def _near(queries: np.ndarray, points: np.ndarray, k: int, should_stop=None):
    """Like ``_nearest``, but approximate when the exact search is costly.

    Exact search of 100,000 queries among 100,000 points selects from 1e10
    distances. Instead, pivots (points spread over the input order) split
    the points into lists by their nearest pivot, and each query is compared
    with the points of the lists of its ``PROBES`` nearest pivots only.
    """
    m = len(points)
    n_lists = int(np.sqrt(m) * LISTS_PER_ROOT)
    if len(queries) * m <= EXACT_PAIRS or n_lists <= PROBES:
        return _nearest(queries, points, k, should_stop)
    k = min(k, m)
    pivots = points[np.linspace(0, m - 1, n_lists).astype(int)]
    point_list = _nearest(points, pivots, 1, should_stop)[0][:, 0]
    by_list = np.argsort(point_list, kind="stable")
    list_start = np.searchsorted(point_list[by_list], np.arange(n_lists + 1))
    probes = _nearest(queries, pivots, PROBES, should_stop)[0].ravel()
    by_probe = np.argsort(probes, kind="stable")
    probe_start = np.searchsorted(probes[by_probe], np.arange(n_lists + 1))
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    best_d = np.full((len(queries), k), np.inf)
    for lst in range(n_lists):
        which = by_probe[probe_start[lst]:probe_start[lst + 1]] // PROBES
        members = by_list[list_start[lst]:list_start[lst + 1]]
        if len(which) == 0 or len(members) == 0:
            continue
        if lst % 64 == 0:
            _check(should_stop)
        i, d = _nearest(queries[which], points[members], k)
        all_i = np.hstack((best_i[which], members[i]))
        all_d = np.hstack((best_d[which], d))
        keep = np.argpartition(all_d, k - 1, axis=1)[:, :k]
        best_i[which] = np.take_along_axis(all_i, keep, axis=1)
        best_d[which] = np.take_along_axis(all_d, keep, axis=1)
    # Rows whose probed lists held fewer than k points (lists of equal
    # pivots can be empty) are searched exactly.
    short = np.flatnonzero(~np.isfinite(best_d[:, -1]))
    if len(short):
        best_i[short], best_d[short] = _nearest(queries[short], points, k, should_stop)
    order = np.argsort(best_d, axis=1, kind="stable")
    return (np.take_along_axis(best_i, order, axis=1),
            np.take_along_axis(best_d, order, axis=1))


def _project_sampled(x, *, seed, progress, should_stop, n_jobs, sample_size):
    """t-SNE of a sample, the rest put by it, then all of them refined."""
    def report(f):
        if progress is not None:
            progress(f)

    n = len(x)
    _check(should_stop)
    y = _reduce(x, PCA_DIMS, should_stop)
    if not np.any(np.ptp(y, axis=0) > 1e-12):
        return _tsne(y, seed=seed, progress=None, should_stop=None, n_jobs=1)
    report(0.05)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(sample_size, n), replace=False))
    sample_coords = _tsne(y[sample], seed=seed, n_jobs=n_jobs, should_stop=should_stop,
                          progress=lambda f: report(0.05 + 0.4 * f))
    # Each other row starts on its nearest sampled row, with a little
    # deterministic spread; the sample's map grows so that the n rows get
    # as much room each as a t-SNE of all of them would give.
    scale = REFINE_SPREAD * np.sqrt(n / len(sample))
    coords = np.empty((n, 2))
    coords[sample] = sample_coords * scale
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    nearest = _near(y[rest], y[sample], 1, should_stop)[0][:, 0]
    coords[rest] = coords[sample][nearest] \
        + rng.normal(size=(len(rest), 2)) * 1e-2 * sample_coords.std()
    report(0.47)
    neighbours, distances = _neighbour_graph(y, min(REFINE_NEIGHBOURS, n - 1), should_stop)
    report(0.55)
    coords = _refine(coords, neighbours, distances, seed=seed, n_jobs=n_jobs,
                     should_stop=should_stop, progress=lambda f: report(0.55 + 0.45 * f))
    report(1.0)
    return coords


def _neighbour_graph(y, k, should_stop):
    """Each row's k nearest other rows (approximate) and their distances."""
    n = len(y)
    idx, d2 = _near(y, y, k + 1, should_stop)
    own = idx == np.arange(n)[:, None]
    # a row not found among its own neighbours (ties with duplicates) drops
    # its farthest one instead
    own[~own.any(axis=1), -1] = True
    own &= np.cumsum(own, axis=1) == 1
    return idx[~own].reshape(n, k), np.sqrt(d2[~own].reshape(n, k))


def _refine(coords, neighbours, distances, *, seed, n_jobs, should_stop, progress):
    """t-SNE of all rows (FFT gradients) from ``coords``, without exaggeration."""
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    _check(should_stop)
    affinities = PerplexityBasedNN(
        knn_index=PrecomputedNeighbors(neighbours, distances),
        perplexity=neighbours.shape[1] / 3, n_jobs=n_jobs)
    stopped = False
    done = 0

    def callback(iteration, error, embedding):
        nonlocal stopped, done
        done += CALLBACK_EVERY
        progress(min(done / REFINE_ITERATIONS, 1.0))
        if should_stop is not None and should_stop():
            stopped = True
            return True
        return False

    embedding = TSNEEmbedding(
        coords, affinities, negative_gradient_method="fft",
        ints_in_interval=REFINE_INTS_IN_INTERVAL, n_jobs=n_jobs, random_state=seed,
        callbacks=callback, callbacks_every_iters=CALLBACK_EVERY, verbose=False)
    _check(should_stop)
    out = np.asarray(embedding.optimize(
        REFINE_ITERATIONS, exaggeration=1, momentum=0.8, learning_rate="auto"))
    if stopped:
        raise LayoutCancelled
    return out


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
                should_stop: Callable[[], bool] | None = None,
                n_jobs: int = 1, sample_above: int | None = None) -> GridLayout:
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
    x = np.asarray(vectors)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    n = len(x)
    if rows is None or cols is None:
        rows, cols = auto_size(n, aspect)
    if rows * cols < n:
        raise GridTooSmall(n, rows, cols)
    coords = project(x, seed=seed, should_stop=should_stop,
                     n_jobs=n_jobs, sample_above=sample_above, progress=None if progress is None
                     else (lambda f: progress(0.95 * f)))
    layout = snap_to_grid(coords, rows, cols, should_stop=should_stop)
    if progress is not None:
        progress(1.0)
    return layout


def knn_preservation(vectors, layout: GridLayout, k: int = 10,
                     rows: int | None = None, seed: int = 0) -> float:
    """Mean share of each image's k nearest (cosine) also k nearest on the grid.

    Grid distance is between cell centres; ties on the grid are broken by
    row index. A random layout scores about k / n. With ``rows``, the mean is
    over that many rows drawn at random (fixed by ``seed``), their neighbours
    still sought among all images: at 100,000 images the full measure costs
    n^2 products.
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n <= 1:
        return 1.0
    k = min(k, n - 1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    pos = layout.positions().astype(np.float64)
    if rows is None or rows >= n:
        chosen = np.arange(n)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
    step = max(1, min(1000, CHUNK_VALUES // n))
    tie_break = np.arange(n)[None, :] * 1e-9
    total = 0.0
    for start in range(0, len(chosen), step):
        rng = chosen[start:start + step]
        sim = x[rng] @ x.T
        gd = ((pos[rng, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
        sim[np.arange(len(rng)), rng] = -np.inf
        gd[np.arange(len(rng)), rng] = np.inf
        nn_v = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        # Grid distances are integers with many ties; a tiny index term
        # makes the choice deterministic.
        gd += tie_break
        nn_g = np.argpartition(gd, k - 1, axis=1)[:, :k]
        for a, b in zip(nn_v, nn_g):
            total += len(np.intersect1d(a, b, assume_unique=True)) / k
    return total / len(chosen)
