"""Fixtures for adapter tests against a real OpenBao dev server (one per session)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac
import pytest

from tests.servers import BaoServer


@pytest.fixture
def root(bao: BaoServer) -> Iterator[hvac.Client]:
    """An hvac client with the root token (the test's own view of the server)."""
    client = hvac.Client(url=bao.url, token=bao.token)
    yield client
    client.adapter.close()


@pytest.fixture
def kv_mount(root: hvac.Client) -> Iterator[str]:
    """A fresh KV v2 mount per test, removed afterwards."""
    mount = f"t-{uuid.uuid4().hex[:12]}"
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    root.sys.disable_secrets_engine(path=mount)


@pytest.fixture
def vault_env(bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> BaoServer:
    """VAULT_TOKEN set to the root token for the adapter under test."""
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", bao.token)
    return bao
