"""Pairs of vectors that are close, without comparing every pair one by one.

Review Images needs, among up to hundreds of thousands of photos, the few
pairs whose embedding vectors (cosine) or perceptual hashes (Hamming
distance) are close. :func:`close_pairs` finds them with blocked matrix
products: a block of rows against the rows after it, so memory stays bounded
and BLAS does the work.

Long vectors (SqueezeNet's 1,000 numbers) are first projected on their
main directions (from an evenly spaced sample) and searched there with a
margin below the threshold; the pairs found are checked on the full vectors.
The search is then about ten times cheaper, and a pair can be missed only
when most of what makes it alike lies outside the main directions. Beyond
20,000 such vectors, rows are compared only with those of their nearest
cells (an inverted-file index on k-means cells), not with every other row. Review
Images uses these pairs only as candidates, each confirmed on the pictures.
With ``centre=True`` the vectors' mean is subtracted first: what all photos
share says nothing about a pair. With ``per_row=k`` each row keeps only its
k most similar partners (a pair stays when it is among the k best of either
row): in a collection of bursts or of one subject photographed many times,
thousands of rows are all alike, and grouping them needs a connected graph,
not every one of their pairs; the work then stays bounded per row.
:func:`hash_pairs` turns 64-bit hashes into ±1 vectors, whose dot product is
64 minus twice the Hamming distance.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Cancelled", "close_pairs", "hash_pairs"]

#: Rows compared at once against the rest (a block's products: BLOCK × n).
BLOCK = 1024
#: Vectors longer than this are projected before the blocked products.
PROJECT_ABOVE = 96
#: How many main directions the projection keeps.
RANK = 64
#: How far below the threshold the projected search looks.
MARGIN = 0.06
#: More rows than this (of long vectors) are searched through an index.
INDEX_ABOVE = 20_000
#: How many nearest cells of the index each row is compared in.
PROBES = 4
# candidate pairs checked on the full vectors at once (bounds the memory)
_CHECK = 65536
_KMEANS_ROUNDS = 6
# rows of the sample the main directions are computed from
_SAMPLE = 4096


class Cancelled(Exception):
    """Raised when ``should_stop()`` turns true during a search."""


def _normalised(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _projection(x: np.ndarray, rank: int) -> np.ndarray:
    """Rows projected on the main directions of a sample, normalised.

    The directions come from a randomized eigensolver (a few products with
    the sample's d×d Gram matrix, from a fixed seed): as good as a full
    decomposition for a search that is checked afterwards, and a fraction of
    its time.
    """
    n, d = x.shape
    # an evenly spaced sample: deterministic, and enough for the directions
    sample = x[np.linspace(0, n - 1, min(n, _SAMPLE)).astype(int)]
    gram = sample.T @ sample
    guess = np.random.default_rng(0).standard_normal((d, min(d, rank + 16)))
    basis = gram @ guess.astype(np.float32)
    for _ in range(2):  # power iterations sharpen the leading directions
        basis, _ = np.linalg.qr(basis)
        basis = gram @ basis
    basis, _ = np.linalg.qr(basis)
    values, vectors = np.linalg.eigh(basis.T @ gram @ basis)
    top = np.argsort(values)[::-1][:rank]
    return _normalised(x @ (basis @ vectors[:, top]).astype(np.float32))


def _centred(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    # rows at the mean (all rows of a collection of two alike) keep their own
    at_mean = np.linalg.norm(centred, axis=1) <= 1e-6 * np.linalg.norm(x, axis=1)
    centred[at_mean] = x[at_mean]
    return centred


def close_pairs(vectors: np.ndarray, threshold: float, *, centre: bool = False,
                per_row: int | None = None,
                should_stop: Callable[[], bool] | None = None,
                block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` whose cosine similarity is at least ``threshold``.

    Exact for vectors of up to :data:`PROJECT_ABOVE` numbers (or at most
    ``block`` rows); longer ones are searched in a projection (see the
    module's description), and more than :data:`INDEX_ABOVE` of them through
    an index of cells; every pair returned is checked exactly.

    Parameters
    ----------
    vectors : array of shape (n, d)
        Rows with a zero norm match nothing.
    threshold : float
        Cosine similarity, at most 1.
    centre : bool
        Subtract the vectors' mean first.
    per_row : int, optional
        Keep only the pairs among the ``per_row`` most similar of either of
        their rows (all pairs when None).
    should_stop : callable, optional
        Polled after every block; :class:`Cancelled` when it returns true.
    block : int
        Rows per block.

    Returns
    -------
    (i, j, similarity) : three arrays of the same length
        Sorted by ``i``, then ``j``.
    """
    x = np.asarray(vectors, dtype=np.float32)
    empty = (np.empty(0, int), np.empty(0, int), np.empty(0, np.float32))
    if x.ndim != 2 or len(x) < 2:
        return empty
    if centre:
        x = _centred(x)
    x = _normalised(x)
    n, d = x.shape
    projected = d > PROJECT_ABOVE and n > block
    search = _projection(x, RANK) if projected else x
    bound = threshold - MARGIN if projected else threshold
    # the search keeps a few more than per_row: the projection may misorder
    # near ties, which the check on the full vectors puts right
    wide = None if per_row is None else 2 * per_row if projected else per_row
    if projected and n > INDEX_ABOVE:
        candidates = _indexed(search, bound, wide, should_stop)
    else:
        candidates = _blocked(search, bound, block, wide, should_stop)
    if projected and wide is not None:
        # a row's few best candidates, before the costly check: in a crowd
        # the cells give each row several times as many
        candidates = list(candidates)
        if candidates:
            rows, cols, values = (np.concatenate(c) for c in zip(*candidates))
            keep = _strongest(rows, cols, values, wide)
            candidates = [(rows[keep], cols[keep], values[keep])]
    found_i, found_j, found_s = [], [], []
    for rows, cols, values in candidates:
        if projected:
            for k in range(0, len(rows), _CHECK):
                if should_stop is not None and should_stop():
                    raise Cancelled
                r, c = rows[k:k + _CHECK], cols[k:k + _CHECK]
                exact = np.einsum("ij,ij->i", x[r], x[c])
                keep = exact >= threshold
                found_i.append(r[keep])
                found_j.append(c[keep])
                found_s.append(exact[keep].astype(np.float32))
        else:
            found_i.append(rows)
            found_j.append(cols)
            found_s.append(values.astype(np.float32))
    if not found_i:
        return empty
    i, j, s = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    if per_row is not None:
        keep = _strongest(i, j, s, per_row)
        i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def _best_of_each(rows: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``values`` (cosines, in [-1, 1]) of
    each row (ties: the one listed first; deterministic)."""
    # one sort on one key: by row, then the largest first (1 - value is in
    # [0, 2], so 4 apart keeps rows apart)
    order = np.argsort(rows * 4.0 + (1.0 - values.astype(np.float64)), kind="stable")
    counts = np.bincount(rows)
    # each entry's rank in its row: rows start at the counts before them
    rank = np.arange(len(order)) - (np.cumsum(counts) - counts)[rows[order]]
    return order[rank < k]


def _strongest(i: np.ndarray, j: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    """A mask of the pairs among the ``k`` most similar of ``i`` or of ``j``."""
    keep = np.zeros(len(i), dtype=bool)
    keep[_best_of_each(np.concatenate([i, j]), np.concatenate([s, s]), k) % len(i)] = True
    return keep


def _top(sims: np.ndarray, bound: float, k: int | None):
    """(row, column, value) of the entries at or above ``bound``, at most
    the ``k`` largest of each row when ``k`` is given. Rows with more than
    ``k`` such entries are partially sorted; in most collections they are
    few, in a crowd of alike photos most."""
    above = sims >= bound
    if k is not None and sims.shape[1] > k:
        crowded = np.count_nonzero(above, axis=1) > k
    else:
        crowded = np.zeros(len(sims), dtype=bool)
    if crowded.any():
        calm = np.flatnonzero(~crowded)
        # flatnonzero and divmod: half the time of nonzero on a 2-d mask
        r, cols = np.divmod(np.flatnonzero(above[calm]), sims.shape[1])
        rows = calm[r]
        many = np.flatnonzero(crowded)
        width = sims.shape[1]
        hits = np.flatnonzero(above[many])
        if len(hits) < len(many) * width // 4:
            # few entries of long rows above the bound: sort only those
            r, c = np.divmod(hits, width)
            first = _best_of_each(r, sims[many[r], c], k)
            r, c = r[first], c[first]
        else:
            crowd = sims[many]
            top = np.argpartition(-crowd, k - 1, axis=1)[:, :k]
            r, which = np.nonzero(np.take_along_axis(crowd, top, axis=1) >= bound)
            c = top[r, which]
        rows = np.concatenate([rows, many[r]])
        cols = np.concatenate([cols, c])
    else:
        rows, cols = np.divmod(np.flatnonzero(above), sims.shape[1])
    return rows, cols, sims[rows, cols]


def _blocked(search: np.ndarray, bound: float, block: int, per_row: int | None,
             should_stop):
    """Pairs ``i < j`` at or above ``bound``: each block of rows against the
    rows after it (at most ``per_row`` of them for each row)."""
    n = len(search)
    for start in range(0, n - 1, block):
        if should_stop is not None and should_stop():
            raise Cancelled
        stop = min(start + block, n)
        sims = search[start:stop] @ search[start:].T
        # only j > i: the upper triangle
        sims[:, :stop - start][np.tri(stop - start, dtype=bool)] = -np.inf
        rows, cols, values = _top(sims, bound, per_row)
        yield rows + start, cols + start, values


def _cells(search: np.ndarray, n_cells: int) -> np.ndarray:
    """Cell centres (unit rows) from a few rounds of spherical k-means,
    started from evenly spaced rows: deterministic."""
    centres = search[np.linspace(0, len(search) - 1, n_cells).astype(int)].copy()
    for _ in range(_KMEANS_ROUNDS):
        nearest = np.concatenate([
            np.argmax(search[k:k + _CHECK] @ centres.T, axis=1)
            for k in range(0, len(search), _CHECK)])
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, search)
        filled = np.linalg.norm(sums, axis=1) > 0
        centres[filled] = _normalised(sums[filled])
    return centres


def _indexed(search: np.ndarray, bound: float, per_row: int | None, should_stop):
    """Pairs at or above ``bound`` through an inverted-file index: every row
    lies in the cell of its nearest centre and is compared with the rows of
    its :data:`PROBES` nearest cells (at most ``per_row`` of each cell). Pairs
    this alike share a cell or lie in neighbouring ones; the work grows as
    n·√n, not n²."""
    n = len(search)
    n_cells = max(1, int(np.sqrt(n)))
    centres = _cells(search, n_cells)
    probes = min(PROBES, n_cells)
    near = np.concatenate([
        np.argsort(-(search[k:k + _CHECK] @ centres.T), axis=1)[:, :probes]
        for k in range(0, n, _CHECK)])
    home = near[:, 0]
    members = [np.flatnonzero(home == c) for c in range(n_cells)]
    visitors = [[] for _ in range(n_cells)]
    for p in range(probes):
        for c, rows in enumerate(np.split(np.argsort(near[:, p], kind="stable"),
                                          np.cumsum(np.bincount(near[:, p],
                                                                minlength=n_cells))[:-1])):
            visitors[c].append(rows)
    keys, values = [], []
    # a row meets itself in its own cell: one more than per_row is searched
    k = None if per_row is None else per_row + 1
    for c in range(n_cells):
        if should_stop is not None and should_stop():
            raise Cancelled
        inside = members[c]
        if not len(inside):
            continue
        queries = np.unique(np.concatenate(visitors[c]))
        q, m, sims = _top(search[queries] @ search[inside].T, bound, k)
        rows, cols = queries[q], inside[m]
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
        keys.append(np.minimum(rows, cols).astype(np.int64) * n + np.maximum(rows, cols))
        values.append(sims[keep])
    if not keys:
        return
    # a pair met from both sides, or in two probed cells, counts once
    keys, first = np.unique(np.concatenate(keys), return_index=True)
    values = np.concatenate(values)[first]
    for start in range(0, len(keys), _CHECK):
        chunk = keys[start:start + _CHECK]
        yield chunk // n, chunk % n, values[start:start + _CHECK]


def hash_pairs(hashes: np.ndarray, max_distance: int, *, per_row: int | None = None,
               should_stop: Callable[[], bool] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of 64-bit hashes at most ``max_distance`` bits apart
    (with ``per_row``, those among the nearest ``per_row`` of either hash).

    Returns
    -------
    (i, j, distance) : three arrays of the same length, sorted by ``i``, ``j``.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if len(hashes) < 2:
        return np.empty(0, int), np.empty(0, int), np.empty(0, int)
    bits = np.unpackbits(hashes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)
    signs = bits.astype(np.float32) * 2.0 - 1.0
    # dot = 64 - 2 * distance; unit vectors so that close_pairs can be reused
    threshold = (64.0 - 2.0 * max_distance - 0.5) / 64.0
    i, j, sims = close_pairs(signs, threshold, per_row=per_row, should_stop=should_stop)
    distance = np.rint((1.0 - sims) * 32.0).astype(int)
    return i, j, distance
