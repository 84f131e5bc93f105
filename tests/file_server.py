"""A file server on 127.0.0.1 for download tests: byte ranges, dropped
connections and 404s on request."""
import contextlib
import http.server
import re
import socket
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` at /w.pth with byte ranges.

    Class attributes steer it: ``drop_after`` bytes are sent before the
    connection is closed mid-body (for the first ``drops`` requests),
    ``honour_range`` makes it answer ranges with 206, ``ranges`` records the
    Range header of every request.
    """
    protocol_version = "HTTP/1.1"
    payload = b""
    drop_after = None
    drops = 0
    honour_range = True
    ranges: list

    def do_GET(self):
        self.ranges.append(self.headers.get("Range"))
        if self.path != "/w.pth":
            self.send_error(404)
            return
        data, start = self.payload, 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and self.honour_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cls = type(self)
        if cls.drop_after is not None and cls.drops > 0:
            cls.drops -= 1
            self.wfile.write(body[:cls.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_file(payload: bytes):
    """Serve ``payload`` at ``/w.pth``; yields ``(base_url, handler)``, the
    handler class whose attributes steer and record the server."""
    handler = type("Handler", (_Handler,), {"ranges": [], "payload": payload})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


