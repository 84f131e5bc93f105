"""A bounded, least-recently-used store of blobs in one SQLite file.

The embedding cache (:mod:`.embedders.cache`) and the thumbnail cache
(:mod:`.thumbnails`) are both this store; each names its table and columns
in a :class:`Layout`, which keeps the files that earlier versions wrote
readable as they are.

* Size is bounded in bytes: the total is kept by triggers in a one-row
  ``stats`` table, so checking the bound after a write costs O(1); beyond
  ``max_bytes`` the least recently used entries go until 90 % is left, so
  that eviction runs once per many writes. A file written before the
  triggers existed gets them, and its total, when it is first opened.
* Last-use times are rewritten at most once a minute per entry: the LRU
  order needs no finer grain, and a read then rarely becomes a write.
* Each thread has its own connection, so threads read in parallel; SQLite's
  locks (WAL mode, a busy timeout, ``BEGIN IMMEDIATE`` for writes) order the
  writers of all threads and processes. A connection never crosses fork().
* Every write is one transaction: a process killed half way keeps what it
  committed.
* Errors never reach the caller, since a cache only saves work: a damaged
  file is moved out of the way and replaced with an empty one, a file that
  cannot be opened at all gives way to a small store in memory, and a
  locked or full database is a miss.
"""
from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Layout", "SQLiteLRUStore"]

log = logging.getLogger(__name__)

#: Last-use times are rewritten at most this often (seconds).
TOUCH_INTERVAL = 60.0
#: After eviction the store holds at most this share of ``max_bytes``.
EVICT_TO = 0.9
# SQLite's limit on bound parameters is 999 in old builds
_CHUNK = 500
# names of in-memory stores, unique within the process
_memory_ids = itertools.count()


@dataclass(frozen=True)
class Layout:
    """The table of a store, as its files hold it.

    Attributes
    ----------
    table
        The table's name.
    columns
        Its columns after ``key``, with their SQL types, in the order in
        which entries are written and read, e.g. ``(("data", "BLOB NOT
        NULL"), ("width", "INTEGER"))``.
    size_column
        The column whose change changes an entry's size.
    size
        An entry's size in bytes as SQL, ``{row}`` standing for the row:
        ``"length({row}.vector)"``.
    used_column
        The column that holds an entry's last use (seconds since the epoch).
    user_version
        Written to ``PRAGMA user_version`` when not None.
    """

    table: str
    columns: tuple[tuple[str, str], ...]
    size_column: str
    size: str
    used_column: str
    user_version: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def schema(self) -> list[str]:
        """The statements that make (or complete) a store's file."""
        t, used = self.table, self.used_column
        columns = ",\n    ".join(f"{name} {kind}" for name, kind in self.columns)
        new, old = self.size.format(row="NEW"), self.size.format(row="OLD")
        statements = [
            f"CREATE TABLE IF NOT EXISTS {t} (\n    key TEXT PRIMARY KEY,\n"
            f"    {columns},\n    {used} REAL NOT NULL\n)",
            f"CREATE INDEX IF NOT EXISTS {t}_{used} ON {t} ({used})",
            "CREATE TABLE IF NOT EXISTS stats (\n"
            "    id INTEGER PRIMARY KEY CHECK (id = 0),\n"
            "    total_bytes INTEGER NOT NULL\n)",
            # a file without the table yet (an older thumbnail cache) starts
            # from its entries' sum
            "INSERT OR IGNORE INTO stats (id, total_bytes)\n"
            f"    SELECT 0, COALESCE(SUM({self.size.format(row=t)}), 0) FROM {t}",
            f"CREATE TRIGGER IF NOT EXISTS {t}_insert AFTER INSERT ON {t}\n"
            f"BEGIN\n    UPDATE stats SET total_bytes = total_bytes + {new}"
            " WHERE id = 0;\nEND",
            f"CREATE TRIGGER IF NOT EXISTS {t}_delete AFTER DELETE ON {t}\n"
            f"BEGIN\n    UPDATE stats SET total_bytes = total_bytes - {old}"
            " WHERE id = 0;\nEND",
            f"CREATE TRIGGER IF NOT EXISTS {t}_update AFTER UPDATE OF "
            f"{self.size_column} ON {t}\nBEGIN\n    UPDATE stats SET "
            f"total_bytes = total_bytes\n        + {new} - {old} WHERE id = 0;\nEND",
        ]
        if self.user_version is not None:
            statements.append(f"PRAGMA user_version = {int(self.user_version)}")
        return statements


class SQLiteLRUStore:
    """Entries ``key -> (column values)`` in one SQLite file, bounded in
    bytes, least recently used out first.

    Parameters
    ----------
    path
        The database file, or a function that gives it when the store is
        used (so that an environment variable may move it). Folders are
        made as needed.
    layout
        The table, see :class:`Layout`.
    max_bytes
        Bound on the entries' total size.
    memory_max_bytes
        Bound on a store that could not use its file and lives in memory:
        the bound on disk would let it take gigabytes of the process.
    timeout
        Seconds to wait for another writer's lock.
    label
        What the store is called in the log ("Embedding cache").
    now
        The clock for last uses (tests replace it).
    """

    def __init__(self, path: str | Callable[[], str], layout: Layout, *,
                 max_bytes: int, memory_max_bytes: int = 64 * 1024 ** 2,
                 timeout: float = 30.0, label: str = "Cache",
                 now: Callable[[], float] = time.time):
        self._path = path
        self.layout = layout
        self.max_bytes = int(max_bytes)
        self.memory_max_bytes = int(memory_max_bytes)
        self.timeout = timeout
        self.label = label
        self.now = now
        self._local = threading.local()
        self._lock = threading.Lock()
        # bumped when the file is replaced: every thread then reconnects
        self._generation = 0
        # path -> URI of the in-memory store used in its place
        self._memory: dict[str, str] = {}
        self._memory_keepers: dict[str, sqlite3.Connection] = {}
        self._warned = False

    @property
    def path(self) -> str:
        return os.fspath(self._path() if callable(self._path) else self._path)

    @property
    def in_memory(self) -> bool:
        """Whether the store lives in memory, its file being unusable."""
        return self.path in self._memory

    # ------------------------------------------------------------ connection

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened as needed)."""
        local, path = self._local, self.path
        conn = getattr(local, "conn", None)
        if conn is not None and local.key == (path, os.getpid(), self._generation):
            return conn
        if conn is not None and local.key[1] == os.getpid():
            _close(conn)
        local.conn = None
        with self._lock:
            conn = self._open(path)
            local.conn, local.key = conn, (path, os.getpid(), self._generation)
        return conn

    def _open(self, path: str) -> sqlite3.Connection:
        if path in self._memory:
            return self._connect_memory(path)
        try:
            return self._connect(path)
        except sqlite3.DatabaseError as exc:
            if not _is_damaged(exc):
                return self._memory_fallback(path, exc)
            log.warning("%s %s is damaged (%s); starting an empty one",
                        self.label, path, exc)
            _discard_file(path)
            try:
                return self._connect(path)
            except (sqlite3.Error, OSError) as exc2:
                return self._memory_fallback(path, exc2)
        except OSError as exc:
            return self._memory_fallback(path, exc)

    def _connect(self, path: str) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # autocommit mode: transactions are opened explicitly
        conn = sqlite3.connect(path, timeout=self.timeout,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # with WAL, NORMAL survives a killed process (not a power cut)
            # and does not fsync on every commit
            conn.execute("PRAGMA synchronous=NORMAL")
            with transaction(conn):
                for statement in self.layout.schema():
                    conn.execute(statement)
            conn.execute("SELECT COUNT(*) FROM stats").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _memory_fallback(self, path: str, exc: Exception) -> sqlite3.Connection:
        log.warning("Cannot use %s %s (%s); entries are kept in memory only",
                    self.label.lower(), path, exc)
        uri = f"file:sqlite-lru-store-{next(_memory_ids)}?mode=memory&cache=shared"
        self._memory[path] = uri
        # an in-memory database lives while a connection to it is open
        self._memory_keepers[path] = self._connect_memory(path)
        return self._connect_memory(path)

    def _connect_memory(self, path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self._memory[path], uri=True, timeout=self.timeout,
                               isolation_level=None, check_same_thread=False)
        for statement in self.layout.schema():
            conn.execute(statement)
        return conn

    def run(self, operation: Callable[[sqlite3.Connection], object], default=None):
        """``operation(connection)``; on a damaged file start afresh once.

        Errors never propagate: the store is an optimisation, and the
        caller must go on without it (``default`` is returned).
        """
        for attempt in range(2):
            try:
                return operation(self.connection())
            except sqlite3.DatabaseError as exc:
                if not _is_damaged(exc) or attempt:
                    # locked for longer than the timeout, disk full, ...
                    self._warn(exc)
                    return default
                path = self.path
                log.warning("%s %s is damaged (%s); starting an empty one",
                            self.label, path, exc)
                with self._lock:
                    self.close()
                    _discard_file(path)
                    self._generation += 1
            except OSError as exc:
                self._warn(exc)
                return default
        return default

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("%s %s is not usable now: %s", self.label, self.path, exc)
            self._warned = True

    def close(self) -> None:
        """Close this thread's connection; the store reopens it when used
        (other threads' connections close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.key[1] == os.getpid():
            _close(conn)
        self._local.conn = None

    # ------------------------------------------------------------ entries

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple]:
        """The entries stored under ``keys``, as tuples of the layout's
        columns; missing keys are absent. Entries that are found count as
        used now."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        lay = self.layout
        select = (f"SELECT key, {', '.join(lay.names)}, {lay.used_column} "
                  f"FROM {lay.table} WHERE key IN ({{}})")

        def get(conn):
            now = self.now()
            found, stale = {}, []
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                for key, *values, used in conn.execute(
                        select.format(",".join("?" * len(chunk))), chunk):
                    found[key] = tuple(values)
                    if used < now - TOUCH_INTERVAL:
                        stale.append(key)
            if stale:
                with transaction(conn):
                    execute_chunked(
                        conn, f"UPDATE {lay.table} SET {lay.used_column} = ? "
                              "WHERE key IN ({})", stale, prefix=(now,))
            return found

        return self.run(get, {})

    def get(self, key: str) -> tuple | None:
        """The entry stored under ``key``, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, entries: Iterable[tuple]) -> bool:
        """Store ``(key, *values)`` rows in one transaction, committed when
        this returns; whether they were stored."""
        now = self.now()
        rows = [(*entry, now) for entry in entries]
        if not rows:
            return True
        lay = self.layout
        names = (*lay.names, lay.used_column)
        sql = (f"INSERT INTO {lay.table} (key, {', '.join(names)}) "
               f"VALUES ({', '.join('?' * (len(names) + 1))}) "
               "ON CONFLICT (key) DO UPDATE SET "
               + ", ".join(f"{name} = excluded.{name}" for name in names))

        def put(conn):
            with transaction(conn):
                conn.executemany(sql, rows)
                self._evict(conn)
            return True

        return self.run(put, False)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove the entries under ``keys``."""
        def delete(conn):
            with transaction(conn):
                execute_chunked(conn, f"DELETE FROM {self.layout.table} "
                                      "WHERE key IN ({})", list(keys))
        if keys:
            self.run(delete)

    def evict(self) -> None:
        """Remove least recently used entries while over ``max_bytes``."""
        def evict(conn):
            with transaction(conn):
                self._evict(conn)
        self.run(evict)

    def _evict(self, conn: sqlite3.Connection) -> None:
        total = conn.execute("SELECT total_bytes FROM stats WHERE id = 0").fetchone()[0]
        bound = min(self.max_bytes, self.memory_max_bytes) if self.in_memory \
            else self.max_bytes
        if total <= bound:
            return
        lay = self.layout
        excess = total - int(bound * EVICT_TO)
        doomed, freed = [], 0
        for key, size in conn.execute(
                f"SELECT key, {lay.size.format(row=lay.table)} FROM {lay.table} "
                f"ORDER BY {lay.used_column}, rowid"):
            if freed >= excess:
                break
            doomed.append(key)
            freed += size
        execute_chunked(conn, f"DELETE FROM {lay.table} WHERE key IN ({{}})", doomed)

    def clear(self) -> None:
        """Remove every entry and give the space back to the file system."""
        def clear(conn):
            with transaction(conn):
                conn.execute(f"DELETE FROM {self.layout.table}")
                conn.execute("UPDATE stats SET total_bytes = 0")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
        self.run(clear)

    def __len__(self) -> int:
        return self.run(lambda conn: conn.execute(
            f"SELECT COUNT(*) FROM {self.layout.table}").fetchone()[0], 0)

    def __contains__(self, key: str) -> bool:
        return self.run(lambda conn: conn.execute(
            f"SELECT 1 FROM {self.layout.table} WHERE key = ?", (key,)).fetchone()
            is not None, False)

    def total_bytes(self) -> int:
        """The entries' total size in bytes."""
        return self.run(lambda conn: conn.execute(
            "SELECT total_bytes FROM stats WHERE id = 0").fetchone()[0], 0)


class transaction:
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


def execute_chunked(conn, sql: str, keys: list, prefix: tuple = ()) -> None:
    """Run ``sql`` (with ``{}`` where the ``?`` of the keys go) on the keys
    in chunks that old SQLite builds accept."""
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        conn.execute(sql.format(",".join("?" * len(chunk))), (*prefix, *chunk))


def _is_damaged(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def _discard_file(path: str) -> None:
    # a cache holds nothing that cannot be computed again
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("Cannot remove %s: %s", path + suffix, exc)


def _close(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass
