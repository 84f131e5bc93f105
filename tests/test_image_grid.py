"""The grid layout: every image its own cell, similar images near, for any n."""
import numpy as np
import pytest

from orangecontrib.imageanalytics.image_grid import (
    GridTooSmall, LayoutCancelled, auto_size, knn_preservation, layout_grid,
    snap_to_grid)


def clusters(n, k=4, d=32, seed=1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)), labels


def valid(layout, n):
    assert layout.cell.shape == (n,)
    assert len(set(layout.cell.tolist())) == n
    assert np.all((layout.cell >= 0) & (layout.cell < layout.rows * layout.cols))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 50])
def test_small_and_empty(n):
    x, _ = clusters(n) if n else (np.zeros((0, 8)), None)
    layout = layout_grid(x)
    valid(layout, n)
    assert layout.rows * layout.cols >= n


def test_constant_and_duplicate_vectors():
    valid(layout_grid(np.ones((30, 5))), 30)
    valid(layout_grid(np.zeros((30, 5))), 30)
    x, _ = clusters(20)
    valid(layout_grid(np.vstack([x, x, x])), 60)


def test_deterministic_for_seed():
    x, _ = clusters(300)
    a, b = layout_grid(x, seed=3), layout_grid(x, seed=3)
    np.testing.assert_array_equal(a.cell, b.cell)


def test_neighbourhoods_kept():
    x, labels = clusters(400)
    layout = layout_grid(x, 20, 20)
    valid(layout, 400)
    q = knn_preservation(x, layout)
    rng = np.random.default_rng(0)
    random_layout = type(layout)(20, 20, rng.permutation(400))
    assert q > 0.3
    assert knn_preservation(x, random_layout) < 0.1


def test_chosen_size_and_too_small():
    x, _ = clusters(60)
    layout = layout_grid(x, 5, 20)
    assert (layout.rows, layout.cols) == (5, 20)
    valid(layout, 60)
    with pytest.raises(GridTooSmall, match="too few for 60 images"):
        layout_grid(x, 5, 5)


def test_resnap_without_projection():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(500, 2))
    for rows, cols in [(23, 22), (10, 50), (50, 10), (1, 500), (30, 30)]:
        layout = snap_to_grid(coords, rows, cols)
        valid(layout, 500)
        assert (layout.rows, layout.cols) == (rows, cols)


def test_auto_size_fits_aspect():
    assert auto_size(0) == (0, 0)
    assert auto_size(1) == (1, 1)
    r, c = auto_size(100)
    assert r * c >= 100 and r * c - 100 < max(r, c)
    r, c = auto_size(1000, aspect=2.0)
    assert r * c >= 1000 and 1.6 < c / r < 2.5


def test_cancel():
    x, _ = clusters(300)
    with pytest.raises(LayoutCancelled):
        layout_grid(x, should_stop=lambda: True)
    calls = []

    def stop_later():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(LayoutCancelled):
        layout_grid(x, should_stop=stop_later)


def test_progress_reaches_one():
    x, _ = clusters(100)
    seen = []
    layout_grid(x, progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert all(0 <= f <= 1 for f in seen)
