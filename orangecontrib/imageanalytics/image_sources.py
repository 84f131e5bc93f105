"""Where image bytes come from: local paths, ``file:`` and http(s) URLs.

Values of an image column are resolved against the column's origin
(:func:`resolve_source`) and read with :func:`read_source`; downloads are kept
in an on-disk cache. Every failure is an :class:`ImageLoadError` with a reason
a person understands. :mod:`orangecontrib.imageanalytics.images` re-exports
all of this; import it from there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import unquote, urljoin, urlparse
from urllib.request import url2pathname

from orangecontrib.imageanalytics.cache_dirs import cache_folder, write_atomically

__all__ = [
    "DEFAULT_HTTP_CACHE_BYTES",
    "DEFAULT_MAX_BYTES",
    "HTTP_CACHE_ENV",
    "ImageLoadError",
    "clear_http_cache",
    "http_cache_dir",
    "http_cache_max_bytes",
    "is_url",
    "open_local",
    "read_source",
    "resolve_source",
    "set_http_cache_dir",
    "set_http_cache_max_bytes",
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

    HTTP responses are kept in an on-disk cache bounded in bytes (see
    :func:`http_cache_dir`): a kept copy is used while the server says it is
    fresh, else the server is asked whether it changed (ETag,
    Last-Modified) and sends new bytes only if it did.

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
#
# The download cache is a folder of files, one per URL (named by the URL's
# SHA-256), each a header line of JSON (the validators and how long the copy
# is fresh) and the body. A copy is used without asking the server only
# while the server's Cache-Control (or Expires) says it is fresh; otherwise
# the server is asked with its ETag / Last-Modified and answers "304 Not
# Modified" (the copy is used) or sends the new bytes: an image edited at
# the same address is never served stale, and one that did not change is not
# downloaded again. No freshness is guessed where the server gives none. When
# the server cannot be reached, the copy is used unless the server said it
# must be revalidated (no-cache, must-revalidate). The folder is bounded in
# bytes: a file's modification time is its last use, the least recently used
# go first.

#: Default bound on the bytes of the downloads kept on disk.
DEFAULT_HTTP_CACHE_BYTES: int = 1024 * 2**20

_http_lock = threading.Lock()
_http_client = None
_cache_dir_override: str | None = None
_cache_max_bytes: int = DEFAULT_HTTP_CACHE_BYTES
# bytes written since the folder was last counted; None until this process
# first writes (then what earlier runs left is counted too)
_added: int | None = None
_added_lock = threading.Lock()
# the folder is counted again after this share of the bound was written
_EVICT_SLACK = 0.05
_last_stamp = 0
_stamp_lock = threading.Lock()
_ENTRY_MAGIC = b"orange-imageanalytics-http 1\n"


def set_http_cache_dir(path: str | None) -> None:
    """Move the on-disk HTTP cache to ``path``; None restores the default."""
    global _cache_dir_override
    _cache_dir_override = None if path is None else os.fspath(path)


def http_cache_dir() -> str:
    """Return the folder of the on-disk HTTP cache.

    It is the folder given to :func:`set_http_cache_dir`, else the environment
    variable ``ORANGE_IMAGEANALYTICS_HTTP_CACHE``, else ``http`` in the
    add-on's cache folder (:func:`.cache_dirs.cache_folder`).
    """
    if _cache_dir_override is not None:
        return _cache_dir_override
    env = os.environ.get(HTTP_CACHE_ENV)
    if env:
        return env
    return os.path.join(cache_folder(), "http")


def set_http_cache_max_bytes(max_bytes: int | None) -> None:
    """Bound the on-disk HTTP cache to ``max_bytes``; None restores
    :data:`DEFAULT_HTTP_CACHE_BYTES`. Takes effect at the next download."""
    global _cache_max_bytes, _added
    _cache_max_bytes = DEFAULT_HTTP_CACHE_BYTES if max_bytes is None else int(max_bytes)
    with _added_lock:
        _added = None


def http_cache_max_bytes() -> int:
    """The bound, in bytes, on the on-disk HTTP cache."""
    return _cache_max_bytes


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


@dataclass(frozen=True)
class _Entry:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    fresh_until: float = 0.0  # seconds since the epoch
    revalidate: bool = False  # never used without the server's word

    def header(self) -> bytes:
        meta = {"etag": self.etag, "last_modified": self.last_modified,
                "fresh_until": self.fresh_until, "revalidate": self.revalidate}
        return _ENTRY_MAGIC + json.dumps(meta).encode("ascii") + b"\n"


def _cache_get(url: str) -> _Entry | None:
    try:
        with open(_cache_path(url), "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(_ENTRY_MAGIC):
        # written by an older version: the bytes with nothing to revalidate
        # them by; downloaded again when the server can be reached
        return _Entry(data) if data else None
    end = data.find(b"\n", len(_ENTRY_MAGIC))
    try:
        meta = json.loads(data[len(_ENTRY_MAGIC):end])
        entry = _Entry(data[end + 1:], meta["etag"], meta["last_modified"],
                       float(meta["fresh_until"]), bool(meta["revalidate"]))
    except (ValueError, KeyError, TypeError):
        return None  # damaged: a miss
    return entry if end > 0 and entry.body else None


def _stamp() -> int:
    """Now in nanoseconds, later than any stamp given before in this process
    (file times are often coarser than the order of uses)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def _touch(path: str) -> None:
    stamp = _stamp()
    try:
        os.utime(path, ns=(stamp, stamp))
    except OSError:
        pass


def _cache_put(url: str, entry: _Entry) -> None:
    path = _cache_path(url)
    data = entry.header() + entry.body
    try:
        # ".part": eviction knows an unfinished entry by it
        write_atomically(path, data, suffix=".part")
    except OSError:
        return  # a cache that cannot be written only costs a download
    _touch(path)
    global _added
    with _added_lock:
        if _added is None:
            check, _added = True, 0
        else:
            _added += len(data)
            check = _added > _cache_max_bytes * _EVICT_SLACK
            if check:
                _added = 0
    if check:
        _evict()


def _cache_drop(url: str) -> None:
    try:
        os.unlink(_cache_path(url))
    except OSError:
        pass


def _evict() -> None:
    """Delete the least recently used downloads beyond the bound."""
    root = http_cache_dir()
    entries, total = [], 0
    try:
        shards = os.listdir(root)
    except OSError:
        return
    for shard in shards:
        if len(shard) != 2 or not set(shard) <= _HEX_DIGITS:
            continue
        try:
            with os.scandir(os.path.join(root, shard)) as it:
                for item in it:
                    # unfinished files belong to writers still at work
                    if item.name.endswith(".part") or not _is_cache_entry(shard, item.name):
                        continue
                    try:
                        st = item.stat()
                    except OSError:
                        continue
                    entries.append((st.st_mtime_ns, st.st_size, item.path))
                    total += st.st_size
        except OSError:
            continue
    entries.sort()
    for _, size, path in entries:
        if total <= _cache_max_bytes:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            continue  # in use (Windows): its bytes stay counted
        total -= size


def _cache_control(headers) -> dict[str, str]:
    directives = {}
    for part in ",".join(headers.get_list("Cache-Control")).split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip().strip('"')
    if not directives and "no-cache" in headers.get("Pragma", "").lower():
        directives["no-cache"] = ""  # HTTP/1.0
    return directives


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        return 0.0


def _fresh_until(headers, directives: dict[str, str], now: float) -> float:
    """Until when a response may be used without asking the server."""
    if "no-cache" in directives:
        return 0.0
    if "max-age" in directives:
        lifetime = _seconds(directives["max-age"])
    else:
        expires = _http_date(headers.get("Expires"))
        if expires is None:
            # no freshness given: ask every time (no heuristic lifetime, so
            # that an edit is seen at once)
            return 0.0
        lifetime = expires - (_http_date(headers.get("Date")) or now)
    lifetime -= _seconds(headers.get("Age", "0"))
    return now + lifetime if lifetime > 0 else 0.0


class _Unreachable(ImageLoadError):
    """The server did not answer (connection failed, timed out)."""


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
    entry = _cache_get(url)
    if entry is not None and time.time() < entry.fresh_until:
        _touch(_cache_path(url))
        return entry.body
    conditions = {}
    if entry is not None:
        if entry.etag:
            conditions["If-None-Match"] = entry.etag
        if entry.last_modified:
            conditions["If-Modified-Since"] = entry.last_modified
    try:
        status, data, headers = _download(url, timeout, max_bytes, conditions)
    except _Unreachable:
        if entry is None or entry.revalidate:
            raise
        return entry.body  # the server could not say that it changed
    now = time.time()
    directives = _cache_control(headers)
    if status == 304 and entry is not None:
        renewed = _Entry(entry.body, headers.get("ETag") or entry.etag,
                         headers.get("Last-Modified") or entry.last_modified,
                         _fresh_until(headers, directives, now),
                         "no-cache" in directives or "must-revalidate" in directives
                         or entry.revalidate)
        if "no-store" in directives:
            _cache_drop(url)
        elif renewed != entry:
            _cache_put(url, renewed)
        else:
            _touch(_cache_path(url))
        return entry.body
    if status >= 300:  # 304 to a request that set no condition, 4xx, 5xx
        raise ImageLoadError(f"HTTP {status}")
    if not data:
        raise ImageLoadError("empty file")
    # an HTML page (a login or error page answered with 200) would
    # otherwise be kept in place of the image
    if "no-store" in directives or headers.get("Content-Type", "").startswith("text/"):
        if entry is not None:
            _cache_drop(url)  # outdated, and not to be kept
    else:
        _cache_put(url, _Entry(
            data, headers.get("ETag"), headers.get("Last-Modified"),
            _fresh_until(headers, directives, now),
            "no-cache" in directives or "must-revalidate" in directives))
    return data


def _download(url: str, timeout: float, max_bytes: int,
              conditions: dict[str, str]) -> tuple[int, bytes, object]:
    """GET ``url``: its status, body (empty for 304 and errors) and headers."""
    import httpx

    deadline = time.monotonic() + timeout
    try:
        with _client().stream("GET", url, timeout=timeout, headers=conditions) as response:
            if response.status_code >= 300:
                return response.status_code, b"", response.headers
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_big(int(length))
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise _too_big(total)
                if time.monotonic() > deadline:
                    raise _Unreachable("timed out")
                chunks.append(chunk)
            return response.status_code, b"".join(chunks), response.headers
    except httpx.TimeoutException:
        raise _Unreachable("timed out") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise ImageLoadError("invalid URL") from None
    except httpx.TooManyRedirects:
        raise ImageLoadError("too many redirects") from None
    except httpx.TransportError as e:
        raise _Unreachable(f"connection failed: {e or type(e).__name__}") from None
    except httpx.HTTPError as e:
        raise ImageLoadError(f"download failed: {e or type(e).__name__}") from None
