"""Persistent embedding cache.

Vectors live in one SQLite database in the user's cache folder, keyed by a
hash of the image file's bytes together with the embedder and its
preprocessing (:func:`cache_key`), so a renamed or copied file is found again
and a changed model never returns stale vectors.

* Vectors are stored as little-endian float32 bytes with their dimension;
  nothing is pickled, so a cache file cannot execute code.
* The database runs in WAL mode with a busy timeout: two processes (say, two
  Orange windows) can read and write it at the same time.
* Every :meth:`EmbeddingCache.put_many` is its own transaction, so a process
  killed half way keeps everything it committed.
* Size is bounded: when the stored vectors exceed ``max_bytes``, the least
  recently used ones are evicted.
* A damaged database file is moved aside and replaced with an empty one; the
  cache never makes embedding fail.

The store is :class:`~orangecontrib.imageanalytics.sqlite_store.SQLiteLRUStore`,
the same as the thumbnails'; :data:`LAYOUT` is the table as every version of
the add-on wrote it, so earlier cache files are read as they are.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

# re-exported: the cache folder's home was this module
from orangecontrib.imageanalytics.cache_dirs import CACHE_DIR_ENV, cache_folder
from orangecontrib.imageanalytics.sqlite_store import Layout, SQLiteLRUStore

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_MAX_BYTES",
    "EmbeddingCache",
    "cache_folder",
    "cache_key",
    "clear_cache",
    "default_cache",
    "default_cache_path",
]

#: Default bound on the stored vectors: ~500,000 SqueezeNet vectors.
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
#: Bound on a cache that could not open its file and lives in memory: the
#: bound on disk would let it take gigabytes of the process's memory.
MEMORY_MAX_BYTES = 64 * 1024 ** 2
CACHE_FILENAME = "embeddings.sqlite"

_DTYPE = np.dtype("<f4")
# wall-clock time, shared by processes (tests replace it)
_now = time.time

#: The table as every version of the add-on wrote it (schema version 1).
LAYOUT = Layout(
    table="embeddings",
    columns=(("dim", "INTEGER NOT NULL"), ("vector", "BLOB NOT NULL")),
    size_column="vector",
    size="length({row}.vector)",
    used_column="last_used",
    user_version=1,
)


def cache_key(content_hash: str, spec, *, exact: bool,
              remote: bool = False) -> str:
    """Key of one image's vector for one embedder.

    Parameters
    ----------
    content_hash
        Hash of the image file's bytes (:func:`.inputs.content_hash`).
    spec
        The embedder's :class:`~.registry.EmbedderSpec`; its key and
        ``preprocessing_version`` enter the key.
    exact
        Whether the image was decoded in full (exact path) or with JPEG
        draft scaling (fast path); the two give slightly different vectors.
    remote
        Whether the vector came from an embedding server, which embeds the
        image re-encoded as a JPEG and so gives slightly different vectors
        than the local engine.  Local keys are as they have always been.
    """
    path = "exact" if exact else "fast"
    if remote:
        path = f"remote-{path}"
    return f"{spec.key}/{spec.preprocessing_version}/{path}/{content_hash}"


class EmbeddingCache:
    """Embedding vectors stored on disk, keyed by :func:`cache_key`.

    Safe to use from several threads and from several processes (a
    :class:`~orangecontrib.imageanalytics.sqlite_store.SQLiteLRUStore`).

    Parameters
    ----------
    path
        The database file; by default :func:`default_cache_path`.  Folders
        are created as needed.
    max_bytes
        Bound on the size of the stored vectors; least recently used vectors
        are evicted beyond it.
    timeout
        Seconds to wait for another process's write lock.
    """

    def __init__(self, path: str | None = None, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 30.0):
        self.path = os.fspath(path) if path is not None else default_cache_path()
        self.store = SQLiteLRUStore(
            self.path, LAYOUT, max_bytes=max_bytes,
            memory_max_bytes=MEMORY_MAX_BYTES, timeout=timeout,
            label="Embedding cache", now=lambda: _now())
        # open now: a damaged file is replaced when the cache is made
        self.store.run(lambda conn: None)

    @property
    def max_bytes(self) -> int:
        return self.store.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self.store.max_bytes = int(value)

    def close(self) -> None:
        """Close the database connection; the cache reopens it when used."""
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.path!r}, max_bytes={self.max_bytes})"

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the vectors stored under ``keys``; missing keys are absent.

        Vectors that are found count as used now for eviction.
        """
        found, bad = {}, []
        for key, (dim, blob) in self.store.get_many(keys).items():
            if len(blob) != dim * _DTYPE.itemsize:
                bad.append(key)   # a damaged entry is a miss, and goes
                continue
            found[key] = np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)
        self.store.delete_many(bad)
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        """Store vectors in one transaction (committed when this returns)."""
        rows = []
        for key, vector in items.items():
            vector = np.ascontiguousarray(vector, dtype=_DTYPE).ravel()
            rows.append((key, vector.size, vector.tobytes()))
        self.store.put_many(rows)

    def clear(self) -> None:
        """Remove all vectors."""
        self.store.clear()

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, key: str) -> bool:
        return key in self.store

    @property
    def total_bytes(self) -> int:
        """Size of the stored vectors in bytes."""
        return self.store.total_bytes()


def default_cache_path() -> str:
    """Path of the default cache database, in :func:`cache_folder`."""
    return os.path.join(cache_folder(), CACHE_FILENAME)


_default: dict[str, EmbeddingCache] = {}
_default_lock = threading.Lock()


def default_cache() -> EmbeddingCache:
    """The process-wide cache at :func:`default_cache_path`."""
    path = default_cache_path()
    with _default_lock:
        cache = _default.get(path)
        if cache is None:
            cache = _default[path] = EmbeddingCache(path)
        return cache


def clear_cache() -> None:
    """Remove all vectors from the default cache."""
    default_cache().clear()
