"""Where image bytes come from: local paths, ``file:`` and http(s) URLs.

Values of an image column are resolved against the column's origin
(:func:`resolve_source`) and read with :func:`read_source`; downloads are kept
in an on-disk cache. Every failure is an :class:`ImageLoadError` with a reason
a person understands. :mod:`orangecontrib.imageanalytics.images` re-exports
all of this; import it from there.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import threading
import time
from typing import BinaryIO
from urllib.parse import unquote, urljoin, urlparse
from urllib.request import url2pathname

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HTTP_CACHE_ENV",
    "ImageLoadError",
    "clear_http_cache",
    "http_cache_dir",
    "is_url",
    "open_local",
    "read_source",
    "resolve_source",
    "set_http_cache_dir",
]

#: Largest file (or HTTP body) that is read into memory.
DEFAULT_MAX_BYTES: int = 512 * 1024 * 1024
#: Environment variable that moves the on-disk HTTP cache.
HTTP_CACHE_ENV = "ORANGE_IMAGEANALYTICS_HTTP_CACHE"

_URL_SCHEMES = ("http", "https", "file")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")


class ImageLoadError(Exception):
    """An image could not be read or decoded.

    Attributes
    ----------
    reason : str
        A short, human-readable explanation ("file not found", ...).
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_url(value: str) -> bool:
    """Tell whether ``value`` is a URL rather than a file path.

    Parameters
    ----------
    value : str
        A path or URL.

    Returns
    -------
    bool
        True for ``http:``, ``https:`` and ``file:`` URLs and anything of the
        form ``scheme://...``; False for paths, including Windows drive paths.
    """
    if not isinstance(value, str):
        return False
    match = _SCHEME_RE.match(value)
    if match is None:
        return False
    # a one-letter "scheme" is a Windows drive ("C:\\photos")
    return match.group(1).lower() in _URL_SCHEMES or value[match.end():].startswith("//")


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def resolve_source(value, origin: str | None) -> str | None:
    """Resolve a value of an image column against the column's origin.

    Parameters
    ----------
    value : str or None
        A path or URL, absolute or relative; ``None``, ``""`` and NaN are
        missing values.
    origin : str or None
        The column's ``attributes["origin"]``: a folder or a base URL.

    Returns
    -------
    str or None
        An absolute URL or a path; None for a missing value. Relative values
        are joined to the origin (a URL join when the origin is a URL);
        absolute paths and URLs ignore the origin.
    """
    if _is_missing(value):
        return None
    value = str(value).strip()
    if is_url(value):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded) or _is_missing(origin):
        return expanded
    origin = str(origin).strip()
    if is_url(origin):
        base = origin if origin.endswith("/") else origin + "/"
        relative = value.replace("\\", "/").replace("#", "%23")
        try:
            if urlparse(origin).scheme.lower() == "file":
                return os.path.join(_file_url_to_path(origin), expanded)
            # "#" in a file name is not a fragment
            return urljoin(base, relative)
        except ValueError:
            # a malformed origin ("http://[::1"): read_source says so
            return base + relative
    return os.path.join(os.path.expanduser(origin), expanded)


def _file_url_to_path(url: str) -> str:
    parsed = urlparse(url)
    path = parsed.path
    if parsed.netloc and parsed.netloc.lower() != "localhost":
        path = "//" + parsed.netloc + path  # a UNC share
    return url2pathname(unquote(path)) if os.name == "nt" else unquote(path)


def read_source(source: str, *, timeout: float = 30.0,
                max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read the bytes of a local file, a ``file:`` URL or an http(s) URL.

    HTTP responses are kept in an on-disk cache (see :func:`http_cache_dir`),
    so each URL is downloaded once.

    Parameters
    ----------
    source : str
        A path or URL (already resolved, see :func:`resolve_source`).
    timeout : float
        Seconds allowed for the whole download.
    max_bytes : int
        Larger files are refused.

    Returns
    -------
    bytes
        The file's contents.

    Raises
    ------
    ImageLoadError
        With a reason such as "file not found", "HTTP 404", "timed out".
    """
    if _is_missing(source):
        raise ImageLoadError("missing value")
    source = str(source)
    if is_url(source):
        try:
            scheme = urlparse(source).scheme.lower()
        except ValueError:  # e.g. "Invalid IPv6 URL"
            raise ImageLoadError("invalid URL") from None
        if scheme == "file":
            return _read_file(_file_url_to_path(source), max_bytes)
        if scheme in ("http", "https"):
            return _read_http(source, timeout, max_bytes)
        raise ImageLoadError(f"unsupported URL scheme: {scheme}")
    return _read_file(source, max_bytes)


def _too_big(size: int) -> ImageLoadError:
    return ImageLoadError(f"file too large: {size / 2**20:.0f} MB")


def open_local(path: str) -> BinaryIO:
    """Open a local file for reading in binary mode.

    Parameters
    ----------
    path : str
        A file path.

    Returns
    -------
    BinaryIO
        The open file; the caller closes it.

    Raises
    ------
    ImageLoadError
        With a reason: "file not found", "permission denied", "not a file", ...
    """
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except IsADirectoryError:
        raise ImageLoadError("not a file") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as e:
        raise ImageLoadError(f"cannot read file: {e.strerror or e}") from None


def _read_file(path: str, max_bytes: int) -> bytes:
    with open_local(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise _too_big(size)
            data = f.read(max_bytes + 1)
        except IsADirectoryError:
            raise ImageLoadError("not a file") from None
        except OSError as e:
            raise ImageLoadError(f"cannot read file: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise _too_big(len(data))
    if not data:
        raise ImageLoadError("empty file")
    return data


# ---------------------------------------------------------------- HTTP

_http_lock = threading.Lock()
_http_client = None
_cache_dir_override: str | None = None


def set_http_cache_dir(path: str | None) -> None:
    """Move the on-disk HTTP cache to ``path``; None restores the default."""
    global _cache_dir_override
    _cache_dir_override = None if path is None else os.fspath(path)


def http_cache_dir() -> str:
    """Return the folder of the on-disk HTTP cache.

    It is the folder given to :func:`set_http_cache_dir`, else the environment
    variable ``ORANGE_IMAGEANALYTICS_HTTP_CACHE``, else ``http`` in the
    add-on's cache folder (``embedders.cache.cache_folder()``).
    """
    if _cache_dir_override is not None:
        return _cache_dir_override
    env = os.environ.get(HTTP_CACHE_ENV)
    if env:
        return env
    from orangecontrib.imageanalytics.embedders.cache import cache_folder

    return os.path.join(cache_folder(), "http")


_HEX_DIGITS = frozenset("0123456789abcdef")


def _is_cache_entry(shard: str, name: str) -> bool:
    """Whether ``shard/name`` is a file that :func:`_cache_put` wrote."""
    if name.startswith("tmp") and name.endswith(".part"):  # an unfinished one
        return True
    return len(name) == 64 and name.startswith(shard) and set(name) <= _HEX_DIGITS


def clear_http_cache() -> None:
    """Delete every downloaded image kept in the HTTP cache.

    Only the cache's own files are removed (and its folders, once empty):
    the cache folder may have been set to one that holds other files.
    """
    root = http_cache_dir()
    try:
        shards = os.listdir(root)
    except OSError:
        return
    for shard in shards:
        if len(shard) != 2 or not set(shard) <= _HEX_DIGITS:
            continue
        folder = os.path.join(root, shard)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if _is_cache_entry(shard, name):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass
        try:
            os.rmdir(folder)  # only when nothing else is in it
        except OSError:
            pass
    try:
        os.rmdir(root)
    except OSError:
        pass


def _cache_path(url: str) -> str:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    return os.path.join(http_cache_dir(), digest[:2], digest)


def _cache_get(url: str) -> bytes | None:
    try:
        with open(_cache_path(url), "rb") as f:
            return f.read()
    except OSError:
        return None


def _cache_put(url: str, data: bytes) -> None:
    path = _cache_path(url)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            # atomic: a reader never sees a half-written entry
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a cache that cannot be written only costs a download


def _client():
    global _http_client
    with _http_lock:
        if _http_client is None:
            import httpx

            _http_client = httpx.Client(
                follow_redirects=True,
                headers={"User-Agent": "Orange3-ImageAnalytics"},
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        return _http_client


def _read_http(url: str, timeout: float, max_bytes: int) -> bytes:
    cached = _cache_get(url)
    if cached:
        return cached
    import httpx

    deadline = time.monotonic() + timeout
    try:
        with _client().stream("GET", url, timeout=timeout) as response:
            if response.status_code >= 400:
                raise ImageLoadError(f"HTTP {response.status_code}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_big(int(length))
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise _too_big(total)
                if time.monotonic() > deadline:
                    raise ImageLoadError("timed out")
                chunks.append(chunk)
            # an HTML page (a login or error page answered with 200) would
            # otherwise stay cached forever in place of the image
            no_store = ("no-store" in response.headers.get("Cache-Control", "").lower()
                        or response.headers.get("Content-Type", "").startswith("text/"))
    except httpx.TimeoutException:
        raise ImageLoadError("timed out") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise ImageLoadError("invalid URL") from None
    except httpx.TooManyRedirects:
        raise ImageLoadError("too many redirects") from None
    except httpx.TransportError as e:
        raise ImageLoadError(f"connection failed: {e or type(e).__name__}") from None
    except httpx.HTTPError as e:
        raise ImageLoadError(f"download failed: {e or type(e).__name__}") from None
    data = b"".join(chunks)
    if not data:
        raise ImageLoadError("empty file")
    if not no_store:
        _cache_put(url, data)
    return data


