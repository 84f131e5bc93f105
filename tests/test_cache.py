import multiprocessing
import os
import sqlite3
import threading

import numpy as np
import pytest

from orangecontrib.imageanalytics import sqlite_store
from orangecontrib.imageanalytics.embedders import cache as cache_module
from orangecontrib.imageanalytics.embedders.cache import (
    CACHE_DIR_ENV,
    EmbeddingCache,
    cache_key,
    clear_cache,
    default_cache,
    default_cache_path,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

DIM = 100
VECTOR_BYTES = DIM * 4


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(str(tmp_path / "sub" / "cache.sqlite")) as cache:
        yield cache


def test_roundtrip(cache):
    items = {f"k{i}": vector(i) for i in range(10)}
    cache.put_many(items)
    got = cache.get_many(["k3", "k7", "missing", "k3"])
    assert set(got) == {"k3", "k7"}
    np.testing.assert_array_equal(got["k3"], items["k3"])
    assert got["k3"].dtype == np.float32
    assert len(cache) == 10 and "k1" in cache and "x" not in cache
    assert cache.total_bytes == 10 * VECTOR_BYTES
    # vectors are writable copies, independent of the database
    got["k3"][0] = 42
    assert cache.get_many(["k3"])["k3"][0] == items["k3"][0]


def test_replace_and_survives_reopen(tmp_path):
    path = str(tmp_path / "c.sqlite")
    with EmbeddingCache(path) as cache:
        cache.put_many({"a": vector(1)})
        cache.put_many({"a": vector(2)[:50]})
        assert cache.total_bytes == 50 * 4
    with EmbeddingCache(path) as cache:
        np.testing.assert_array_equal(cache.get_many(["a"])["a"],
                                      vector(2)[:50])


def test_no_pickle_in_storage(cache):
    cache.put_many({"a": vector(1)})
    conn = sqlite3.connect(cache.path)
    dim, blob = conn.execute("SELECT dim, vector FROM embeddings").fetchone()
    conn.close()
    assert dim == DIM and blob == vector(1).astype("<f4").tobytes()


def test_lru_eviction(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "TOUCH_INTERVAL", 0.0)
    clock = iter(range(1000, 100000))
    monkeypatch.setattr(cache_module, "_now", lambda: next(clock))
    with EmbeddingCache(str(tmp_path / "c.sqlite"),
                        max_bytes=10 * VECTOR_BYTES) as cache:
        cache.put_many({f"k{i}": vector(i) for i in range(5)})
        cache.put_many({f"k{i}": vector(i) for i in range(5, 10)})
        assert len(cache) == 10
        # k0 used last, so it must survive; k1, k2 ... are the oldest
        assert "k0" in cache.get_many(["k0"])
        cache.put_many({"new": vector(99)})
        assert cache.total_bytes <= 10 * VECTOR_BYTES
        left = set(cache.get_many([f"k{i}" for i in range(10)] + ["new"]))
        assert "k0" in left and "new" in left
        assert "k1" not in left and "k2" not in left
        assert len(cache) == 9  # evicted down to 90 % of the bound


def test_clear(cache):
    cache.put_many({f"k{i}": vector(i) for i in range(5)})
    cache.clear()
    assert len(cache) == 0 and cache.total_bytes == 0
    assert cache.get_many(["k1"]) == {}
    cache.put_many({"k1": vector(1)})
    assert len(cache) == 1


def test_one_variable_moves_every_cache(tmp_path, monkeypatch):
    """Embeddings, converted models, thumbnails and downloads all follow
    $ORANGE_IMAGEANALYTICS_CACHE_DIR (a small home folder, a portable
    setup); the thumbnail and HTTP caches' own variables still win."""
    from orangecontrib.imageanalytics import image_sources, thumbnails
    from orangecontrib.imageanalytics.embedders import engines

    monkeypatch.delenv(thumbnails.THUMBNAIL_CACHE_ENV, raising=False)
    monkeypatch.delenv(image_sources.HTTP_CACHE_ENV, raising=False)
    monkeypatch.setattr(image_sources, "_cache_dir_override", None)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "c"))
    assert engines.model_cache_dir() == tmp_path / "c" / "models"
    assert thumbnails.default_cache_folder() == str(tmp_path / "c" / "thumbnails")
    assert image_sources.http_cache_dir() == str(tmp_path / "c" / "http")
    monkeypatch.setenv(thumbnails.THUMBNAIL_CACHE_ENV, str(tmp_path / "t"))
    assert thumbnails.default_cache_folder() == str(tmp_path / "t")


def test_default_cache_and_clear_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "dflt"))
    assert default_cache_path() == str(tmp_path / "dflt" / "embeddings.sqlite")
    cache = default_cache()
    assert cache is default_cache()
    cache.put_many({"a": vector(1)})
    assert os.path.exists(cache.path)
    clear_cache()
    assert len(cache) == 0


def test_cache_key_depends_on_everything():
    squeezenet, vgg = get_embedder("squeezenet"), get_embedder("vgg16")
    keys = {cache_key("abc", squeezenet, exact=False),
            cache_key("abc", squeezenet, exact=True),
            cache_key("abd", squeezenet, exact=False),
            cache_key("abc", vgg, exact=False),
            cache_key("abc", squeezenet, exact=False, remote=True),
            cache_key("abc", squeezenet, exact=True, remote=True)}
    assert len(keys) == 6
    assert str(squeezenet.preprocessing_version) in \
        cache_key("abc", squeezenet, exact=False)


def test_threads(cache):
    def work(t):
        for i in range(20):
            cache.put_many({f"{t}-{i}": vector(i)})
            cache.get_many([f"{t}-{i}", f"{t}-{i - 1}"])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 80


def _writer(path: str, tag: str, n: int, barrier) -> None:
    cache = EmbeddingCache(path)
    barrier.wait()
    for i in range(n):
        cache.put_many({f"{tag}-{i}-{j}": vector(i * 10 + j)
                        for j in range(5)})
        cache.get_many([f"{tag}-{i}-0"])
    cache.close()


def test_two_processes(tmp_path):
    path = str(tmp_path / "c.sqlite")
    EmbeddingCache(path).close()   # both start from an existing database
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, tag, 30, barrier))
             for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with EmbeddingCache(path) as cache:
        assert len(cache) == 2 * 30 * 5
        assert cache.total_bytes == 2 * 30 * 5 * VECTOR_BYTES
        np.testing.assert_array_equal(cache.get_many(["b-3-4"])["b-3-4"],
                                      vector(34))


def test_corrupt_file_recovers(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with EmbeddingCache(str(path)) as cache:
        assert len(cache) == 0
        cache.put_many({"a": vector(1)})
        assert "a" in cache
    with EmbeddingCache(str(path)) as cache:
        assert "a" in cache


def test_corrupted_while_open_recovers(cache):
    cache.put_many({"a": vector(1)})
    cache.close()
    with open(cache.path, "r+b") as f:
        f.write(b"garbage" * 200)
    for name in (cache.path + "-wal", cache.path + "-shm"):
        if os.path.exists(name):
            os.remove(name)
    # no exception, ever: a damaged cache is replaced by an empty one
    assert cache.get_many(["a"]) == {}
    cache.put_many({"b": vector(2)})
    assert "b" in cache


def test_missing_file_and_folder(tmp_path):
    path = tmp_path / "a" / "b" / "c.sqlite"
    with EmbeddingCache(str(path)) as cache:
        cache.put_many({"a": vector(1)})
    os.remove(path)
    with EmbeddingCache(str(path)) as cache:
        assert len(cache) == 0
        cache.put_many({"a": vector(1)})
        assert len(cache) == 1


def test_unusable_location_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with EmbeddingCache(str(blocker / "c.sqlite")) as cache:
        cache.put_many({"a": vector(1)})
        assert "a" in cache


class _FailingCommit:
    """A connection whose next COMMIT fails, as on a full disk, leaving the
    transaction open (SQLite does not always roll back on SQLITE_FULL)."""

    def __init__(self, conn):
        self._conn = conn
        self.fail = True

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_failed_commit_does_not_leave_the_cache_locked(tmp_path):
    path = str(tmp_path / "c.sqlite")
    with EmbeddingCache(path) as cache:
        # this thread's connection, which the store hands out next
        cache.store._local.conn = _FailingCommit(cache.store.connection())
        cache.put_many({"lost": vector(1)})   # no exception
        # the failed write is not half there, and later writes work
        assert "lost" not in cache
        cache.put_many({"a": vector(2)})
        # another process can write too: no write lock is left behind
        with EmbeddingCache(path, timeout=0.5) as other:
            other.put_many({"b": vector(3)})
            assert "a" in other and "b" in other


def test_memory_fallback_is_bounded(tmp_path, monkeypatch):
    """A cache that cannot use its file keeps a small bound in memory, not
    the gigabytes allowed on disk."""
    monkeypatch.setattr(cache_module, "MEMORY_MAX_BYTES", 10 * VECTOR_BYTES,
                        raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with EmbeddingCache(str(blocker / "c.sqlite")) as cache:
        assert cache.max_bytes == cache_module.DEFAULT_MAX_BYTES
        for i in range(30):
            cache.put_many({f"k{i}": vector(i)})
        assert cache.total_bytes <= 10 * VECTOR_BYTES
        assert "k29" in cache
