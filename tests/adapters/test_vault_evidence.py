"""Evidence from Vault / OpenBao (real dev server): KV v2 metadata, token and lease lookups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hvac
import pytest

from adapters.vault import VaultAdapter
from tests.adapters.evidence.recorder import Recorder
from tests.servers import BaoServer, free_port_pair

VALUE = "sk-proj-vaultEvidenceValue" + "9f8e7d6c5b4a3210"


def make(url: str) -> VaultAdapter:
    adapter = VaultAdapter("vault-test", {"url": url, "token_env": "KS_TEST_VAULT_TOKEN"})
    adapter.open()
    return adapter


@pytest.fixture
def adapter(vault_env: BaoServer) -> Iterator[VaultAdapter]:
    a = make(vault_env.url)
    yield a
    a.close()


def test_kv_versions_with_deletion_and_destruction(adapter: VaultAdapter, root: hvac.Client,
                                                  kv_mount: str) -> None:
    kv = root.secrets.kv.v2
    for value in ("sk-first", "sk-second", VALUE):
        kv.create_or_update_secret(path="ai/bot", mount_point=kv_mount,
                                   secret={"api_key": value})
    kv.update_metadata(path="ai/bot", mount_point=kv_mount,
                       custom_metadata={"owner": "support-team"})
    kv.destroy_secret_versions(path="ai/bot", versions=[1], mount_point=kv_mount)
    kv.delete_secret_versions(path="ai/bot", versions=[2], mount_point=kv_mount)
    sink = Recorder()
    adapter.preserve({"backend": "vault-test", "mount": kv_mount, "path": "ai/bot"}, sink)
    assert sink.failures == [] and sink.sources == {"versions"}
    meta = sink.data("versions")
    assert meta["found"] and meta["current_version"] == 3
    assert meta["custom_metadata"] == {"owner": "support-team"}
    versions = meta["versions"]
    assert versions["1"]["destroyed"] is True
    assert versions["2"]["deletion_time"] and not versions["2"]["destroyed"]
    assert versions["3"]["deletion_time"] == "" and versions["3"]["created_time"]
    text = sink.everything()
    assert all(v not in text for v in ("sk-first", "sk-second", VALUE))


def test_missing_path_is_recorded_as_not_found(adapter: VaultAdapter, kv_mount: str) -> None:
    sink = Recorder()
    adapter.preserve({"backend": "vault-test", "mount": kv_mount, "path": "nope"}, sink)
    assert sink.data("versions") == {"mount": kv_mount, "path": "nope", "found": False}


def test_token_lookup_by_accessor_never_keeps_the_token(adapter: VaultAdapter,
                                                        root: hvac.Client) -> None:
    made = root.auth.token.create(policies=["default"], ttl="1h", meta={"app": "support-bot"})
    token, accessor = made["auth"]["client_token"], made["auth"]["accessor"]
    sink = Recorder()
    adapter.preserve({"backend": "vault-test", "kind": "token", "accessor": accessor}, sink)
    data = sink.data("token")
    assert data["found"] and data["accessor"] == accessor
    assert "default" in data["policies"] and data["meta"] == {"app": "support-bot"}
    assert "id" not in data and token not in sink.everything()


def test_leases_under_a_prefix(adapter: VaultAdapter, root: hvac.Client) -> None:
    root.auth.token.create_or_update_role("ev-role", allowed_policies=["default"], orphan=True)
    for _ in range(2):
        root.auth.token.create(role_name="ev-role", policies=["default"], ttl="1h")
    sink = Recorder()
    adapter.preserve({"backend": "vault-test", "kind": "lease",
                      "prefix": "auth/token/create/ev-role"}, sink)
    leases = sink.data("leases")["leases"]
    assert len(leases) == 2 and all(x.startswith("auth/token/create/ev-role/") for x in leases)


def test_unreachable_vault_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", "root-unused")
    a = make(f"http://127.0.0.1:{free_port_pair()}")
    sink = Recorder()
    ref: dict[str, Any] = {"backend": "vault-test", "path": "ai/bot"}
    try:
        a.preserve(ref, sink)
    finally:
        a.close()
    [(source, message)] = sink.failures
    assert source == "versions" and "reach" in message.lower()
