"""A forwarding proxy that puts sandbox faults in front of a real server (moto, OpenBao, Unleash).

The real server listens on a private loopback port; the proxy listens on the port the config
names and forwards every request to it unchanged (request line, headers in their order and
case, ``Host`` included, so an AWS SigV4 signature still matches; body bytes as received),
with ``TCP_NODELAY`` on both sides. It injects the same faults as the stand-ins
(:class:`~console.sandbox.standin.Faults`): latency, 429 with ``Retry-After``, 5xx,
timeouts, and ``down``: the proxy closes its listening socket, so clients get *connection
refused* until the fault is cleared.

Control endpoints (outside the real server's namespace), on the public port while it is up
and always on the control port (loopback, recorded in ``<dir>/<name>-proxy.json``)::

    GET  /_sandbox/health             -> {"ok": true, "name", "upstream": bool, "down": bool}
    GET  /_sandbox/faults             -> the faults in effect
    POST /_sandbox/faults   {...}     -> set the faults (unnamed ones off)
    POST /_sandbox/reset              -> faults off

The proxy runs as its own process (``python -m console.sandbox.faultproxy ...``), started
and stopped by the service modules through :func:`start_proxy` / :func:`stop_proxy`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from console.sandbox.standin import Faults, drop_connection

__all__ = ["FaultProxy", "backend_port", "describe", "free_port", "proxy_name", "proxy_state",
           "start_proxy", "status_line", "stop_proxy", "write_backend_port"]

_HOP = ("connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade")
"""Hop-by-hop headers of the client's connection (not forwarded; the proxy keeps its own
connection to the server alive)."""


def _nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FaultProxy:
    """The proxy's state: where it listens, where it forwards, the faults in effect.

    Args:
        name: Service name (``moto``, ``openbao``, ``unleash``).
        listen: Public port (the one the config names).
        target: The real server's port.
        flavour: Error body shape: ``aws``, ``vault`` or anything else (plain JSON).
    """

    def __init__(self, name: str, listen: int, target: int, flavour: str = "") -> None:
        self.name, self.listen, self.target, self.flavour = name, listen, target, flavour
        self.faults = Faults()
        self.lock = threading.Lock()
        self.public: ThreadingHTTPServer | None = None
        self.control: ThreadingHTTPServer | None = None
        self._conns: set[socket.socket] = set()

    # -- servers --------------------------------------------------------------------------
    def _serve(self, port: int, public: bool) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self, public))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True,
                         name=f"proxy-{self.name}-{port}").start()
        return server

    def open(self, control_port: int = 0) -> int:
        """Listen on the public and the control port; returns the control port."""
        self.public = self._serve(self.listen, True)
        self.control = self._serve(control_port, False)
        return int(self.control.server_address[1])

    def _set_down(self, down: bool) -> None:
        """Close (``down``) or reopen the public listening socket."""
        if down and self.public is not None:
            server, self.public = self.public, None
            server.shutdown()
            server.server_close()
            with self.lock:
                conns = list(self._conns)
            for conn in conns:  # kept-alive client connections go too
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        elif not down and self.public is None:
            for _ in range(100):
                try:
                    self.public = self._serve(self.listen, True)
                    return
                except OSError:
                    time.sleep(0.05)
            raise OSError(f"cannot listen on 127.0.0.1:{self.listen} again")

    def set_faults(self, settings: dict[str, Any], wait: bool = True) -> Faults:
        """Replace the faults in effect (names not given are off).

        With ``wait`` the public socket is closed or reopened before this returns (asked on
        the control port); without, right after (asked on the public port itself).
        """
        new = Faults(**{**asdict(Faults()), **settings})
        with self.lock:
            self.faults = new
        if wait:
            self._set_down(new.down)
        else:
            threading.Thread(target=self._set_down, args=(new.down,), daemon=True).start()
        return new

    def track(self, conn: socket.socket, add: bool) -> None:
        """Remember the open client connections (to drop them when going down)."""
        with self.lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def upstream_ok(self) -> bool:
        """True when the real server accepts a connection."""
        try:
            with socket.create_connection(("127.0.0.1", self.target), timeout=1):
                return True
        except OSError:
            return False

    # -- faults ---------------------------------------------------------------------------
    def error(self, status: int, message: str, req_ctype: str,
              retry_after: float | None = None) -> tuple[int, dict[str, str], bytes]:
        """An error answer shaped like the real server's (AWS JSON or XML, Vault, JSON)."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if self.flavour == "aws":
            code = "ThrottlingException" if status == 429 else "ServiceUnavailable"
            if "json" in req_ctype:
                headers["Content-Type"] = "application/x-amz-json-1.1"
                headers["x-amzn-ErrorType"] = code
                body = json.dumps({"__type": code, "message": message}).encode()
            else:
                headers["Content-Type"] = "text/xml"
                body = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error><RequestId>sandbox-fault"
                        "</RequestId></ErrorResponse>").encode()
            return status, headers, body
        headers["Content-Type"] = "application/json"
        if self.flavour == "vault":
            return status, headers, json.dumps({"errors": [message]}).encode()
        return status, headers, json.dumps({"message": message, "error": message}).encode()

    def inject(self, req_ctype: str) -> tuple[int, dict[str, str], bytes] | None:
        """Apply the faults to one forwarded request: sleep, or an error answer, or None."""
        f = self.faults
        kind = f.roll()
        if kind == "throttle":
            return self.error(429, "Rate exceeded (sandbox fault)", req_ctype, f.retry_after)
        if kind == "error":
            return self.error(f.error_status, "Service unavailable (sandbox fault)", req_ctype)
        return None

    def control_answer(self, method: str, path: str, body: bytes,
                       public: bool = False) -> tuple[int, dict[str, Any]]:
        """Answer one ``/_sandbox/...`` request (``public``: asked on the public port)."""
        action = path.removeprefix("/_sandbox/")
        if action == "health":
            return 200, {"ok": True, "name": self.name, "upstream": self.upstream_ok(),
                         "down": self.faults.down}
        if action == "faults" and method == "GET":
            return 200, asdict(self.faults)
        if action == "faults" and method == "POST":
            try:
                data = json.loads(body or b"{}") or {}
                known = {f.name for f in fields(Faults)}
                unknown = sorted(set(data) - known)
                if unknown:
                    return 400, {"error": f"unknown fault setting(s): {', '.join(unknown)}"}
                return 200, asdict(self.set_faults(data, wait=not public))
            except (ValueError, TypeError) as exc:
                return 400, {"error": f"bad faults: {exc}"}
        if action == "reset" and method == "POST":
            self.set_faults({}, wait=not public)
            return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {action}"}


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body exactly as received (``Content-Length`` or raw chunked framing)."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        raw = bytearray()
        while True:
            line = handler.rfile.readline()
            raw += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = handler.rfile.readline()
                    raw += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return bytes(raw)
            raw += handler.rfile.read(size + 2)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler(proxy: FaultProxy, public: bool) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        upstream: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet."""

        def setup(self) -> None:
            super().setup()
            _nodelay(self.connection)
            if public:
                proxy.track(self.connection, True)

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()
            if public:
                proxy.track(self.connection, False)
            if self.upstream is not None:
                self.upstream.close()

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self._end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self._close_first()

        def _end_headers(self) -> None:
            if self.close_connection:  # the client sent `Connection: close`
                self.send_header("Connection", "close")
            self.end_headers()

        def _close_first(self) -> None:
            """After the answer to a `Connection: close` request, close our side at once,
            as the servers behind the proxy do (the server's port keeps the TIME-WAIT)."""
            if self.close_connection:
                with contextlib.suppress(OSError):
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_WR)

        def _serve(self) -> None:
            path = urlsplit(self.path).path
            body = _read_body(self)
            if path.startswith("/_sandbox/"):
                status, answer = proxy.control_answer(self.command, path, body, public)
                self._reply(status, {"Content-Type": "application/json"},
                            json.dumps(answer).encode())
                return
            if not public:
                self._reply(404, {"Content-Type": "application/json"},
                            b'{"error": "the control port serves /_sandbox/ only"}')
                return
            if proxy.faults.down:
                drop_connection(self)
                return
            fault = proxy.inject(self.headers.get("Content-Type") or "")
            if fault is not None:
                self._reply(*fault)
                return
            self._forward(body)

        def _connect(self) -> http.client.HTTPConnection:
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection("127.0.0.1", proxy.target,
                                                           timeout=600)
                self.upstream.connect()
                if self.upstream.sock is not None:
                    _nodelay(self.upstream.sock)
            return self.upstream

        def _forward(self, body: bytes) -> None:
            for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
                try:
                    conn = self._connect()
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for key, value in self.headers.raw_items():
                        if key.lower() not in _HOP:
                            conn.putheader(key, value)
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    if self.upstream is not None:
                        self.upstream.close()
                        self.upstream = None
                    if attempt == 2 or not isinstance(
                            exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                  ConnectionResetError)):
                        self._reply(502, {"Content-Type": "application/json"}, json.dumps(
                            {"error": f"sandbox proxy: {proxy.name} at 127.0.0.1:"
                                      f"{proxy.target} did not answer: {exc}"}).encode())
                        return
            self._relay(resp)

        def _relay(self, resp: http.client.HTTPResponse) -> None:
            chunked = "chunked" in (resp.getheader("Transfer-Encoding") or "").lower()
            self.send_response_only(resp.status, resp.reason)
            for key, value in resp.getheaders():
                if key.lower() not in (*_HOP, "transfer-encoding"):
                    self.send_header(key, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self._end_headers()
            if chunked:
                while piece := resp.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                while piece := resp.read(65536):
                    self.wfile.write(piece)
            if resp.will_close and self.upstream is not None:
                self.upstream.close()
                self.upstream = None
            self._close_first()

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = do_HEAD = do_OPTIONS = _serve
        do_LIST = _serve  # Vault's LIST verb

    return H


# -- process management (used by the service modules) ------------------------------------

def proxy_name(name: str) -> str:
    """The pid-file name of the proxy of service ``name``."""
    return f"{name}-proxy"


def proxy_state(state_dir: Path, name: str) -> dict[str, Any] | None:
    """``{"listen", "target", "control", "pid"}`` of the proxy of ``name``, while ours runs."""
    from console.sandbox.process import ours

    pid = ours(state_dir, proxy_name(name))
    if pid is None:
        return None
    try:
        data = dict(json.loads((state_dir / f"{proxy_name(name)}.json").read_text()))
    except (OSError, ValueError):
        return None
    return {**data, "pid": pid}


def _get(control: int, path: str) -> dict[str, Any] | None:
    """GET a control endpoint of a proxy; None when it does not answer 200 with JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", control, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        data = json.loads(resp.read())
        return dict(data) if resp.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _health(control: int) -> dict[str, Any] | None:
    return _get(control, "/_sandbox/health")


def start_proxy(state_dir: Path, name: str, listen: int, target: int, flavour: str,
                control: int = 0) -> int:
    """Start the proxy of ``name`` (public ``listen`` -> ``target``) unless ours runs so.

    Returns:
        The proxy's pid.

    Raises:
        ConfigError: The public port is taken by something else.
        ConsoleError: It did not become healthy (names its log).
    """
    from console.errors import ConfigError
    from console.sandbox.process import ports_taken, spawn, stop_process

    state = proxy_state(state_dir, name)
    if state is not None and state.get("listen") == listen and state.get("target") == target \
            and _health(int(state["control"])) is not None:
        return int(state["pid"])
    stop_proxy(state_dir, name)
    if ports_taken(listen):
        raise ConfigError(f"cannot start the {name} sandbox: port {listen} on 127.0.0.1 is "
                          "already in use", hint="stop whatever listens there, or choose "
                          "another port in [sandbox]")
    state_file = state_dir / f"{proxy_name(name)}.json"
    state_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "console.sandbox.faultproxy", "--name", name,
            "--listen", str(listen), "--target", str(target), "--control", str(control),
            "--flavour", flavour, "--state-file", str(state_file)]

    def healthy() -> bool:
        try:
            data = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return False
        return _health(int(data["control"])) is not None

    try:
        return spawn(state_dir, proxy_name(name), argv, _proxy_env(), healthy, 15.0,
                     what=f"the fault proxy of {name} on 127.0.0.1:{listen}")
    except Exception:
        stop_process(state_dir, proxy_name(name), (f"{proxy_name(name)}.json",))
        raise


def _proxy_env() -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    return env


def stop_proxy(state_dir: Path, name: str) -> str:
    """Stop the proxy of ``name`` if ours runs; returns what happened."""
    from console.sandbox.process import stop_process

    return stop_process(state_dir, proxy_name(name), (f"{proxy_name(name)}.json",))


def status_line(state_dir: Path, name: str) -> tuple[bool, str]:
    """(proxy up, one line: where it forwards and which faults are in effect)."""
    state = proxy_state(state_dir, name)
    if state is None:
        return False, "fault proxy not running"
    health = _health(int(state["control"]))
    if health is None:
        return False, f"fault proxy pid {state['pid']} does not answer"
    faults = _get_faults(int(state["control"]))
    active = describe(faults) if faults else "no faults"
    return True, (f"via fault proxy pid {state['pid']} to 127.0.0.1:{state['target']}; "
                  f"{active}")


def _get_faults(control: int) -> dict[str, Any] | None:
    return _get(control, "/_sandbox/faults")


def describe(faults: dict[str, Any]) -> str:
    """The faults in effect in a few words (``no faults`` when none)."""
    d = Faults(**{k: v for k, v in faults.items() if k in {f.name for f in fields(Faults)}})
    parts = []
    if d.down:
        parts.append("down (connection refused)")
    if d.latency:
        parts.append(f"latency {d.latency:g} s")
    if d.throttle_rate:
        parts.append(f"{d.throttle_rate:.0%} answered 429 (Retry-After {d.retry_after:g} s)")
    if d.error_rate:
        parts.append(f"{d.error_rate:.0%} answered {d.error_status}")
    if d.timeout_rate:
        parts.append(f"{d.timeout_rate:.0%} hang {d.hang:g} s")
    return ", ".join(parts) or "no faults"


def main(argv: list[str] | None = None) -> None:
    """Run one proxy until SIGTERM."""
    ap = argparse.ArgumentParser(prog="python -m console.sandbox.faultproxy")
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--control", type=int, default=0)
    ap.add_argument("--flavour", default="")
    ap.add_argument("--state-file", required=True)
    args = ap.parse_args(argv)
    proxy = FaultProxy(args.name, args.listen, args.target, args.flavour)
    control = proxy.open(args.control)
    Path(args.state_file).write_text(json.dumps(
        {"listen": args.listen, "target": args.target, "control": control}))
    print(f"proxy {args.name}: 127.0.0.1:{args.listen} -> 127.0.0.1:{args.target}, control "
          f"127.0.0.1:{control}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()


if __name__ == "__main__":
    main()


def free_port(pair: bool = False) -> int:
    """A free loopback port (with ``pair``: the next one is free too) for a real server."""
    from console.sandbox.process import ports_taken

    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and not ports_taken(*((port, port + 1) if pair else (port,))):
            return port
    raise OSError("no free port on 127.0.0.1")


def write_backend_port(state_dir: Path, name: str, port: int) -> None:
    """Record the private port the real server of ``name`` listens on."""
    (state_dir / f"{name}.port").write_text(f"{port}\n")


def backend_port(state_dir: Path, name: str) -> int | None:
    """The private port of the real server of ``name``, as recorded at start."""
    try:
        return int((state_dir / f"{name}.port").read_text().strip())
    except (OSError, ValueError):
        return None
