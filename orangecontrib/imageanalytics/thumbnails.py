"""Thumbnails of images at a requested size, with a bounded on-disk cache.

No Qt here: Image Viewer and Image Grid call :func:`make_thumbnail` from
worker threads (see ``widgets/utils/thumbnail_loader.py``), a script can call
it directly. Images are read and decoded by :mod:`images` only, at the size
asked for (JPEG draft decoding), with EXIF orientation applied and alpha
kept; every failure comes back as that module's human reason.

The disk cache is one SQLite file in the user's cache folder
(``$ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE`` overrides the folder). Entries
hold the thumbnail encoded as PNG (with alpha) or JPEG, never pickles. A
local file's key includes its modification time and size, and its inode and
change time, which every write moves even when a copy keeps the first two
(``cp -p``, sync tools); a URL's key is the digest of the bytes the HTTP
cache gives after asking the server whether they changed. So an edited photo
is never served stale. (Windows keeps no change time: there an edit that
keeps size and modification time in place is not seen.) Size is bounded in bytes; the least recently
used entries go first. SQLite's locking (WAL, a busy timeout) makes it safe
for several threads and processes at once; a cache that cannot be used is
skipped, never an error for the caller.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass

from PIL import Image

from orangecontrib.imageanalytics.cache_dirs import cache_folder
from orangecontrib.imageanalytics.image_sources import (
    ImageLoadError,
    is_url,
    read_source,
    resolve_source,
)
from orangecontrib.imageanalytics.images import decode_image, read_image_info

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_MAX_BYTES",
    "SIZE_BUCKETS",
    "THUMBNAIL_CACHE_ENV",
    "Thumbnail",
    "ThumbnailCache",
    "bucket_for",
    "default_cache",
    "default_cache_folder",
    "make_thumbnail",
]

log = logging.getLogger(__name__)

#: Longest side, in pixels, of the thumbnails that are made and cached.
SIZE_BUCKETS: tuple[int, ...] = (64, 128, 256, 512, 1024)

#: Environment variable naming the folder of the thumbnail cache.
THUMBNAIL_CACHE_ENV = "ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE"

#: Default bound on the cached thumbnails' bytes.
DEFAULT_MAX_BYTES = 512 * 2**20
CACHE_FILENAME = "thumbnails.sqlite"
_JPEG_QUALITY = 90
# last-use times are rewritten at most this often, so that reads rarely write
_TOUCH_SECONDS = 60.0
# the total is counted again after this share of max_bytes was added
_EVICT_SLACK = 0.05


def bucket_for(size: int) -> int:
    """The smallest bucket of :data:`SIZE_BUCKETS` that is at least ``size``
    (the largest bucket when none is)."""
    for bucket in SIZE_BUCKETS:
        if bucket >= size:
            return bucket
    return SIZE_BUCKETS[-1]


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail, or the reason there is none.

    Attributes
    ----------
    image : PIL.Image.Image or None
        RGB or RGBA; its longest side is at most the bucket; EXIF applied.
    error : str or None
        Why there is no image ("file not found", "HTTP 404", ...).
    source_size : (int, int) or None
        The original image's (width, height) as displayed, when known.
    """

    image: Image.Image | None
    error: str | None
    source_size: tuple[int, int] | None = None


def default_cache_folder() -> str:
    """``$ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE`` if set, else
    ``thumbnails`` in the add-on's cache folder (``cache_folder()``)."""
    folder = os.environ.get(THUMBNAIL_CACHE_ENV)
    if folder:
        return folder
    return os.path.join(cache_folder(), "thumbnails")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS thumbnails (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    width INTEGER,
    height INTEGER,
    nbytes INTEGER NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS thumbnails_used ON thumbnails (used)
"""


class ThumbnailCache:
    """Thumbnails on disk, bounded in bytes, least recently used out first.

    Each thread has its own connection, so that worker threads read in
    parallel; SQLite's locks order writers of all threads and processes.

    Parameters
    ----------
    folder : str, optional
        Where the database lives; by default :func:`default_cache_folder`,
        looked up when the cache is used (so the environment may change).
    max_bytes : int
        The encoded thumbnails' total size is kept near this bound.
    """

    def __init__(self, folder: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES):
        self._folder = os.fspath(folder) if folder is not None else None
        self.max_bytes = int(max_bytes)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._added = 0  # bytes put since the last count
        self._broken: set[str] = set()

    @property
    def folder(self) -> str:
        return self._folder if self._folder is not None else default_cache_folder()

    @property
    def path(self) -> str:
        return os.path.join(self.folder, CACHE_FILENAME)

    def __repr__(self) -> str:
        return f"ThumbnailCache({self._folder!r}, max_bytes={self.max_bytes})"

    # ---------------------------------------------------------- connection

    def _connection(self) -> sqlite3.Connection | None:
        path = self.path
        if path in self._broken:
            return None
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.path == path and local.pid == os.getpid():
            return conn
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
        except (sqlite3.Error, OSError) as e:
            log.warning("Thumbnail cache %s cannot be used: %s", path, e)
            self._broken.add(path)
            return None
        local.conn, local.path, local.pid = conn, path, os.getpid()
        return conn

    def _run(self, operation, default=None):
        conn = self._connection()
        if conn is None:
            return default
        try:
            return operation(conn)
        except sqlite3.Error as e:
            # locked for too long, damaged, disk full: a miss, not a failure
            log.warning("Thumbnail cache %s: %s", self.path, e)
            return default

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---------------------------------------------------------- entries

    def get(self, key: str) -> Thumbnail | None:
        """The cached thumbnail for ``key``, or None."""
        def fetch(conn):
            row = conn.execute(
                "SELECT data, width, height, used FROM thumbnails WHERE key = ?",
                (key,)).fetchone()
            if row is not None and row[3] < time.time() - _TOUCH_SECONDS:
                conn.execute("UPDATE thumbnails SET used = ? WHERE key = ?",
                             (time.time(), key))
            return row

        row = self._run(fetch)
        if row is None:
            return None
        data, width, height, _ = row
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:  # noqa: BLE001 - a damaged entry is a miss
            return None
        size = (width, height) if width and height else None
        return Thumbnail(image, None, size)

    def put(self, key: str, thumbnail: Thumbnail | Image.Image,
            source_size: tuple[int, int] | None = None) -> None:
        """Store a thumbnail (a :class:`Thumbnail`, or an image and the
        original's size); failures are not stored."""
        if isinstance(thumbnail, Thumbnail):
            source_size = thumbnail.source_size
            thumbnail = thumbnail.image
        if thumbnail is None:
            return
        data = _encode(thumbnail)
        width, height = source_size or (None, None)

        def store(conn):
            conn.execute("INSERT OR REPLACE INTO thumbnails VALUES (?, ?, ?, ?, ?, ?)",
                         (key, data, width, height, len(data), time.time()))
            return True

        if not self._run(store, False):
            return
        with self._lock:
            self._added += len(data)
            check = self._added > self.max_bytes * _EVICT_SLACK
            if check:
                self._added = 0
        if check:
            self.evict()

    def evict(self) -> None:
        """Remove the least recently used thumbnails beyond ``max_bytes``."""
        def evict(conn):
            total = conn.execute(
                "SELECT COALESCE(SUM(nbytes), 0) FROM thumbnails").fetchone()[0]
            excess = total - self.max_bytes
            if excess <= 0:
                return
            doomed = []
            for key, nbytes in conn.execute(
                    "SELECT key, nbytes FROM thumbnails ORDER BY used"):
                if excess <= 0:
                    break
                doomed.append((key,))
                excess -= nbytes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM thumbnails WHERE key = ?", doomed)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run(evict)

    def total_bytes(self) -> int:
        """The encoded thumbnails' total size."""
        return self._run(lambda conn: conn.execute(
            "SELECT COALESCE(SUM(nbytes), 0) FROM thumbnails").fetchone()[0], 0)

    def __len__(self) -> int:
        return self._run(
            lambda conn: conn.execute("SELECT COUNT(*) FROM thumbnails").fetchone()[0], 0)

    def clear(self) -> None:
        """Remove every thumbnail."""
        self._run(lambda conn: conn.execute("DELETE FROM thumbnails"))


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, "PNG", compress_level=1)
    else:
        image.convert("RGB").save(out, "JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()


#: The cache :func:`make_thumbnail` uses unless told otherwise: the user's
#: (its folder is looked up on use, see :func:`default_cache_folder`).
DEFAULT_CACHE = ThumbnailCache()


def default_cache() -> ThumbnailCache:
    """The process-wide cache in :func:`default_cache_folder`."""
    return DEFAULT_CACHE


def cache_key(resolved: str, bucket: int, data: bytes | None = None) -> str | None:
    """The cache key of a resolved source at a bucket.

    A local file's key names its version (path, size, modification and
    change time, inode), looked up without reading it; None when it cannot
    be looked at (missing: nothing to cache). A URL's key is the digest of
    its bytes ``data``; None without them.
    """
    if _is_download(resolved):
        if data is None:
            return None
        ident = f"url\0{hashlib.sha256(data).hexdigest()}"
    else:
        path = resolved
        if resolved.lower().startswith("file:"):
            from orangecontrib.imageanalytics.image_sources import _file_url_to_path
            path = _file_url_to_path(resolved)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        # st_ctime: the last change on POSIX, which no tool sets back
        ident = (f"file\0{os.path.abspath(path)}\0{st.st_mtime_ns}\0{st.st_size}"
                 f"\0{st.st_ino}\0{st.st_ctime_ns}")
    return hashlib.sha256(f"{ident}\0{bucket}".encode("utf-8", "surrogatepass")).hexdigest()


def _is_download(resolved: str) -> bool:
    return is_url(resolved) and not resolved.lower().startswith("file:")


def make_thumbnail(value: str | None, size: int, *, origin: str | None = None,
                   cache: ThumbnailCache | None = DEFAULT_CACHE) -> Thumbnail:
    """A thumbnail of the image ``value`` whose longest side is at most
    ``bucket_for(size)``; never raises.

    Parameters
    ----------
    value : str or None
        As stored in an image column: a path, a ``file:`` or http(s) URL,
        possibly relative to ``origin``. Missing values give "missing value".
    size : int
        The size the caller shows; the thumbnail is made at its bucket.
    origin : str, optional
        The image column's origin (folder or base URL).
    cache : ThumbnailCache or None
        Where thumbnails are looked up and kept; None for no disk cache.

    Returns
    -------
    Thumbnail
        The image, or None and the reason (:mod:`images`'s wording).
    """
    try:
        return _make(value, size, origin, cache)
    except MemoryError:
        return Thumbnail(None, "out of memory")
    except Exception as e:  # noqa: BLE001 - never raise to a view
        return Thumbnail(None, f"unexpected error: {e or type(e).__name__}")


def _make(value, size, origin, cache) -> Thumbnail:
    bucket = bucket_for(int(size))
    resolved = resolve_source(value, origin)
    if resolved is None:
        return Thumbnail(None, "missing value")
    data = None
    try:
        if _is_download(resolved) and cache is not None:
            # the HTTP cache asks the server whether the bytes changed; the
            # thumbnail is then looked up by what they are
            data = read_source(resolved)
        key = cache_key(resolved, bucket, data) if cache is not None else None
        if key is not None:
            cached = cache.get(key)
            if cached is not None:
                return cached
        if data is None:
            data = read_source(resolved)
        # at least the bucket in both sides: a landscape photo's short side
        # then still fills a square cell
        image = decode_image(data, min_size=(bucket, bucket), keep_alpha=True)
    except ImageLoadError as e:
        return Thumbnail(None, e.reason)
    source_size = _source_size(resolved, image)
    if max(image.size) > bucket:
        # reducing_gap: a fast box-filter halving first, then a good filter
        image.thumbnail((bucket, bucket), Image.Resampling.LANCZOS, reducing_gap=2.0)
    thumbnail = Thumbnail(image, None, source_size)
    if key is not None:
        cache.put(key, thumbnail)
    return thumbnail


def _source_size(resolved: str, decoded: Image.Image) -> tuple[int, int] | None:
    # a drafted JPEG is smaller than its original: its header knows the size
    if decoded.format not in (None, "JPEG", "MPO") or is_url(resolved):
        return decoded.size if not is_url(resolved) else None
    try:
        info = read_image_info(resolved)
    except ImageLoadError:
        return None
    return info.width, info.height
