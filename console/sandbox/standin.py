"""Base of the local stand-ins for SaaS APIs that cannot run here (OpenAI, Anthropic, Google...).

A stand-in is a stdlib ``ThreadingHTTPServer`` serving the documented HTTP API of one
provider from in-memory state, with fault injection an exercise or a test can switch on:

* latency (seconds added to every answer),
* ``throttle_rate``: share of calls answered 429 with ``Retry-After``,
* ``error_rate``: share answered 500/503,
* ``timeout_rate``: share that hang for ``hang`` seconds before answering (client timeouts),
* ``down``: every provider call is dropped unanswered (the connection is reset), so clients
  see the backend unreachable; ``/_sandbox/`` still answers, so the fault can be cleared.

Control endpoints, on every stand-in, outside the provider's namespace::

    GET  /_sandbox/health             -> {"ok": true, "name": ...}
    GET  /_sandbox/state              -> the in-memory state (sandbox data only)
    GET  /_sandbox/faults             -> the faults in effect
    POST /_sandbox/faults   {...}     -> set the faults above (unnamed ones off)
    POST /_sandbox/reset              -> state back to the seed, faults off, log cleared
    GET  /_sandbox/requests           -> every request received (method, path, headers)

Subclasses register routes with :meth:`StandIn.route` and shape errors like their provider
with :meth:`StandIn.error_body`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

__all__ = ["Faults", "Request", "Response", "StandIn", "drop_connection", "serve"]


@dataclass
class Faults:
    """Faults a stand-in injects into the provider's API (never into /_sandbox/)."""

    latency: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    error_rate: float = 0.0
    error_status: int = 503
    timeout_rate: float = 0.0
    hang: float = 30.0
    down: bool = False

    def roll(self) -> str:
        """Sleep the latency, then cast the dice for one request: ``hang`` (after sleeping
        ``hang`` seconds, the answer is dropped), ``throttle`` (a 429), ``error``
        (``error_status``) or ``""`` (answer normally). Shared by the stand-ins and the
        fault proxies in front of the real servers."""
        if self.latency:
            time.sleep(self.latency)
        roll = random.random()
        if roll < self.timeout_rate:
            time.sleep(self.hang)
            return "hang"
        roll -= self.timeout_rate
        if roll < self.throttle_rate:
            return "throttle"
        roll -= self.throttle_rate
        return "error" if roll < self.error_rate else ""


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def bearer(self) -> str:
        """The bearer token, or the ``x-api-key`` header (Anthropic's two styles)."""
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("x-api-key", "").strip()


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class StandIn:
    """A provider API served from memory. Subclasses: set ``name``, add routes in ``setup``.

    Args:
        seed: Initial state (deep-copied; ``reset`` returns to it).
    """

    name: ClassVar[str] = "standin"

    def __init__(self, seed: dict[str, Any] | None = None) -> None:
        self.seed = copy.deepcopy(seed or {})
        self.state: dict[str, Any] = copy.deepcopy(self.seed)
        self.faults = Faults()
        self.lock = threading.RLock()
        self.requests: list[dict[str, Any]] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.setup()

    # -- for subclasses -----------------------------------------------------------------
    def setup(self) -> None:
        """Register routes (override)."""

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` on paths matching ``pattern`` (named groups become params)."""
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """The provider's error shape (override)."""
        return {"error": {"message": message, "type": kind or "error", "code": status}}

    def error(self, status: int, message: str, kind: str = "",
              headers: dict[str, str] | None = None) -> Response:
        """An error response in the provider's shape."""
        return Response(status, self.error_body(status, message, kind), headers or {})

    # -- dispatch -----------------------------------------------------------------------
    def _control(self, req: Request) -> Response | None:
        if not req.path.startswith("/_sandbox/"):
            return None
        action = req.path.removeprefix("/_sandbox/")
        with self.lock:
            if action == "health":
                return Response(200, {"ok": True, "name": self.name})
            if action == "state":
                return Response(200, self.state)
            if action == "requests":
                return Response(200, self.requests)
            if action == "faults" and req.method == "GET":
                return Response(200, asdict(self.faults))
            if action == "faults" and req.method == "POST":
                self.faults = Faults(**{**asdict(Faults()), **(req.body or {})})
                return Response(200, asdict(self.faults))
            if action == "reset" and req.method == "POST":
                self.state = copy.deepcopy(self.seed)
                self.faults = Faults()
                self.requests.clear()
                return Response(200, {"ok": True})
        return Response(404, {"error": f"no control endpoint {action}"})

    def _inject(self) -> Response | None:
        f = self.faults
        kind = f.roll()
        if kind == "throttle":
            return self.error(429, "Rate limit reached; slow down", "rate_limit_error",
                              {"Retry-After": f"{f.retry_after:g}"})
        if kind == "error":
            return self.error(f.error_status, "The server had an error; try again later",
                              "api_error")
        return None

    def handle(self, req: Request) -> Response:
        """Answer one request: control endpoints, injected faults, then the routes."""
        control = self._control(req)
        if control is not None:
            return control
        with self.lock:
            self.requests.append({"method": req.method, "path": req.path,
                                  "query": req.query, "headers": req.headers})
        fault = self._inject()
        if fault is not None:
            return fault
        for method, pattern, handler in self._routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                req.params = {k: v for k, v in m.groupdict().items() if v is not None}
                with self.lock:
                    return handler(req)
        return self.error(404, f"Unknown request URL: {req.method} {req.path}",
                          "invalid_request_error")


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Close the handler's connection unanswered, with a reset (the ``down`` fault)."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))


def _handler_class(app: StandIn) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet: requests are kept in the stand-in's own log."""

        def _serve(self) -> None:
            split = urlsplit(self.path)
            if app.faults.down and not split.path.startswith("/_sandbox/"):
                drop_connection(self)
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            req = Request(self.command, split.path, parse_qs(split.query),
                          {k.lower(): v for k, v in self.headers.items()}, body)
            resp = app.handle(req)
            headers = dict(resp.headers)
            ctype = headers.pop("Content-Type", "application/json")
            if isinstance(resp.body, str) and not ctype.startswith("application/json"):
                data = resp.body.encode()
            else:
                data = b"" if resp.body is None and resp.status == 204 else \
                    json.dumps(resp.body).encode()
            self.send_response(resp.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", f"req_{random.getrandbits(48):012x}")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

    return H


def serve(app: StandIn, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve ``app`` in a daemon thread; ``server.server_address`` has the real port."""
    server = ThreadingHTTPServer((host, port), _handler_class(app))
    server.daemon_threads = True
    # a short poll interval: shutdown() waits up to one interval (tests stop many servers)
    threading.Thread(target=server.serve_forever, args=(0.05,), name=f"standin-{app.name}",
                     daemon=True).start()
    return server
