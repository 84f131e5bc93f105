"""Good and bad image files for the thumbnail and viewer tests, made on the fly."""
from __future__ import annotations

import contextlib
import http.server
import io
import os
import struct
import threading
import zlib

from PIL import Image


def write_photo(path, size=(64, 48), color=(200, 30, 30), fmt=None, **kwargs) -> str:
    Image.new("RGB", size, color).save(path, fmt, **kwargs)
    return str(path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width × height pixels (a decompression bomb's header)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def bad_files(folder) -> dict[str, str]:
    """name → file for each kind of bad input (the value is the file name)."""
    folder = str(folder)
    out = {}

    def put(name, data):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        out[name] = name

    put("zero.jpg", b"")
    buf = io.BytesIO()
    Image.new("RGB", (200, 150), "blue").save(buf, "JPEG")
    put("truncated.jpg", buf.getvalue()[:300])
    put("text.jpg", b"this is not an image at all\n" * 10)
    put("bomb.png", png_header_only(40000, 40000))
    out["missing.jpg"] = "missing.jpg"
    return out


def write_panorama(path) -> str:
    Image.new("RGB", (30000, 500), (10, 120, 200)).save(path, "PNG", compress_level=1)
    return str(path)


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def image_server(files: dict[str, bytes]):
    """An HTTP server on 127.0.0.1 serving ``files`` (path → bytes); others 404."""
    handler = type("Handler", (_Handler,), {"files": files})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
