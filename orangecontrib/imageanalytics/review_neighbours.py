"""Pairs of vectors that are close, without comparing every pair one by one.

Review Images needs, among up to hundreds of thousands of photos, the few
pairs whose embedding vectors (cosine) or perceptual hashes (Hamming
distance) are close. :func:`close_pairs` finds them with blocked matrix
products: a block of rows against the rows after it, so memory stays bounded
and BLAS does the work.

Long vectors (SqueezeNet's 1,000 numbers) are first projected on their main
directions; a pair can only reach the threshold if its projected cosine plus
the product of the parts left out does (Cauchy–Schwarz), so the projection
prunes without missing a pair, and the survivors are checked on the full
vectors. :func:`hash_pairs` turns 64-bit hashes into ±1 vectors, whose dot
product is 64 minus twice the Hamming distance.
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
RANK = 48
# rows of the sample the main directions are computed from
_SAMPLE = 8192


class Cancelled(Exception):
    """Raised when ``should_stop()`` turns true during a search."""


def _normalised(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _projection(x: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Projected rows and the norms of what the projection leaves out."""
    n = len(x)
    # an evenly spaced sample: deterministic, and enough for the directions
    sample = x[np.linspace(0, n - 1, min(n, _SAMPLE)).astype(int)]
    _, _, vt = np.linalg.svd(sample.astype(np.float64), full_matrices=False)
    basis = vt[:rank].T.astype(np.float32)
    projected = x @ basis
    left = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", projected, projected)))
    # float32 rounding: never let the bound be too tight
    return projected, left.astype(np.float32) + 1e-4


def close_pairs(vectors: np.ndarray, threshold: float, *,
                should_stop: Callable[[], bool] | None = None,
                block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose cosine similarity is at least ``threshold``.

    Parameters
    ----------
    vectors : array of shape (n, d)
        Rows with a zero norm match nothing.
    threshold : float
        Cosine similarity, at most 1.
    should_stop : callable, optional
        Polled after every block; :class:`Cancelled` when it returns true.
    block : int
        Rows per block.

    Returns
    -------
    (i, j, similarity) : three arrays of the same length
        Sorted by ``i``, then ``j``.
    """
    x = _normalised(vectors)
    n, d = x.shape if x.ndim == 2 else (0, 0)
    empty = (np.empty(0, int), np.empty(0, int), np.empty(0, np.float32))
    if n < 2:
        return empty
    if d > PROJECT_ABOVE and n > block:
        search, left = _projection(x, RANK)
    else:
        search, left = x, None
    found_i, found_j, found_s = [], [], []
    for start in range(0, n - 1, block):
        if should_stop is not None and should_stop():
            raise Cancelled
        stop = min(start + block, n)
        sims = search[start:stop] @ search[start:].T
        if left is not None:
            sims += np.outer(left[start:stop], left[start:])
        # only j > i: the upper triangle of the diagonal block
        rows, cols = np.nonzero(sims >= threshold)
        keep = cols > rows
        rows, cols = rows[keep] + start, cols[keep] + start
        if left is not None and len(rows):
            exact = np.einsum("ij,ij->i", x[rows], x[cols])
            keep = exact >= threshold
            rows, cols, values = rows[keep], cols[keep], exact[keep]
        else:
            values = sims[rows - start, cols - start]
        found_i.append(rows)
        found_j.append(cols)
        found_s.append(values.astype(np.float32))
    if not found_i:
        return empty
    i, j, s = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def hash_pairs(hashes: np.ndarray, max_distance: int, *,
               should_stop: Callable[[], bool] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of 64-bit hashes at most ``max_distance`` bits apart.

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
    i, j, sims = close_pairs(signs, threshold, should_stop=should_stop)
    distance = np.rint((1.0 - sims) * 32.0).astype(int)
    return i, j, distance
