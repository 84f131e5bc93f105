"""Review Images' core: duplicate groups, keepers, quality flags, bad input."""
import os
import sys

import numpy as np
import pytest
from Orange.data import Domain, StringVariable, Table
from PIL import Image
from review_fixtures import (
    blurred,
    brighter,
    cropped,
    decoded,
    encoded,
    exif_rotated,
    exposed,
    jpeg,
    next_frame,
    scene,
    write,
)

from orangecontrib.imageanalytics import review as review_module
from orangecontrib.imageanalytics.review import (
    BLURRY,
    DARK,
    KEEPER,
    NEAR_DUPLICATE,
    OVEREXPOSED,
    SAME_FILE,
    SAME_PICTURE,
    Review,
    ReviewCancelled,
    Strictness,
    describe_issue,
    embedding_vectors,
    review_images,
    run,
)
from orangecontrib.imageanalytics.review_neighbours import close_pairs, hash_pairs

SAME = Strictness.SAME_PICTURE
NEAR = Strictness.NEAR_DUPLICATE


def _review(paths, **kwargs):
    kwargs.setdefault("strictness", SAME)
    return review_images([str(p) for p in paths], **kwargs)


def _groups(review):
    return sorted(sorted(group) for group in review.groups)


class FakeState:
    def __init__(self, stop_after=None):
        self.progress, self.status, self.polls = [], [], 0
        self.stop_after = stop_after

    def set_progress_value(self, value):
        self.progress.append(value)

    def set_status(self, text):
        self.status.append(text)

    def is_interruption_requested(self):
        self.polls += 1
        return self.stop_after is not None and self.polls > self.stop_after


@pytest.fixture
def others(tmp_path):
    """Three unrelated photos that must stay out of every group."""
    return [write(tmp_path, f"other{i}.jpg", jpeg(scene(100 + i))) for i in range(3)]


# ------------------------------------------------------------- duplicates


def test_exact_copy_is_same_file_and_the_older_is_kept(tmp_path, others):
    data = jpeg(scene(1))
    copy = write(tmp_path, "copy.jpg", data)
    original = write(tmp_path, "original.jpg", data, age=3600)
    review = _review([copy, *others, original])
    assert review.groups == [[4, 0]]
    assert review.kinds == [[KEEPER, SAME_FILE]]
    assert not review.skipped


def test_same_file_only_at_the_narrowest_strictness(tmp_path):
    im = scene(2)
    data = jpeg(im)
    paths = [write(tmp_path, "a.jpg", data, age=10), write(tmp_path, "b.jpg", data),
             write(tmp_path, "c.jpg", jpeg(im, 30))]
    assert _groups(_review(paths, strictness=Strictness.SAME_FILE)) == [[0, 1]]
    assert _groups(_review(paths, strictness=SAME)) == [[0, 1, 2]]


@pytest.mark.parametrize("name, make, keeper_is_original", [
    ("low-quality.jpg", lambda data: jpeg(decoded(data), 30), True),
    ("half.jpg", lambda data: jpeg(decoded(data).resize((160, 120))), True),
    ("converted.png", lambda data: encoded(decoded(data), "PNG"), True),
    ("converted.tif", lambda data: encoded(decoded(data), "TIFF"), True),
    ("converted.webp", lambda data: encoded(decoded(data), "WEBP", quality=70), True),
    ("cropped.jpg", lambda data: jpeg(cropped(decoded(data))), True),
    ("brighter.jpg", lambda data: jpeg(brighter(decoded(data))), True),
    ("rotated.jpg", lambda data: exif_rotated(decoded(data)), True),
    ("blurred.jpg", lambda data: jpeg(blurred(decoded(data))), True),
])
def test_same_picture_is_grouped_with_the_original_kept(
        tmp_path, others, name, make, keeper_is_original):
    data = jpeg(scene(3))
    copy = write(tmp_path, name, make(data))
    original = write(tmp_path, "original.jpg", data, age=3600)
    review = _review([*others, copy, original])
    assert review.groups == [[4, 3]]
    assert review.kinds == [[KEEPER, SAME_PICTURE]]


def test_a_converted_copy_loses_to_its_original_even_when_older(tmp_path):
    """The PNG holds exactly the JPEG's pixels: its bytes add nothing."""
    data = jpeg(scene(4))
    png = write(tmp_path, "old-conversion.png", encoded(decoded(data), "PNG"), age=7200)
    original = write(tmp_path, "original.jpg", data)
    review = _review([png, original])
    assert review.groups == [[1, 0]]


def test_a_lossless_original_beats_its_jpeg_copy(tmp_path):
    im = scene(5)
    png = write(tmp_path, "original.png", encoded(im, "PNG"))
    copy = write(tmp_path, "copy.jpg", jpeg(im, 95), age=7200)  # even if older
    review = _review([copy, png])
    assert review.groups == [[1, 0]]


def test_next_frame_is_a_near_duplicate_only_at_near_strictness(tmp_path, others):
    im = scene(6)
    first = write(tmp_path, "frame1.jpg", jpeg(im))
    second = write(tmp_path, "frame2.jpg", jpeg(next_frame(im, 0.10, 0.06)))
    paths = [first, *others, second]
    rng = np.random.default_rng(0)
    vectors = rng.random((5, 30)).astype(np.float32)
    vectors[4] = vectors[0]  # the embedding sees the same scene
    assert _review(paths, vectors=vectors, strictness=SAME).groups == []
    review = _review(paths, vectors=vectors, strictness=NEAR)
    assert review.groups == [[0, 4]]
    assert review.kinds == [[KEEPER, NEAR_DUPLICATE]]


def test_near_duplicates_without_vectors_embed_with_squeezenet(tmp_path, others):
    im = scene(7)
    paths = [write(tmp_path, "a.jpg", jpeg(im)),
             write(tmp_path, "b.jpg", jpeg(next_frame(im))), *others]
    review = _review(paths, strictness=NEAR)
    assert review.groups == [[0, 1]]


def test_cancel_while_embedding(tmp_path):
    paths = [write(tmp_path, f"{i}.jpg", jpeg(scene(50 + i))) for i in range(30)]
    calls = []

    def stop_later():
        calls.append(1)
        return len(calls) > 5
    with pytest.raises(ReviewCancelled):
        _review(paths, strictness=NEAR, should_stop=stop_later)


def test_cancel_while_candidate_pairs_are_confirmed(tmp_path, monkeypatch):
    """Confirming a crowd's pairs on the pictures can take a minute at
    50,000 photos: Cancel works there too."""
    paths = [write(tmp_path, f"{i}.jpg", jpeg(scene(70 + i))) for i in range(12)]
    vectors = np.ones((12, 10), dtype=np.float32)
    vectors[:, 0] = np.arange(12) * 1e-3
    searched = []
    pairs = review_module.vector_pairs

    def searching(*args, **kwargs):
        found = pairs(*args, **kwargs)
        searched.append(len(found[0]))     # the search is over: confirming
        return found
    monkeypatch.setattr(review_module, "vector_pairs", searching)
    with pytest.raises(ReviewCancelled):
        review_images(paths, vectors=vectors, strictness=NEAR,
                      should_stop=lambda: bool(searched))
    assert searched[0] > 0


def test_similar_but_different_photos_stay_apart(tmp_path):
    """The same colours and look, another scene; even vectors that say they
    are the same do not group them without the pixels agreeing."""
    paths = [write(tmp_path, f"{i}.jpg", jpeg(scene(20 + i, palette_seed=1)))
             for i in range(6)]
    vectors = np.ones((6, 10), dtype=np.float32)
    vectors[:, 0] = np.arange(6) * 1e-3
    assert _review(paths, vectors=vectors, strictness=NEAR).groups == []


def test_neighbouring_views_of_one_scene_stay_apart(tmp_path):
    """Two shots of the same place: the left and right halves of a scene."""
    im = scene(8, size=(640, 240))
    left = write(tmp_path, "left.jpg", jpeg(im.crop((0, 0, 320, 240))))
    right = write(tmp_path, "right.jpg", jpeg(im.crop((320, 0, 640, 240))))
    assert _review([left, right], strictness=NEAR,
                   vectors=np.ones((2, 4), np.float32)).groups == []


def test_groups_chain_and_the_best_is_kept(tmp_path, others):
    im = scene(9)
    data = jpeg(im)
    paths = [write(tmp_path, "small.jpg", jpeg(decoded(data).resize((160, 120)))),
             *others,
             write(tmp_path, "original.jpg", data, age=100),
             write(tmp_path, "copy.jpg", data),
             write(tmp_path, "poor.jpg", jpeg(decoded(data), 25))]
    review = _review(paths)
    assert review.groups == [[4, 0, 5, 6]]
    assert review.kinds == [[KEEPER, SAME_PICTURE, SAME_FILE, SAME_PICTURE]]
    assert review.duplicate_rows() == [0, 5, 6]
    assert review.unique_rows() == [1, 2, 3, 4]


# ------------------------------------------------------------- flags


def test_quality_flags_with_scores(tmp_path):
    im = scene(10)
    paths = [write(tmp_path, "fine.jpg", jpeg(im)),
             write(tmp_path, "blurry.jpg", jpeg(blurred(scene(11)))),
             write(tmp_path, "dark.jpg", jpeg(exposed(scene(12), 1 / 64))),
             write(tmp_path, "burnt.jpg", jpeg(exposed(scene(13), 20)))]
    review = _review(paths)
    assert review.issues == {1: [BLURRY], 2: [DARK], 3: [OVEREXPOSED]}
    assert review.issue_scores[1][BLURRY] < 0.42
    assert review.issue_scores[2][DARK] < 0.18
    assert review.issue_scores[3][OVEREXPOSED] >= 0.15
    assert review.unique_rows(without_issues=True) == [0]
    assert "sharpness" in describe_issue(BLURRY, review.issue_scores[1][BLURRY])


def test_sharpness_does_not_depend_on_the_number_of_pixels(tmp_path):
    """A sharp photo shot with four times the pixels is as sharp."""
    big = scene(14, size=(1280, 960))
    paths = [write(tmp_path, "big.jpg", jpeg(big)),
             write(tmp_path, "small.jpg", jpeg(big.resize((320, 240), Image.Resampling.LANCZOS)))]
    review = _review(paths, strictness=Strictness.SAME_FILE)
    assert review.issues == {}


# ------------------------------------------------------------- bad input


def test_unreadable_images_are_skipped_with_their_reason(tmp_path):
    good = write(tmp_path, "good.jpg", jpeg(scene(15)))
    copy = write(tmp_path, "copy.jpg", jpeg(scene(15)))
    empty = write(tmp_path, "empty.jpg", b"")
    text = write(tmp_path, "text.jpg", b"not an image\n" * 20)
    truncated = write(tmp_path, "cut.jpg", jpeg(scene(16))[:400])
    paths = [good, empty, str(tmp_path / "missing.jpg"), text, truncated, None, copy]
    review = review_images(paths, strictness=SAME)
    reasons = {skip.row: skip.reason for skip in review.skipped}
    assert set(reasons) == {1, 2, 3, 5} | ({4} if 4 in reasons else set())
    assert reasons[1] == "empty file"
    assert reasons[2] == "file not found"
    assert reasons[5] == "missing value"
    assert review.groups == [[0, 6]]
    assert 1 not in review.unique_rows() and 0 in review.unique_rows()


def test_nothing_is_written_moved_or_deleted(tmp_path):
    data = jpeg(scene(17))
    paths = [write(tmp_path, "a.jpg", data), write(tmp_path, "b.jpg", data),
             write(tmp_path, "c.jpg", jpeg(blurred(scene(18))))]
    before = {p: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for p in paths}
    listing = sorted(os.listdir(tmp_path))
    _review(paths)
    assert sorted(os.listdir(tmp_path)) == listing
    assert {p: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for p in paths} == before


def test_wrong_vectors_are_refused(tmp_path):
    path = write(tmp_path, "a.jpg", jpeg(scene(19)))
    with pytest.raises(ValueError, match="one row per image"):
        review_images([path], vectors=np.zeros((2, 3)))


def test_empty_list():
    review = review_images([], strictness=NEAR, vectors=np.zeros((0, 3)))
    assert review.groups == [] and review.n_rows == 0


# ------------------------------------------------------------- tables


def _table(folder, names, origin=True):
    var = StringVariable("image")
    var.attributes["type"] = "image"
    if origin:
        var.attributes["origin"] = str(folder)
    domain = Domain([], metas=[var])
    values = names if origin else [os.path.join(str(folder), n) for n in names]
    return Table.from_list(domain, [[v] for v in values])


def test_table_values_are_resolved_against_the_origin(tmp_path):
    data = jpeg(scene(21))
    write(tmp_path, "a.jpg", data, age=10)
    write(tmp_path, "b.jpg", data)
    write(tmp_path, "c.jpg", jpeg(scene(22)))
    review = review_images(_table(tmp_path, ["b.jpg", "c.jpg", "a.jpg"]),
                           strictness=SAME)
    assert review.groups == [[2, 0]]


def test_embedding_vectors_are_the_hidden_numeric_columns(tmp_path):
    from Orange.data import ContinuousVariable
    table = _table(tmp_path, ["a.jpg", "b.jpg"])
    hidden = [ContinuousVariable(f"n{i}") for i in range(3)]
    for var in hidden:
        var.attributes["hidden"] = True
    shown = ContinuousVariable("size")
    domain = Domain([shown, *hidden], metas=table.domain.metas)
    x = np.array([[5, 1, 2, 3], [6, 4, 5, 6]], dtype=float)
    embedded = Table.from_numpy(domain, x, metas=table.metas)
    np.testing.assert_equal(embedding_vectors(embedded), x[:, 1:])
    assert embedding_vectors(table) is None


# ------------------------------------------------------------- cancel, run


def test_cancel_stops_with_its_own_exception(tmp_path):
    paths = [write(tmp_path, f"{i}.jpg", jpeg(scene(30 + i))) for i in range(40)]
    with pytest.raises(ReviewCancelled):
        review_images(paths, strictness=SAME, should_stop=lambda: True)
    calls = []

    def stop_later():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(ReviewCancelled):
        review_images(paths, strictness=SAME, should_stop=stop_later)


def test_run_reports_progress_and_uses_table_vectors(tmp_path, monkeypatch):
    im = scene(40)
    write(tmp_path, "a.jpg", jpeg(im))
    write(tmp_path, "b.jpg", jpeg(next_frame(im, 0.10, 0.06)))
    table = _table(tmp_path, ["a.jpg", "b.jpg"])
    monkeypatch.setattr(review_module, "embedding_vectors",
                        lambda data: np.ones((2, 5), np.float32))

    def no_embedding(*args, **kwargs):
        raise AssertionError("the table's vectors must be used")
    monkeypatch.setattr(review_module, "_embed", no_embedding)
    state = FakeState()
    review = run(table, None, NEAR, state)
    assert review.groups == [[0, 1]]
    assert state.progress[-1] == 100
    with pytest.raises(ReviewCancelled):
        run(table, None, NEAR, FakeState(stop_after=0))


def test_results_are_deterministic(tmp_path):
    data = jpeg(scene(41))
    paths = [write(tmp_path, "a.jpg", data), write(tmp_path, "b.jpg", data),
             write(tmp_path, "c.jpg", jpeg(decoded(data), 40)),
             write(tmp_path, "d.jpg", jpeg(blurred(scene(42))))]
    first = _review(paths, workers=1)
    second = _review(paths, workers=3)
    assert (first.groups, first.kinds, first.issues) == \
        (second.groups, second.kinds, second.issues)


# ------------------------------------------------------------- changes


def test_changing_the_keeper_and_taking_photos_out(tmp_path):
    data = jpeg(scene(43))
    paths = [write(tmp_path, "original.jpg", data, age=100),
             write(tmp_path, "copy.jpg", data),
             write(tmp_path, "poor.jpg", jpeg(decoded(data), 25))]
    review = _review(paths)
    assert review.groups == [[0, 1, 2]]
    changed = review.with_changes(keepers=[2])
    assert changed.groups == [[2, 0, 1]]
    assert changed.kinds == [[KEEPER, SAME_PICTURE, SAME_PICTURE]]
    assert review.groups == [[0, 1, 2]]  # the review itself is unchanged
    assert review.with_changes(removed=[1]).groups == [[0, 2]]
    assert review.with_changes(removed=[1, 2]).groups == []
    assert isinstance(changed, Review)


# ------------------------------------------------------------- neighbours


@pytest.mark.parametrize("n, d, block", [(120, 20, 50), (2, 5, 1024), (300, 200, 1024)])
def test_close_pairs_equal_brute_force(n, d, block):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[10 % n] = x[1] * 1.5 + 0.01  # a close pair
    x[0] = 0  # a zero row matches nothing
    normed = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = normed @ normed.T
    for threshold in (0.2, 0.95):
        i, j, s = close_pairs(x, threshold, block=block)
        expected = {(a, b) for a in range(n) for b in range(a + 1, n)
                    if sims[a, b] >= threshold and a != 0}
        assert set(zip(i.tolist(), j.tolist())) == expected
        np.testing.assert_allclose(s, sims[i, j], atol=1e-4)


def test_close_pairs_of_long_vectors_through_the_projection():
    """Many long vectors are searched in a projection: every pair returned
    is right, and pairs much alike are all found."""
    rng = np.random.default_rng(3)
    n, d = 3000, 400
    mixing = rng.normal(size=(30, d))
    x = (rng.normal(size=(n, 30)) @ mixing + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    planted = [(k, k + 1500) for k in range(0, 1500, 50)]
    for a, b in planted:
        x[b] = x[a] + 0.1 * rng.normal(size=d)
    i, j, s = close_pairs(x, 0.6, centre=True, block=256)
    centred = x - x.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    exact = np.einsum("ij,ij->i", centred[i], centred[j])
    np.testing.assert_allclose(s, exact, atol=1e-4)
    assert np.all(exact >= 0.6) and np.all(i < j)
    found = set(zip(i.tolist(), j.tolist()))
    assert set(planted) <= found
    sims = np.triu(centred @ centred.T, 1)
    alike = set(zip(*(a.tolist() for a in np.nonzero(sims >= 0.7))))
    assert alike <= found


def test_close_pairs_through_the_index(monkeypatch):
    """Beyond INDEX_ABOVE rows, pairs come from the cells of an index: the
    same right answers, the pairs much alike all found."""
    from orangecontrib.imageanalytics import review_neighbours
    monkeypatch.setattr(review_neighbours, "INDEX_ABOVE", 1000)
    rng = np.random.default_rng(4)
    n, d = 2500, 300
    x = (rng.normal(size=(n, 20)) @ rng.normal(size=(20, d))
         + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
    planted = [(k, k + 1200) for k in range(0, 1200, 40)]
    for a, b in planted:
        x[b] = x[a] + 0.05 * rng.normal(size=d)
    i, j, s = close_pairs(x, 0.8, block=256)
    normed = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(s, np.einsum("ij,ij->i", normed[i], normed[j]), atol=1e-4)
    assert np.all(s >= 0.8) and np.all(i < j)
    found = list(zip(i.tolist(), j.tolist()))
    assert len(found) == len(set(found))
    assert set(planted) <= set(found)
    with pytest.raises(review_module.Cancelled):
        close_pairs(x, 0.8, block=256, should_stop=lambda: True)


def _components(n, i, j):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@pytest.mark.parametrize("n_bursts, size, d, index", [(4, 60, 20, False),
                                                      (5, 300, 300, False),
                                                      (6, 400, 300, True)])
def test_close_pairs_per_row_keeps_crowds_connected(monkeypatch, n_bursts, size, d, index):
    """Crowds of alike rows (bursts) with per_row: a few pairs per row, the
    strongest of each, and the same groups as with every pair — exact search,
    projected search and the index alike."""
    from orangecontrib.imageanalytics import review_neighbours
    if index:
        monkeypatch.setattr(review_neighbours, "INDEX_ABOVE", 1000)
    rng = np.random.default_rng(d + size)
    centres = rng.normal(size=(n_bursts, d))
    x = np.vstack([c + 0.15 * rng.normal(size=(size, d)) for c in centres]
                  + [rng.normal(size=(size, d))]).astype(np.float32)  # and loners
    n, k = len(x), 3
    i_all, j_all, s_all = close_pairs(x, 0.8, block=256)
    i, j, s = close_pairs(x, 0.8, per_row=k, block=256)
    assert len(i_all) > n_bursts * size * 20      # crowds: many pairs
    assert len(i) <= n * k                        # bounded per row
    every = dict(zip(zip(i_all.tolist(), j_all.tolist()), s_all.tolist()))
    assert set(zip(i.tolist(), j.tolist())) <= set(every)
    partners = {}
    for (a, b), sim in every.items():
        partners.setdefault(a, []).append((sim, b))
        partners.setdefault(b, []).append((sim, a))
    kept = set(zip(i.tolist(), j.tolist()))
    # no row with a partner loses all of them
    assert set(partners) == set(i.tolist()) | set(j.tolist())
    if d <= 96:
        # exact search: each row keeps its k strongest partners
        for row in (0, size // 2, n_bursts * size - 1):
            best = sorted(partners[row], reverse=True)[:k]
            for sim, other in best:
                if sim - best[-1][0] > 1e-3:
                    assert (min(row, other), max(row, other)) in kept
    np.testing.assert_array_equal(_components(n, i, j) == _components(n, i, j)[:, None],
                                  _components(n, i_all, j_all)
                                  == _components(n, i_all, j_all)[:, None])
    # deterministic
    again = close_pairs(x, 0.8, per_row=k, block=256)
    for a, b in zip((i, j, s), again):
        np.testing.assert_array_equal(a, b)


def test_strongest_pairs_of_either_row():
    from orangecontrib.imageanalytics.review_neighbours import _strongest
    i = np.array([0, 0, 0, 1, 1, 2])
    j = np.array([1, 2, 3, 2, 3, 3])
    s = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94], dtype=np.float32)
    # each row's best: 0 and 1 -> (0, 1), 2 -> (0, 2), 3 -> (0, 3)
    assert _strongest(i, j, s, 1).tolist() == [True, True, True, False, False, False]
    assert _strongest(i, j, s, 3).all()


def test_close_pairs_can_be_cancelled():
    x = np.random.default_rng(0).random((50, 4))
    with pytest.raises(review_module.Cancelled):
        close_pairs(x, 0.5, should_stop=lambda: True)


def test_hash_pairs_equal_brute_force():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64)
    hashes[5] = hashes[7] ^ np.uint64(0b1011)  # three bits apart
    i, j, dist = hash_pairs(hashes, 20)
    brute = {(a, b): bin(int(hashes[a]) ^ int(hashes[b])).count("1")
             for a in range(200) for b in range(a + 1, 200)}
    expected = {pair for pair, d in brute.items() if d <= 20}
    assert set(zip(i.tolist(), j.tolist())) == expected
    assert all(brute[(a, b)] == d for a, b, d in zip(i, j, dist))
    assert (5, 7) in set(zip(i.tolist(), j.tolist()))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
