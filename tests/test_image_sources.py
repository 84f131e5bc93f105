"""Tests for image_sources.py: resolving, reading files and URLs, the HTTP
cache (revalidated, bounded)."""

import contextlib
import hashlib
import http.server
import io
import os
import socket
import threading
import time
from typing import ClassVar

import pytest
from PIL import Image

from orangecontrib.imageanalytics import image_sources, images
from orangecontrib.imageanalytics.images import (
    ImageLoadError,
    LoadResult,
    is_url,
    load_image,
    read_image_info,
    read_source,
    resolve_source,
)


def png_bytes(size=(64, 48), color=(0, 0, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()

# ---------------------------------------------------------------- sources


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_resolve_missing(value):
    assert resolve_source(value, "/some/folder") is None


def test_resolve_relative_path_joins_origin(tmp_path):
    origin = str(tmp_path)
    assert resolve_source("cats/a.jpg", origin) == os.path.join(origin, "cats/a.jpg")
    assert resolve_source("a.jpg", None) == "a.jpg"
    assert resolve_source("a.jpg", "") == "a.jpg"
    assert resolve_source("a.jpg", float("nan")) == "a.jpg"


def test_resolve_absolute_ignores_origin(tmp_path):
    absolute = str(tmp_path / "x.png")
    assert resolve_source(absolute, "/elsewhere") == absolute
    assert resolve_source("http://h.org/a.jpg", "/elsewhere") == "http://h.org/a.jpg"
    assert resolve_source("https://h.org/a.jpg", "http://other.org/") == "https://h.org/a.jpg"


@pytest.mark.parametrize("origin", ["http://h.org/img", "http://h.org/img/"])
def test_resolve_url_origin(origin):
    assert resolve_source("cats/a b.jpg", origin) == "http://h.org/img/cats/a b.jpg"
    assert resolve_source("cats\\a.jpg", origin) == "http://h.org/img/cats/a.jpg"
    assert resolve_source("a #1.jpg", origin) == "http://h.org/img/a %231.jpg"


def test_resolve_file_url_origin(tmp_path):
    origin = (tmp_path / "my photos").as_uri()
    assert resolve_source("a.jpg", origin) == os.path.join(str(tmp_path / "my photos"), "a.jpg")


def test_is_url():
    assert is_url("http://a.org/x.jpg")
    assert is_url("HTTPS://a.org/x.jpg")
    assert is_url("file:///tmp/x.jpg")
    assert is_url("ftp://a.org/x.jpg")
    assert not is_url("C:\\photos\\x.jpg")
    assert not is_url("C:/photos/x.jpg")
    assert not is_url("/tmp/x.jpg")
    assert not is_url("photo:1.jpg")
    assert not is_url("cats/a.jpg")


def test_read_source_paths(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert read_source(str(path)) == b"abc"
    assert read_source(path.as_uri()) == b"abc"
    with pytest.raises(ImageLoadError, match="file too large"):
        read_source(str(path), max_bytes=2)
    with pytest.raises(ImageLoadError, match="unsupported URL scheme: ftp"):
        read_source("ftp://a.org/x.jpg")
    with pytest.raises(ImageLoadError, match="not a file"):
        read_source(str(tmp_path))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root (or a non-POSIX system) ignores file permissions")
def test_permission_denied(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes())
    path.chmod(0)
    try:
        assert load_image(str(path)).error == "permission denied"
    finally:
        path.chmod(0o600)


def test_permission_denied_reason(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(image_sources, "open", refuse, raising=False)
    assert load_image(str(tmp_path / "x.png")).error == "permission denied"
    with pytest.raises(ImageLoadError, match="permission denied"):
        read_image_info(str(tmp_path / "x.png"))


# ---------------------------------------------------------------- HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` at /ok..., /slow... and /images/...; ``/n/<i>`` serves
    bytes of its own. ``etag``, ``modified`` (a Last-Modified date) and
    ``cache_control`` steer what it says of them; it answers conditional
    requests with 304. ``answers`` records (path, status, If-None-Match,
    If-Modified-Since) of each."""
    hits: ClassVar[dict] = {}
    answers: ClassVar[list] = []
    body = b""
    etag = True
    modified = None
    cache_control = None

    def do_GET(self):
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/ok-redirected.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/page"):
            page = b"<html><body>Please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif self.path.startswith(("/ok", "/slow", "/images/", "/n/")):
            body = self.body
            if self.path.startswith("/n/"):
                body = self.path.encode() * 200
            self.send_content(body)
        else:
            self.send_error(404)

    def send_content(self, body):
        cls = type(self)
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if cls.etag else None
        asked_etag = self.headers.get("If-None-Match")
        asked_date = self.headers.get("If-Modified-Since")
        if asked_etag is not None:
            unchanged = asked_etag == etag
        else:
            unchanged = asked_date is not None and asked_date == cls.modified
        status = 304 if unchanged else 200
        cls.answers.append((self.path, status, asked_etag, asked_date))
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        if cls.modified:
            self.send_header("Last-Modified", cls.modified)
        if cls.cache_control:
            self.send_header("Cache-Control", cls.cache_control)
        if status == 304:
            self.end_headers()
            return
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (a body over its max_bytes)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving():
    """The handler on 127.0.0.1 (HTTP/1.0: every connection closes after its
    answer, so nothing is left reachable once this ends)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server(tmp_path):
    images.set_http_cache_dir(str(tmp_path / "http-cache"))
    _Handler.hits = {}
    _Handler.answers = []
    _Handler.body = png_bytes()
    _Handler.etag, _Handler.modified, _Handler.cache_control = True, None, None
    try:
        with serving() as base:
            yield base, _Handler.hits
    finally:
        images.set_http_cache_dir(None)
        image_sources.set_http_cache_max_bytes(None)


def test_http_ok_and_cached(server, tmp_path):
    base, hits = server
    result = load_image(base + "/ok.png")
    assert result.error is None and result.image.size == (64, 48)
    assert result.image.getpixel((60, 40)) == (0, 0, 255)
    assert read_source(base + "/ok.png") == _Handler.body
    # the second read asked whether it changed; the bytes came from the disk cache
    assert [status for _, status, _, _ in _Handler.answers] == [200, 304]
    assert any(files for _, _, files in os.walk(tmp_path / "http-cache"))
    images.clear_http_cache()
    assert not (tmp_path / "http-cache").exists()
    assert read_source(base + "/ok.png") == _Handler.body
    assert _Handler.answers[-1] == ("/ok.png", 200, None, None)
    assert hits["/ok.png"] == 3


def test_edited_image_at_the_same_url_is_seen_etag(server):
    base, _ = server
    url = base + "/ok.png"
    assert load_image(url).image.getpixel((1, 1)) == (0, 0, 255)
    first_etag = f'"{hashlib.sha256(_Handler.body).hexdigest()[:16]}"'
    _Handler.body = png_bytes(color=(255, 0, 0))
    assert load_image(url).image.getpixel((1, 1)) == (255, 0, 0)
    assert _Handler.answers[1] == ("/ok.png", 200, first_etag, None)
    # unchanged since: not sent again
    assert load_image(url).image.getpixel((1, 1)) == (255, 0, 0)
    assert _Handler.answers[2][1] == 304


def test_edited_image_at_the_same_url_is_seen_last_modified(server):
    base, _ = server
    url = base + "/ok.png"
    _Handler.etag = False
    _Handler.modified = "Wed, 02 Dec 2026 10:00:00 GMT"
    assert read_source(url) == _Handler.body
    assert read_source(url) == _Handler.body
    assert _Handler.answers[1] == ("/ok.png", 304, None, "Wed, 02 Dec 2026 10:00:00 GMT")
    _Handler.body = png_bytes(color=(0, 255, 0))
    _Handler.modified = "Wed, 02 Dec 2026 11:00:00 GMT"
    assert load_image(url).image.getpixel((1, 1)) == (0, 255, 0)
    assert _Handler.answers[2][1] == 200


def test_edited_image_without_validators_is_downloaded_again(server):
    base, _ = server
    url = base + "/ok.png"
    _Handler.etag = False
    assert read_source(url) == _Handler.body
    _Handler.body = png_bytes(color=(0, 255, 0))
    assert read_source(url) == _Handler.body
    assert [a[1:] for a in _Handler.answers] == [(200, None, None)] * 2


def test_cache_control_max_age_is_honoured(server, monkeypatch):
    base, hits = server
    url = base + "/ok.png"
    _Handler.cache_control = "public, max-age=600"
    old = _Handler.body
    assert read_source(url) == old
    _Handler.body = png_bytes(color=(0, 255, 0))
    # fresh for ten minutes: the server is not asked
    assert read_source(url) == old
    assert hits["/ok.png"] == 1
    later = time.time() + 601
    monkeypatch.setattr(image_sources.time, "time", lambda: later)
    assert read_source(url) == _Handler.body
    assert hits["/ok.png"] == 2
    # and fresh again from then on
    assert read_source(url) == _Handler.body
    assert hits["/ok.png"] == 2


@pytest.mark.parametrize("cache_control", ["no-cache", "max-age=600, no-cache", "max-age=0"])
def test_cache_control_revalidate(server, cache_control):
    base, hits = server
    _Handler.cache_control = cache_control
    for _ in range(3):
        assert read_source(base + "/ok.png") == _Handler.body
    assert [a[1] for a in _Handler.answers] == [200, 304, 304]


def test_cache_control_no_store_keeps_nothing(server, tmp_path):
    base, hits = server
    assert read_source(base + "/ok.png") == _Handler.body
    _Handler.cache_control = "no-store"
    _Handler.body = png_bytes(color=(0, 255, 0))
    assert read_source(base + "/ok.png") == _Handler.body
    # the older copy went too
    assert not any(files for _, _, files in os.walk(tmp_path / "http-cache"))
    assert read_source(base + "/ok.png") == _Handler.body
    # asked again without a condition: nothing was kept to compare with
    assert _Handler.answers[2] == ("/ok.png", 200, None, None)


def cache_files(folder):
    return {os.path.join(root, name): os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(folder) for name in names}


def test_http_cache_bounded_least_recently_used_out(server, tmp_path):
    base, hits = server
    _Handler.cache_control = "max-age=600"  # reads of kept copies ask nobody
    assert read_source(base + "/n/0") == b"/n/0" * 200
    (entry_size,) = cache_files(tmp_path / "http-cache").values()
    image_sources.set_http_cache_max_bytes(3 * entry_size + entry_size // 2)
    read_source(base + "/n/1")
    read_source(base + "/n/2")
    read_source(base + "/n/0")  # used again: /n/1 is now the least recent
    read_source(base + "/n/3")
    kept = sum(cache_files(tmp_path / "http-cache").values())
    assert kept <= image_sources.http_cache_max_bytes()
    for n in (0, 2, 3):
        assert read_source(base + f"/n/{n}") == f"/n/{n}".encode() * 200
    assert [hits[f"/n/{n}"] for n in range(4)] == [1, 1, 1, 1]
    assert read_source(base + "/n/1") == b"/n/1" * 200
    assert hits["/n/1"] == 2


def test_http_cache_over_its_bound_shrinks(server, tmp_path):
    # a cache left larger by an earlier run (or a lower bound) shrinks at
    # the next download
    base, _ = server
    _Handler.cache_control = "max-age=600"
    for n in range(6):
        read_source(base + f"/n/{n}")
    image_sources.set_http_cache_max_bytes(1000)
    read_source(base + "/n/6")
    assert sum(cache_files(tmp_path / "http-cache").values()) <= 1000
    assert read_source(base + "/n/6") == b"/n/6" * 200


def test_http_cache_bound_deletes_only_downloads(server, tmp_path):
    # the cache folder may be set to one that holds the user's files
    base, _ = server
    folder = tmp_path / "mine"
    (folder / "ab").mkdir(parents=True)
    (folder / "notes.txt").write_bytes(b"mine" * 1000)
    (folder / "ab" / "keep.jpg").write_bytes(b"mine" * 1000)
    images.set_http_cache_dir(str(folder))
    image_sources.set_http_cache_max_bytes(1000)
    for n in range(4):
        assert read_source(base + f"/n/{n}") == f"/n/{n}".encode() * 200
    assert (folder / "notes.txt").read_bytes() == b"mine" * 1000
    assert (folder / "ab" / "keep.jpg").read_bytes() == b"mine" * 1000
    mine = {str(folder / "notes.txt"), str(folder / "ab" / "keep.jpg")}
    downloads = {path: size for path, size in cache_files(folder).items()
                 if path not in mine}
    assert 0 < sum(downloads.values()) <= 1000


@pytest.mark.parametrize("kept", [b"bytes kept by an older version",
                                  image_sources._ENTRY_MAGIC + b"{damaged\n"])
def test_older_or_damaged_cache_entry_is_replaced(server, kept):
    base, _ = server
    url = base + "/ok.png"
    path = image_sources._cache_path(url)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(kept)
    assert read_source(url) == _Handler.body
    assert _Handler.answers == [("/ok.png", 200, None, None)]
    assert read_source(url) == _Handler.body
    assert _Handler.answers[-1][1] == 304


@pytest.mark.parametrize("cache_control, served", [(None, True),
                                                   ("must-revalidate", False),
                                                   ("no-cache", False)])
def test_unreachable_server(server, cache_control, served):
    # the kept copy stands in while its server cannot be asked, unless the
    # server said that it must not
    _Handler.cache_control = cache_control
    with serving() as base:
        assert read_source(base + "/ok.png") == _Handler.body
    if served:
        assert read_source(base + "/ok.png", timeout=5) == _Handler.body
    else:
        with pytest.raises(ImageLoadError, match="connection failed"):
            read_source(base + "/ok.png", timeout=5)
    assert len(_Handler.answers) == 1


def test_clear_http_cache_deletes_only_downloads(server, tmp_path):
    # the cache folder may be set to a folder that holds the user's files
    base, hits = server
    folder = tmp_path / "mine"
    (folder / "ab").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "ab" / "keep.jpg").write_bytes(b"mine")
    images.set_http_cache_dir(str(folder))
    assert read_source(base + "/ok.png") == _Handler.body
    images.clear_http_cache()
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "ab" / "keep.jpg").read_bytes() == b"mine"
    # the download itself is gone
    assert read_source(base + "/ok.png") == _Handler.body
    assert hits["/ok.png"] == 2


def test_http_relative_to_url_origin(server):
    base, hits = server
    assert load_image("cats/a.png", origin=base + "/images").error is None
    assert hits == {"/images/cats/a.png": 1}


def test_http_404_not_cached(server):
    base, hits = server
    assert load_image(base + "/missing.png") == LoadResult(None, "HTTP 404")
    with pytest.raises(ImageLoadError, match="HTTP 404"):
        read_source(base + "/missing.png")
    assert hits["/missing.png"] == 2


def test_http_redirect_followed(server):
    base, hits = server
    assert read_source(base + "/redirect") == _Handler.body
    assert hits == {"/redirect": 1, "/ok-redirected.png": 1}


def test_http_html_page_not_cached(server):
    base, hits = server
    assert load_image(base + "/page.jpg").error == "not an image"
    assert load_image(base + "/page.jpg").error == "not an image"
    assert hits["/page.jpg"] == 2


def test_http_max_bytes(server):
    base, _ = server
    with pytest.raises(ImageLoadError, match="file too large"):
        read_source(base + "/ok.png", max_bytes=10)


def test_http_timeout(server):
    base, _ = server
    start = time.monotonic()
    assert load_image(base + "/slow.png", timeout=0.2).error == "timed out"
    assert time.monotonic() - start < 0.9


def test_http_connection_refused(tmp_path):
    images.set_http_cache_dir(str(tmp_path))
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        error = load_image(f"http://127.0.0.1:{port}/a.png", timeout=5).error
        assert error.startswith("connection failed: ")
    finally:
        images.set_http_cache_dir(None)


def test_http_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(images.HTTP_CACHE_ENV, str(tmp_path / "env"))
    assert images.http_cache_dir() == str(tmp_path / "env")
    images.set_http_cache_dir(str(tmp_path / "explicit"))
    try:
        assert images.http_cache_dir() == str(tmp_path / "explicit")
    finally:
        images.set_http_cache_dir(None)
    monkeypatch.delenv(images.HTTP_CACHE_ENV)
    assert images.http_cache_dir().endswith("http")


@pytest.mark.parametrize("value, origin", [
    ("http://[::1/a.png", None),          # a broken URL in the column
    ("a.png", "http://[::1/photos/"),     # a broken origin
])
def test_malformed_url_has_a_reason(value, origin):
    # resolving never raises (callers resolve whole columns at once) ...
    source = resolve_source(value, origin)
    assert isinstance(source, str)
    # ... and reading says what is wrong
    with pytest.raises(ImageLoadError, match="^invalid URL$"):
        read_source(source)
    assert load_image(value, origin=origin).error == "invalid URL"
