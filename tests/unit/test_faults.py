"""Sandbox faults without the sandbox processes: the fault proxy in front of a real local
HTTP server, a stand-in going down, setting validation and refusals, and the held lock."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.fake import FakeAdapter
from console.config import load_config
from console.engine.service import Session
from console.errors import LockHeld, UsageError
from console.sandbox import faults
from console.sandbox.faultproxy import FaultProxy
from console.sandbox.standin import StandIn, serve
from console.store import open_locks
from tests.engine.conftest import write_config


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "state not reached in time"
        time.sleep(0.02)


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received (request line, raw headers, body)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        data = json.dumps({"method": self.command, "path": self.path,
                           "headers": list(self.headers.raw_items()),
                           "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def proxied() -> Iterator[tuple[FaultProxy, int]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy = FaultProxy("echo", _free_port(), int(upstream.server_address[1]), "aws")
    control = proxy.open()
    try:
        yield proxy, control
    finally:
        proxy.set_faults({})
        for server in (proxy.public, proxy.control, upstream):
            if server is not None:
                server.shutdown()
                server.server_close()


def _request(port: int, method: str = "GET", path: str = "/x", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _set(control: int, settings: dict[str, Any]) -> dict[str, Any]:
    status, _, body = _request(control, "POST", "/_sandbox/faults", json.dumps(settings).encode(),
                               {"Content-Type": "application/json"})
    assert status == 200, body
    return dict(json.loads(body))


def test_proxy_forwards_request_unchanged(proxied: tuple[FaultProxy, int]) -> None:
    proxy, _ = proxied
    headers = {"Host": "secretsmanager.us-east-1.amazonaws.com", "X-Amz-Date": "20261127T000000Z",
               "Authorization": "AWS4-HMAC-SHA256 Credential=sandbox/...", "Content-Type":
               "application/x-amz-json-1.1"}
    status, _, body = _request(proxy.listen, "POST", "/?a=1", b'{"SecretId": "x"}', headers)
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/?a=1" and seen["body"] == '{"SecretId": "x"}'
    got = dict(seen["headers"])
    for key, value in headers.items():
        assert got[key] == value  # Host included: a SigV4 signature still matches


def test_proxy_latency_errors_throttle_and_down(proxied: tuple[FaultProxy, int]) -> None:
    proxy, control = proxied
    _set(control, {"latency": 0.3})
    t0 = time.monotonic()
    assert _request(proxy.listen)[0] == 200
    assert time.monotonic() - t0 >= 0.3

    _set(control, {"error_rate": 1.0, "error_status": 503})
    status, hdrs, body = _request(proxy.listen, "POST", "/", b"{}",
                                  {"Content-Type": "application/x-amz-json-1.1"})
    assert status == 503 and json.loads(body)["__type"] == "ServiceUnavailable"
    status, _, body = _request(proxy.listen, "POST", "/", b"Action=ListUsers")
    assert status == 503 and b"<Code>ServiceUnavailable</Code>" in body  # query protocol: XML

    _set(control, {"throttle_rate": 1.0, "retry_after": 2})
    status, hdrs, _ = _request(proxy.listen)
    assert status == 429 and hdrs["Retry-After"] == "2"

    assert _set(control, {"down": True})["down"] is True
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.listen), timeout=2).close()
    _set(control, {})  # the control port still answers; clearing reopens the public port
    assert _request(proxy.listen)[0] == 200


def test_standin_down_drops_calls_but_takes_control() -> None:
    server = serve(StandIn(), "127.0.0.1", 0)
    port = int(server.server_address[1])
    try:
        _set(port, {"down": True})
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            _request(port, "GET", "/v1/models")
        status, _, body = _request(port, "GET", "/_sandbox/faults")
        assert status == 200 and json.loads(body)["down"] is True
        _set(port, {})
        assert _request(port, "GET", "/v1/models")[0] == 404  # answered again
    finally:
        server.shutdown()
        server.server_close()


CONFIG = """
[settings]
audit_db = "audit.db"

[backends.real-vault]
type = "vault"
url = "http://127.0.0.1:{port}"

[backends.sandbox-vault]
type = "vault"
sandbox = true
url = "http://127.0.0.1:{port}"

[backends.far]
type = "openai"
sandbox = true
base_url = "https://api.openai.com/v1"

[backends.flags]
type = "flagfile"
sandbox = true
path = "flags.json"
"""


def test_refusals_and_bad_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(port=_free_port()))
    config = load_config(path)
    with pytest.raises(UsageError, match="not a sandbox backend") as err:
        faults.apply_fault(config, "real-vault", {"latency": 1})
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="not on this machine"):
        faults.apply_fault(config, "far", {"latency": 1})
    with pytest.raises(UsageError, match="no server to inject faults into"):
        faults.apply_fault(config, "flags", {"down": True})
    with pytest.raises(UsageError, match="no backend named"):
        faults.apply_fault(config, "nope", {"latency": 1})
    for bad, words in (({"latncy": 1}, "unknown fault setting"),
                       ({"error_rate": 1.5}, "between 0 and 1"),
                       ({"error_status": 404, "error_rate": 0.5}, "5xx"),
                       ({"throttle_rate": 0.6, "error_rate": 0.6}, "more than 1"),
                       ({"down": "yes"}, "true or false")):
        with pytest.raises(UsageError, match=words):
            faults.apply_fault(config, "sandbox-vault", bad)
    # the special faults never touch a config with a real backend
    with pytest.raises(UsageError, match="only runs on a sandbox config"):
        faults.hold_lock(config, "x", "alice@bridge", 5)


async def test_held_lock_refuses_a_run_until_its_lease_expires(tmp_path: Path) -> None:
    FakeAdapter.reset()
    config = load_config(write_config(tmp_path, n=1, backend="sandbox = true"))
    line = faults.hold_lock(config, "app-0", "alice@bridge", 1.5)
    assert "alice@bridge" in line
    table = open_locks(config)
    [lock] = table.held()
    assert lock.host != socket.gethostname() and lock.operator == "alice@bridge"

    s = Session(config, operator="bob", incident="EX-1", mode="exercise")
    plan = await s.plan("contain", ["app-0"])
    with pytest.raises(LockHeld) as err:
        await s.apply(plan, reason="drill")
    assert "alice@bridge" in str(err.value)

    _wait(lambda: table.holder_gone(lock))  # the lease ends on its own
    result = await s.apply(await s.plan("contain", ["app-0"]), reason="drill")
    assert result.exit_code() == 0
    events = s.audit.events(run_id=result.run_id)
    assert any(e["outcome"] == "stale-lock-taken-over" for e in events)


def test_release_lock_drops_only_the_exercise_lock(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, n=2, backend="sandbox = true"))
    table = open_locks(config)
    table.acquire(["app-1"], "r-real", "carol", "2026-11-27T00:00:00Z")
    faults.hold_lock(config, "app-0", "alice@bridge", 60)
    with pytest.raises(UsageError, match="a run holds the lock"):
        faults.hold_lock(config, "app-1", "alice@bridge", 60)
    assert "released" in faults.release_lock(config, "app-0")
    assert "no exercise lock" in faults.release_lock(config, "app-1")
    assert [lock.integration for lock in table.held()] == ["app-1"]
