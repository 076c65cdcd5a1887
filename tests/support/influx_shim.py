"""A forwarding HTTP server that lets InfluxDB 1.x accept InfluxDB 2.x writes.

Debian packages InfluxDB 1.6.7, which has no ``/api/v2/write``. The shim maps
``POST /api/v2/write?org=&bucket=&precision=`` to ``/write?db=<bucket>&precision=<p>`` with the
line-protocol body unchanged, and passes ``/query`` and ``/ping`` straight through, so the
production code path (influxdb-client's write_api + InfluxQL reads) runs unmodified in tests.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

V2_TO_V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_FORWARDED_REQUEST_HEADERS = ("Content-Type", "Content-Encoding", "Accept", "Accept-Encoding")
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length", "server", "date"}


class _Handler(BaseHTTPRequestHandler):
    server: InfluxV2Shim
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, method: str, path_and_query: str, body: bytes | None) -> None:
        request = urllib.request.Request(
            self.server.upstream + path_and_query, data=body, method=method
        )
        for name in _FORWARDED_REQUEST_HEADERS:
            if name in self.headers:
                request.add_header(name, self.headers[name])
        # The 1.x test server runs without auth; the v2 client's "Token" header is dropped.
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self._reply(response.status, response.read(), list(response.headers.items()))
        except urllib.error.HTTPError as err:
            self._reply(err.code, err.read(), list(err.headers.items()))

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._body() if method == "POST" else None
        if parts.path == "/api/v2/write" and method == "POST":
            query = parse_qs(parts.query)
            bucket = query.get("bucket", [""])[0]
            precision = query.get("precision", ["ns"])[0]
            if not bucket or precision not in V2_TO_V1_PRECISION:
                message = b'{"code":"invalid","message":"bucket and a valid precision required"}'
                self._reply(400, message, [("Content-Type", "application/json")])
                return
            v1 = urlencode({"db": bucket, "precision": V2_TO_V1_PRECISION[precision]})
            self._forward("POST", f"/write?{v1}", body)
        elif parts.path in ("/query", "/ping"):
            self._forward(method, self.path, body)
        else:
            self._reply(404, b'{"code":"not found"}', [("Content-Type", "application/json")])

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")


class InfluxV2Shim(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.upstream = upstream.rstrip("/")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> InfluxV2Shim:
        self._thread = threading.Thread(target=self.serve_forever, name="influx-shim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
