"""The one bounded LRU store behind the embedding and thumbnail caches."""
from __future__ import annotations

import io
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from orangecontrib.imageanalytics import sqlite_store
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.sqlite_store import Layout, SQLiteLRUStore
from orangecontrib.imageanalytics.thumbnails import ThumbnailCache

LAYOUT = Layout(table="blobs", columns=(("data", "BLOB NOT NULL"),),
                size_column="data", size="length({row}.data)", used_column="used")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        self.t += 1
        return self.t


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "TOUCH_INTERVAL", 0.0)
    return SQLiteLRUStore(str(tmp_path / "s.sqlite"), LAYOUT, max_bytes=1000,
                          now=Clock())


def test_roundtrip_and_totals(store):
    assert store.put_many([("a", b"x" * 100), ("b", b"y" * 50)])
    assert store.get("a") == (b"x" * 100,)
    assert store.get_many(["a", "zz"]) == {"a": (b"x" * 100,)}
    assert store.total_bytes() == 150
    # a new value under a key replaces the old one, and its size
    store.put_many([("a", b"z" * 10)])
    assert store.get("a") == (b"z" * 10,)
    assert store.total_bytes() == 60 and len(store) == 2
    store.delete_many(["b"])
    assert "b" not in store and store.total_bytes() == 10
    store.clear()
    assert len(store) == 0 and store.total_bytes() == 0


def test_least_recently_used_go_first(store):
    for i in range(5):
        store.put_many([(f"k{i}", b"x" * 200)])
    store.get("k0")                      # k0 is now the most recent
    store.put_many([("new", b"x" * 200)])   # 1200 > 1000: evict to 900
    assert store.total_bytes() <= 900
    assert "k0" in store and "new" in store
    assert "k1" not in store and "k2" not in store


def test_each_thread_has_its_own_connection(store):
    store.put_many([("a", b"1")])
    seen = {}

    def read(name):
        seen[name] = (store.connection(), store.get("a"))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen[0][1] == seen[1][1] == (b"1",)
    assert seen[0][0] is not seen[1][0]
    assert store.connection() is store.connection()


def test_damaged_file_is_replaced(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"not a database" * 200)
    store = SQLiteLRUStore(str(path), LAYOUT, max_bytes=1000)
    assert store.get("a") is None
    assert store.put_many([("a", b"1")])
    assert not store.in_memory and "a" in store


def test_unusable_location_keeps_entries_in_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SQLiteLRUStore(str(blocker / "s.sqlite"), LAYOUT, max_bytes=10**6,
                           memory_max_bytes=300, now=Clock())
    for i in range(5):
        store.put_many([(f"k{i}", b"x" * 100)])
    assert store.in_memory
    assert store.total_bytes() <= 300 and "k4" in store
    # other threads see the same entries
    found = []
    t = threading.Thread(target=lambda: found.append(store.get("k4")))
    t.start()
    t.join(timeout=30)
    assert found == [(b"x" * 100,)]


def test_a_thumbnail_file_of_an_earlier_version_is_read_and_bounded(tmp_path):
    # the table as earlier versions wrote it: no totals, no triggers
    folder = tmp_path / "thumbs"
    folder.mkdir()
    conn = sqlite3.connect(folder / "thumbnails.sqlite")
    conn.executescript("""
        CREATE TABLE thumbnails (key TEXT PRIMARY KEY, data BLOB NOT NULL,
            width INTEGER, height INTEGER, nbytes INTEGER NOT NULL, used REAL NOT NULL);
        CREATE INDEX thumbnails_used ON thumbnails (used);
    """)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    png = out.getvalue()
    conn.executemany("INSERT INTO thumbnails VALUES (?, ?, 8, 8, ?, ?)",
                     [(f"k{i}", png, len(png), i) for i in range(3)])
    conn.commit()
    conn.close()
    cache = ThumbnailCache(str(folder), max_bytes=10**6)
    assert cache.get("k1").image.size == (8, 8)
    assert cache.total_bytes() == 3 * len(png)
    # k1 was used just now, k0 (used at 0) is the least recent
    cache.max_bytes = 3 * len(png) - 1
    cache.evict()
    assert cache.get("k0") is None
    assert cache.get("k1") is not None and cache.get("k2") is not None


OLD_EMBEDDINGS_SCHEMA = """
CREATE TABLE embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL,
    vector BLOB NOT NULL, last_used REAL NOT NULL);
CREATE INDEX embeddings_last_used ON embeddings (last_used);
CREATE TABLE stats (id INTEGER PRIMARY KEY CHECK (id = 0), total_bytes INTEGER NOT NULL);
INSERT INTO stats VALUES (0, 0);
CREATE TRIGGER embeddings_insert AFTER INSERT ON embeddings
BEGIN UPDATE stats SET total_bytes = total_bytes + length(NEW.vector) WHERE id = 0; END;
CREATE TRIGGER embeddings_delete AFTER DELETE ON embeddings
BEGIN UPDATE stats SET total_bytes = total_bytes - length(OLD.vector) WHERE id = 0; END;
CREATE TRIGGER embeddings_update AFTER UPDATE OF vector ON embeddings
BEGIN UPDATE stats SET total_bytes = total_bytes
    + length(NEW.vector) - length(OLD.vector) WHERE id = 0; END;
PRAGMA user_version = 1;
"""


def test_an_embedding_file_of_an_earlier_version_is_read(tmp_path):
    path = tmp_path / "embeddings.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_EMBEDDINGS_SCHEMA)
    vector = np.arange(4, dtype="<f4")
    conn.execute("INSERT INTO embeddings VALUES ('k', 4, ?, 1.0)", (vector.tobytes(),))
    conn.commit()
    conn.close()
    with EmbeddingCache(str(path)) as cache:
        np.testing.assert_array_equal(cache.get_many(["k"])["k"], vector)
        assert cache.total_bytes == 16
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()
