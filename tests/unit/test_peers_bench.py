"""The peers benchmark's delaying proxy (``benchmarks/_proxy.py``): it forwards every request
unchanged over keep-alive connections, holds each for the injected delay, and counts it under
its AWS operation. A stdlib upstream stands in for moto.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ks_bench_proxy",
                                                  ROOT / "benchmarks" / "_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


proxy_mod = _load()
SIGV4 = ("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{}/aws4_request, "
         "SignedHeaders=host, Signature=0")


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # each answer in one write (flushed per request), so no Nagle stall here

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                           "target": self.headers.get("X-Amz-Target")}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]
         ) -> tuple[int, dict[str, str]]:
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_forwards_counts_and_keeps_the_connection(upstream: str) -> None:
    proxy = proxy_mod.DelayProxy(upstream).start()
    try:
        conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
        json_call = {"X-Amz-Target": "secretsmanager.DeleteSecret",
                     "Content-Type": "application/x-amz-json-1.1",
                     "Authorization": SIGV4.format("secretsmanager")}
        form_call = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                     "Authorization": SIGV4.format("iam")}
        status, seen = post(conn, b'{"SecretId": "s"}', json_call)
        assert status == 201
        assert seen == {"method": "POST", "path": "/", "body": '{"SecretId": "s"}',
                        "target": "secretsmanager.DeleteSecret"}
        for _ in range(2):  # the same client connection, kept alive
            status, seen = post(conn, b"Action=UpdateAccessKey&Version=2010-05-08", form_call)
            assert status == 201 and seen["body"].startswith("Action=UpdateAccessKey")
        assert proxy.take() == {"secretsmanager:DeleteSecret": 1, "iam:UpdateAccessKey": 2}
        assert proxy.take() == {}
        conn.close()
    finally:
        proxy.stop()


def test_holds_each_request_for_the_delay(upstream: str) -> None:
    proxy = proxy_mod.DelayProxy(upstream, delay=0.05).start()
    try:
        conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
        t0 = time.perf_counter()
        for _ in range(3):
            post(conn, b"", {"X-Amz-Target": "AmazonSSM.GetParameter"})
        assert time.perf_counter() - t0 >= 0.15
        assert proxy.take() == {"amazonssm:GetParameter": 3}
        conn.close()
    finally:
        proxy.stop()


def test_adds_no_latency_of_its_own(upstream: str) -> None:
    """Regression: headers and body written apart used to wait for a delayed ACK (~40 ms)."""
    proxy = proxy_mod.DelayProxy(upstream).start()
    try:
        conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
        post(conn, b"", {})
        t0 = time.perf_counter()
        for _ in range(10):
            post(conn, b"{}", {"X-Amz-Target": "secretsmanager.ListSecrets"})
        assert time.perf_counter() - t0 < 0.3  # 10 x 40 ms stalls would be 0.4 s
        conn.close()
    finally:
        proxy.stop()


def test_operation_names() -> None:
    op = proxy_mod.operation
    assert op("POST", "/", {"authorization": SIGV4.format("sts")}, b"") == "POST /"
    assert op("GET", "/?Action=ListUsers&Version=2010-05-08",
              {"authorization": SIGV4.format("iam")}, b"") == "iam:ListUsers"
    assert op("GET", "/moto-api/", {}, b"") == "GET /moto-api/"
