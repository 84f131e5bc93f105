"""The grid layout: every image its own cell, similar images near, for any n."""
import numpy as np
import pytest

from orangecontrib.imageanalytics.image_grid import (
    GridTooSmall,
    LayoutCancelled,
    auto_size,
    knn_preservation,
    layout_grid,
    snap_to_grid,
)


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


# The large-n path: t-SNE on a sample, the other rows placed among their
# nearest sampled neighbours. A lowered threshold keeps these tests small.

def grid_neighbour_agreement(layout, labels):
    """Share of horizontally/vertically adjacent filled cells with the same label."""
    where = np.full(layout.rows * layout.cols, -1)
    where[layout.cell] = labels
    grid = where.reshape(layout.rows, layout.cols)
    same = total = 0
    for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
        both = (a >= 0) & (b >= 0)
        same += np.sum(both & (a == b))
        total += np.sum(both)
    return same / total


def test_sampled_layout_valid_and_neighbourhoods_kept():
    x, labels = clusters(900, k=6)
    layout = layout_grid(x, sample_above=300)
    valid(layout, 900)
    assert grid_neighbour_agreement(layout, labels) > 0.85
    rng = np.random.default_rng(0)
    shuffled = type(layout)(layout.rows, layout.cols, rng.permutation(layout.cell))
    assert grid_neighbour_agreement(shuffled, labels) < 0.3


def test_sampled_layout_runs_tsne_on_the_sample_only(monkeypatch):
    from orangecontrib.imageanalytics import image_grid
    sizes = []
    tsne = image_grid._tsne

    def recording(x, **kwargs):
        sizes.append(len(x))
        return tsne(x, **kwargs)
    monkeypatch.setattr(image_grid, "_tsne", recording)
    x, _ = clusters(700)
    valid(layout_grid(x, sample_above=250), 700)
    assert sizes == [250]
    sizes.clear()
    valid(layout_grid(x[:250], sample_above=250), 250)
    assert sizes == [250]


def test_sampled_layout_deterministic_for_seed():
    x, _ = clusters(800)
    a = layout_grid(x, seed=5, sample_above=300)
    b = layout_grid(x, seed=5, sample_above=300)
    np.testing.assert_array_equal(a.cell, b.cell)
    c = layout_grid(x, seed=6, sample_above=300)
    assert not np.array_equal(a.cell, c.cell)


def test_sampled_layout_duplicates_and_constant_rows():
    valid(layout_grid(np.ones((500, 5)), sample_above=100), 500)
    valid(layout_grid(np.zeros((500, 5)), sample_above=100), 500)
    x, _ = clusters(100)
    valid(layout_grid(np.vstack([x] * 6), sample_above=200), 600)


def test_sampled_projection_makes_no_full_size_copy(monkeypatch):
    import tracemalloc

    from orangecontrib.imageanalytics import image_grid
    x, _ = clusters(8000, d=400)
    x = x.astype(np.float32)
    # the input reaches the reduction as it is ...
    reduce, seen = image_grid._reduce, []

    def recording(data, *args):
        seen.append(np.shares_memory(data, x))
        return reduce(data, *args)
    monkeypatch.setattr(image_grid, "_reduce", recording)
    layout_grid(x[:1000], sample_above=200)
    assert seen == [True]
    # ... which reads it a block at a time
    monkeypatch.setattr(image_grid, "CHUNK_VALUES", 20_000)
    tracemalloc.start()
    try:
        y = reduce(x, 50, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes  # a float64 copy alone would be twice as much
    xn = x.astype(np.float64)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    np.testing.assert_allclose(y, image_grid._pca(xn, 50), atol=1e-6)


def test_sampled_layout_cancel_and_progress():
    x, _ = clusters(600)
    with pytest.raises(LayoutCancelled):
        layout_grid(x, sample_above=200, should_stop=lambda: True)
    seen = []
    layout_grid(x, sample_above=200, progress=seen.append)
    assert seen[-1] == 1.0
    assert all(0 <= f <= 1 for f in seen)
    assert seen == sorted(seen)


def test_sampled_projection_cancelled_while_placing_the_rest(monkeypatch):
    from orangecontrib.imageanalytics import image_grid
    tsne, sample_done = image_grid._tsne, []

    def then_stop(x, **kwargs):
        out = tsne(x, **kwargs)
        sample_done.append(True)
        return out
    monkeypatch.setattr(image_grid, "_tsne", then_stop)
    x, _ = clusters(600)
    with pytest.raises(LayoutCancelled):
        image_grid.project(x, sample_above=200, should_stop=lambda: bool(sample_done))
    assert sample_done


def test_knn_preservation_on_sampled_rows():
    x, _ = clusters(300)
    layout = layout_grid(x)
    full = knn_preservation(x, layout)
    assert knn_preservation(x, layout, rows=300) == full
    part = knn_preservation(x, layout, rows=100)
    assert part == knn_preservation(x, layout, rows=100)
    assert abs(part - full) < 0.1
    assert part != knn_preservation(x, layout, rows=100, seed=1)


def test_approximate_neighbours_with_many_duplicates(monkeypatch):
    from orangecontrib.imageanalytics import image_grid
    monkeypatch.setattr(image_grid, "EXACT_PAIRS", 1000)
    x, _ = clusters(5)
    # 69 pivots among 5 distinct rows: more equal pivots than lists probed
    x = np.vstack([x] * 240)
    y = image_grid._reduce(x, 50, None)
    idx, d2 = image_grid._near(y, y, 11)
    assert np.all(np.isfinite(d2))
    exact_d2 = image_grid._nearest(y, y, 11)[1]
    np.testing.assert_allclose(d2, exact_d2, atol=1e-9)
    coords = image_grid.project(x, sample_above=300)
    assert np.all(np.isfinite(coords))
    valid(layout_grid(x, sample_above=300), 1200)


def test_approximate_neighbours_when_probed_lists_hold_too_few(monkeypatch):
    from orangecontrib.imageanalytics import image_grid
    monkeypatch.setattr(image_grid, "EXACT_PAIRS", 10)
    monkeypatch.setattr(image_grid, "PROBES", 2)
    y = np.random.default_rng(0).normal(size=(400, 5))
    idx, d2 = image_grid._near(y, y, 50)  # 40 lists of ~10, 2 probed
    exact_idx, exact_d2 = image_grid._nearest(y, y, 50)
    np.testing.assert_allclose(d2, exact_d2, atol=1e-9)
