"""Fixtures for the AWS adapter tests: one real moto server per session, reset per test."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

try:
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - fail loudly under CI, never skip silently there
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("moto[server] is not installed", allow_module_level=True)

CANARY = "sk-canary-" + "7f3e9b2a1c4d5e6f"
"""A planted key value that must never show up in any Change, Verdict or error."""


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A session-wide moto server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto URL with state wiped and test credentials in env vars named by the options."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    monkeypatch.setenv("KS_TEST_AWS_KEY", "testing")
    monkeypatch.setenv("KS_TEST_AWS_SECRET", "testing")
    return moto_url


def options(url: str, **extra: Any) -> dict[str, Any]:
    """Backend options pointing an aws-* adapter at ``url``."""
    return {"endpoint_url": url, "region": "us-east-1", "access_key_env": "KS_TEST_AWS_KEY",
            "secret_key_env": "KS_TEST_AWS_SECRET", **extra}


def client(url: str, service: str) -> Any:
    """The test's own boto3 client (its view of the server, independent of the adapter)."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))
