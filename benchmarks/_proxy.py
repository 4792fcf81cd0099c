"""A delaying, counting HTTP reverse proxy on 127.0.0.1 for the peers benchmark.

Every request is held for ``delay`` seconds (the injected per-request latency), then
forwarded unchanged to ``upstream`` over a keep-alive connection of the handling thread, and
the answer is sent back with a ``Content-Length``. Each request is counted under its AWS
operation, ``service:Operation``: the JSON protocol's ``X-Amz-Target`` header
(``secretsmanager.DeleteSecret``), else the query protocol's ``Action`` form field with the
service from the SigV4 credential scope (``iam:ListAccessKeys``), else ``METHOD path``.

Standard library only; never listens anywhere but loopback.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["DelayProxy", "operation"]

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailers", "transfer-encoding", "upgrade", "content-length"})
"""Headers that describe one connection, not the message; never forwarded."""

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def operation(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """The AWS operation a request calls, as ``service:Operation`` (else ``METHOD path``).

    ``headers`` keys are lower-case.
    """
    target = headers.get("x-amz-target", "")
    if target:
        service, _, op = target.rpartition(".")
        return f"{service.split('_')[0].lower()}:{op}"
    scope = _SCOPE.search(headers.get("authorization", ""))
    service = scope.group(1) if scope else "?"
    if body and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return f"{service}:{action[0]}"
    action = parse_qs(urlsplit(path).query).get("Action")
    if action:
        return f"{service}:{action[0]}"
    return f"{method} {urlsplit(path).path}"


class DelayProxy:
    """Forwards every request to ``upstream`` after sleeping ``delay`` seconds, and counts.

    ``delay`` and the counts may be changed or read between runs; :meth:`take` returns the
    counts so far and starts afresh.
    """

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = delay
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running proxy."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, op: str) -> None:
        """Counts one request to ``op``."""
        with self._lock:
            self._counts[op] += 1

    def take(self) -> Counter[str]:
        """The requests counted since the last call, by operation; resets the count."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts

    def start(self) -> DelayProxy:
        """Listens on a free loopback port and serves in a daemon thread."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # one instance (and thread) per client connection, kept alive as botocore's
            # pool expects, with one upstream connection of its own
            protocol_version = "HTTP/1.1"
            conn: http.client.HTTPConnection | None = None

            def setup(self) -> None:
                super().setup()
                # the status line and headers, then the body, go out as two writes: without
                # this, Nagle holds the body until the client's delayed ACK (~40 ms)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def finish(self) -> None:
                super().finish()
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: one line per request would swamp the benchmark's output

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                proxy.count(operation(self.command, self.path, headers, body))
                if proxy.delay > 0:
                    time.sleep(proxy.delay)
                out = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, reason, resp_headers, data = self._upstream(body, out)
                self.send_response_only(status, reason)
                for k, v in resp_headers:
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _upstream(self, body: bytes, headers: dict[str, str]
                          ) -> tuple[int, str, list[tuple[str, str]], bytes]:
                # a kept-alive upstream connection the upstream closed meanwhile is
                # replaced once
                for attempt in (1, 2):
                    conn = self.conn
                    if conn is None:
                        conn = self.conn = http.client.HTTPConnection(*proxy.upstream,
                                                                      timeout=120)
                    try:
                        conn.request(self.command, self.path, body=body or None,
                                     headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        if resp.will_close:
                            conn.close()
                            self.conn = None
                        return resp.status, resp.reason, resp.getheaders(), data
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()
                        self.conn = None
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="delay-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
