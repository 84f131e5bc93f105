"""Tests for image_sources.py: resolving, reading files and URLs, the HTTP cache."""

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


def png_bytes(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (0, 0, 255)).save(buffer, "PNG")
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
    hits: ClassVar[dict] = {}
    body = b""

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
        elif self.path.startswith(("/ok", "/slow", "/images/")):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    images.set_http_cache_dir(str(tmp_path / "http-cache"))
    _Handler.hits = {}
    _Handler.body = png_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        images.set_http_cache_dir(None)


def test_http_ok_and_cached(server, tmp_path):
    base, hits = server
    result = load_image(base + "/ok.png")
    assert result.error is None and result.image.size == (64, 48)
    assert result.image.getpixel((60, 40)) == (0, 0, 255)
    assert read_source(base + "/ok.png") == _Handler.body
    assert hits["/ok.png"] == 1  # second read came from the disk cache
    assert any(files for _, _, files in os.walk(tmp_path / "http-cache"))
    images.clear_http_cache()
    assert not (tmp_path / "http-cache").exists()
    assert read_source(base + "/ok.png") == _Handler.body
    assert hits["/ok.png"] == 2


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
