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
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

# re-exported: the cache folder's home was this module
from orangecontrib.imageanalytics.cache_dirs import CACHE_DIR_ENV, cache_folder

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

log = logging.getLogger(__name__)

#: Default bound on the stored vectors: ~500,000 SqueezeNet vectors.
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
#: Bound on a cache that could not open its file and lives in memory: the
#: bound on disk would let it take gigabytes of the process's memory.
MEMORY_MAX_BYTES = 64 * 1024 ** 2
CACHE_FILENAME = "embeddings.sqlite"

_SCHEMA_VERSION = 1
# last-used times are refreshed at most this often (seconds): LRU order does
# not need finer resolution, and a read then rarely turns into a write
_TOUCH_INTERVAL = 60.0
# after eviction the cache holds at most this fraction of max_bytes, so that
# eviction runs once per many insertions rather than on every one
_EVICT_TO = 0.9
# SQLite's limit on bound parameters is 999 in old builds
_CHUNK = 500
_DTYPE = np.dtype("<f4")
# wall-clock time, shared by processes (tests replace it)
_now = time.time

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_last_used ON embeddings (last_used);
-- the total size is kept by triggers so that checking the bound costs O(1)
CREATE TABLE IF NOT EXISTS stats (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    total_bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO stats (id, total_bytes)
    SELECT 0, COALESCE(SUM(length(vector)), 0) FROM embeddings;
CREATE TRIGGER IF NOT EXISTS embeddings_insert AFTER INSERT ON embeddings
BEGIN
    UPDATE stats SET total_bytes = total_bytes + length(NEW.vector) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS embeddings_delete AFTER DELETE ON embeddings
BEGIN
    UPDATE stats SET total_bytes = total_bytes - length(OLD.vector) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS embeddings_update AFTER UPDATE OF vector ON embeddings
BEGIN
    UPDATE stats SET total_bytes = total_bytes
        + length(NEW.vector) - length(OLD.vector) WHERE id = 0;
END;
PRAGMA user_version = {_SCHEMA_VERSION};
"""


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

    Safe to use from several threads (one connection guarded by a lock) and
    from several processes (SQLite's locking, WAL mode, busy timeout).

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
        self.max_bytes = int(max_bytes)
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = None
        self._warned = False
        self._in_memory = False
        with self._lock:
            self._connection()

    # --- connection management ---------------------------------------
    def _connection(self) -> sqlite3.Connection:
        # a connection must not cross fork(): reopen in a child process
        if self._conn is None or self._pid != os.getpid():
            self._in_memory = False
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        # autocommit mode: transactions are opened explicitly below
        conn = sqlite3.connect(self.path, timeout=self.timeout,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # with WAL, NORMAL survives a killed process (not a power cut)
            # and does not fsync on every commit
            conn.execute("PRAGMA synchronous=NORMAL")
            with _transaction(conn):
                for statement in _split_script(_SCHEMA):
                    conn.execute(statement)
            conn.execute("SELECT COUNT(*) FROM stats").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_damaged(exc):
                return self._memory_fallback(exc)
            log.warning("Embedding cache %s is damaged (%s); starting an "
                        "empty one", self.path, exc)
            self._discard_file()
            try:
                return self._connect()
            except (sqlite3.Error, OSError) as exc2:
                return self._memory_fallback(exc2)
        except OSError as exc:
            return self._memory_fallback(exc)

    def _memory_fallback(self, exc: Exception) -> sqlite3.Connection:
        log.warning("Cannot use embedding cache %s (%s); vectors are cached "
                    "in memory only", self.path, exc)
        conn = sqlite3.connect(":memory:", isolation_level=None,
                               check_same_thread=False)
        self._in_memory = True
        for statement in _split_script(_SCHEMA):
            conn.execute(statement)
        return conn

    def _discard_file(self) -> None:
        # a cache holds nothing that cannot be recomputed
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("Cannot remove %s: %s", self.path + suffix, exc)

    def _run(self, operation, default):
        """Run ``operation(conn)``; on a damaged database start afresh once.

        Errors never propagate: the cache is an optimisation, and embedding
        must go on without it.
        """
        with self._lock:
            for attempt in range(2):
                try:
                    return operation(self._connection())
                except sqlite3.DatabaseError as exc:
                    if not _is_damaged(exc) or attempt:
                        # locked for longer than the timeout, disk full, ...
                        self._warn(exc)
                        return default
                    log.warning("Embedding cache %s is damaged (%s); "
                                "starting an empty one", self.path, exc)
                    self._close_connection()
                    self._discard_file()
            return default

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Embedding cache %s is not usable now: %s",
                        self.path, exc)
            self._warned = True

    def _close_connection(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def close(self) -> None:
        """Close the database connection; the cache reopens it when used."""
        with self._lock:
            self._close_connection()

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.path!r}, max_bytes={self.max_bytes})"

    # --- public interface ---------------------------------------------
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the vectors stored under ``keys``; missing keys are absent.

        Vectors that are found count as used now for eviction.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}

        def get(conn):
            now = _now()
            found, stale, bad = {}, [], []
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                rows = conn.execute(
                    "SELECT key, dim, vector, last_used FROM embeddings "
                    f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for key, dim, blob, last_used in rows:
                    if len(blob) != dim * _DTYPE.itemsize:
                        bad.append(key)
                        continue
                    found[key] = np.frombuffer(blob, dtype=_DTYPE) \
                        .astype(np.float32)
                    if last_used < now - _TOUCH_INTERVAL:
                        stale.append(key)
            if stale or bad:
                with _transaction(conn):
                    _execute_chunked(
                        conn, "UPDATE embeddings SET last_used = ? "
                              "WHERE key IN ({})", stale, prefix=(now,))
                    _execute_chunked(
                        conn, "DELETE FROM embeddings WHERE key IN ({})", bad)
            return found

        return self._run(get, {})

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        """Store vectors in one transaction (committed when this returns)."""
        if not items:
            return
        now = _now()
        rows = []
        for key, vector in items.items():
            vector = np.ascontiguousarray(vector, dtype=_DTYPE).ravel()
            rows.append((key, vector.size, vector.tobytes(), now))

        def put(conn):
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO embeddings (key, dim, vector, last_used) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "dim = excluded.dim, vector = excluded.vector, "
                    "last_used = excluded.last_used", rows)
                self._evict(conn)

        self._run(put, None)

    def _evict(self, conn: sqlite3.Connection) -> None:
        total = conn.execute(
            "SELECT total_bytes FROM stats WHERE id = 0").fetchone()[0]
        bound = min(self.max_bytes, MEMORY_MAX_BYTES) if self._in_memory \
            else self.max_bytes
        if total <= bound:
            return
        excess = total - int(bound * _EVICT_TO)
        doomed, freed = [], 0
        for key, size in conn.execute(
                "SELECT key, length(vector) FROM embeddings "
                "ORDER BY last_used, rowid"):
            if freed >= excess:
                break
            doomed.append(key)
            freed += size
        _execute_chunked(conn, "DELETE FROM embeddings WHERE key IN ({})",
                         doomed)

    def clear(self) -> None:
        """Remove all vectors."""
        def clear(conn):
            with _transaction(conn):
                conn.execute("DELETE FROM embeddings")
                conn.execute("UPDATE stats SET total_bytes = 0")
            # give the space back to the file system
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")

        self._run(clear, None)

    def __len__(self) -> int:
        return self._run(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM embeddings").fetchone()[0], 0)

    def __contains__(self, key: str) -> bool:
        return self._run(lambda conn: conn.execute(
            "SELECT 1 FROM embeddings WHERE key = ?", (key,)).fetchone()
            is not None, False)

    @property
    def total_bytes(self) -> int:
        """Size of the stored vectors in bytes."""
        return self._run(lambda conn: conn.execute(
            "SELECT total_bytes FROM stats WHERE id = 0").fetchone()[0], 0)


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on an exception.

    IMMEDIATE takes the write lock up front, so the busy timeout applies;
    a deferred transaction that upgrades from reading to writing can fail
    at once with "database is locked" when another process writes.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (disk full, I/O error) may leave the
                # transaction open: it would hold the write lock against
                # every other process and make each later BEGIN fail
                self._rollback()
                raise
        else:
            self._rollback()
        return False

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass   # there was no transaction left to roll back


def _is_damaged(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def _execute_chunked(conn, sql: str, keys: list, prefix: tuple = ()) -> None:
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        conn.execute(sql.format(",".join("?" * len(chunk))),
                     (*prefix, *chunk))


def _split_script(script: str) -> list[str]:
    # executescript() would commit the surrounding transaction; run the
    # statements one by one instead (triggers contain ';', hence
    # sqlite3.complete_statement)
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


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
