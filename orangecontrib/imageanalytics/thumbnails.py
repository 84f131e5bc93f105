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
keeps size and modification time in place is not seen.) The store is
:class:`~orangecontrib.imageanalytics.sqlite_store.SQLiteLRUStore`, as for
the embedding vectors: bounded in bytes, the least recently used entries go
first; SQLite's locking (WAL, a busy timeout) makes it safe for several
threads and processes at once; a damaged file is replaced with an empty one,
and a cache that cannot be used is never an error for the caller.
"""

from __future__ import annotations

import hashlib
import io
import os
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
from orangecontrib.imageanalytics.sqlite_store import Layout, SQLiteLRUStore

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


#: Longest side, in pixels, of the thumbnails that are made and cached.
SIZE_BUCKETS: tuple[int, ...] = (64, 128, 256, 512, 1024)

#: Environment variable naming the folder of the thumbnail cache.
THUMBNAIL_CACHE_ENV = "ORANGE_IMAGEANALYTICS_THUMBNAIL_CACHE"

#: Default bound on the cached thumbnails' bytes.
DEFAULT_MAX_BYTES = 512 * 2**20
CACHE_FILENAME = "thumbnails.sqlite"
_JPEG_QUALITY = 90


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


#: The table as every version of the add-on wrote it.
LAYOUT = Layout(
    table="thumbnails",
    columns=(("data", "BLOB NOT NULL"), ("width", "INTEGER"), ("height", "INTEGER"),
             ("nbytes", "INTEGER NOT NULL")),
    size_column="nbytes",
    size="{row}.nbytes",
    used_column="used",
)


class ThumbnailCache:
    """Thumbnails on disk, bounded in bytes, least recently used out first
    (a :class:`~orangecontrib.imageanalytics.sqlite_store.SQLiteLRUStore`:
    each thread reads through its own connection, so worker threads read in
    parallel).

    Parameters
    ----------
    folder : str, optional
        Where the database lives; by default :func:`default_cache_folder`,
        looked up when the cache is used (so the environment may change).
    max_bytes : int
        The encoded thumbnails' total size is kept below this bound.
    """

    def __init__(self, folder: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES):
        self._folder = os.fspath(folder) if folder is not None else None
        self.store = SQLiteLRUStore(lambda: self.path, LAYOUT, max_bytes=max_bytes,
                                    timeout=10.0, label="Thumbnail cache")

    @property
    def folder(self) -> str:
        return self._folder if self._folder is not None else default_cache_folder()

    @property
    def path(self) -> str:
        return os.path.join(self.folder, CACHE_FILENAME)

    @property
    def max_bytes(self) -> int:
        return self.store.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self.store.max_bytes = int(value)

    def __repr__(self) -> str:
        return f"ThumbnailCache({self._folder!r}, max_bytes={self.max_bytes})"

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        self.store.close()

    def get(self, key: str) -> Thumbnail | None:
        """The cached thumbnail for ``key``, or None."""
        entry = self.store.get(key)
        if entry is None:
            return None
        data, width, height, _ = entry
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
        self.store.put_many([(key, data, width, height, len(data))])

    def evict(self) -> None:
        """Remove the least recently used thumbnails beyond ``max_bytes``."""
        self.store.evict()

    def total_bytes(self) -> int:
        """The encoded thumbnails' total size."""
        return self.store.total_bytes()

    def __len__(self) -> int:
        return len(self.store)

    def clear(self) -> None:
        """Remove every thumbnail."""
        self.store.clear()


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
