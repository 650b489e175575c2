"""A real HTTP server on 127.0.0.1 (random free port) whose answers are scripted per path.

    with ScriptedServer() as server:
        server.script("/feed.xml", Reply(200, body, {"Content-Type": "application/rss+xml"}))
        server.script("/flaky", Reply(500), Reply(200, body))   # one reply per request; the last repeats
        server.script("/etag", conditional(body, etag='"v1"'))   # a function of the request
        fetch(server.url("/feed.xml"), settings)
        server.requests("/feed.xml")[0].headers["User-Agent"]
"""
from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0               # seconds to wait before the status line
    send_length: bool = True         # False: no Content-Length, the body ends when the connection closes
    declared_length: int | None = None  # lie about Content-Length (e.g. to drop the connection early)
    gzip: bool = False               # Content-Encoding: gzip
    chunk_delay: float = 0.0         # seconds between 1 KB body chunks (a trickling body)
    drip: float = 0.0                # seconds between single bytes of the whole response (status
                                     # line and headers too): a drip-feed no read timeout catches
    drip_body_only: bool = False     # with drip: status line and headers at once, then the drip


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    at: float


Script = Union[Reply, Callable[[Seen], Reply]]


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        seen = Seen("GET", parts.path, parts.query, {k: v for k, v in self.headers.items()}, time.monotonic())
        reply = self.server.owner._next(seen)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts): fine
            pass

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drip:
            self._drip(reply)
            return
        body = gzip.compress(reply.body) if reply.gzip else reply.body
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.gzip:
            self.send_header("Content-Encoding", "gzip")
        if reply.declared_length is not None:
            self.send_header("Content-Length", str(reply.declared_length))
        elif reply.send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if reply.chunk_delay:
            for start in range(0, len(body), 1024):
                self.wfile.write(body[start:start + 1024])
                self.wfile.flush()
                time.sleep(reply.chunk_delay)
        else:
            self.wfile.write(body)
        self.wfile.flush()


    def _drip(self, reply: Reply) -> None:
        head = [f"HTTP/1.0 {reply.status} OK"] + [f"{k}: {v}" for k, v in reply.headers.items()]
        head.append(f"Content-Length: {len(reply.body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
        start = len(data) - len(reply.body) if reply.drip_body_only else 0
        self.wfile.write(data[:start])
        self.wfile.flush()
        for i in range(start, len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(reply.drip)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: "ScriptedServer"


class ScriptedServer:
    def __init__(self) -> None:
        self._scripts: dict[str, list[Script]] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # -- lifecycle
    def start(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- scripting
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Script) -> str:
        """Answer requests for `path` with `replies` in order; the last one repeats. Returns the URL."""
        with self._lock:
            self._scripts[path] = list(replies)
        return self.url(path)

    def requests(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self._seen.append(seen)
            queue = self._scripts.get(seen.path)
            if not queue:
                return Reply(404, b"not scripted\n", {"Content-Type": "text/plain"})
            script = queue.pop(0) if len(queue) > 1 else queue[0]
        return script(seen) if callable(script) else script


def conditional(body: bytes, *, etag: str | None = None, last_modified: str | None = None,
                content_type: str = "application/rss+xml; charset=utf-8") -> Callable[[Seen], Reply]:
    """200 with validators, or 304 when the request's If-None-Match / If-Modified-Since match them."""
    def answer(seen: Seen) -> Reply:
        headers = {k.lower(): v for k, v in seen.headers.items()}
        validators = {}
        if etag:
            validators["ETag"] = etag
        if last_modified:
            validators["Last-Modified"] = last_modified
        if (etag and headers.get("if-none-match") == etag) or (
                not etag and last_modified and headers.get("if-modified-since") == last_modified):
            return Reply(304, b"", validators, send_length=False)
        return Reply(200, body, {"Content-Type": content_type, **validators})
    return answer
