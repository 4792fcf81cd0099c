"""VaultAdapter against a real OpenBao dev server."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest

from adapters.base import NOOP, PlanContext, fingerprint
from adapters.vault import VaultAdapter
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UndoUnsupported,
)
from tests.servers import BaoServer, free_port_pair

CTX = PlanContext(integration="support-bot", step="revoke")


def make(url: str, **opts: Any) -> VaultAdapter:
    adapter = VaultAdapter("vault-test", {"url": url, "token_env": "KS_TEST_VAULT_TOKEN", **opts})
    adapter.open()
    return adapter


@pytest.fixture
def adapter(vault_env: BaoServer) -> Iterator[VaultAdapter]:
    a = make(vault_env.url)
    yield a
    a.close()


@pytest.fixture
def planted(root: hvac.Client, kv_mount: str) -> dict[str, Any]:
    """A secret with two versions; returns the ref and the current value (test memory only)."""
    kv = root.secrets.kv.v2
    kv.create_or_update_secret(path="ai/bot", mount_point=kv_mount,
                               secret={"api_key": "sk-old-" + secrets.token_hex(8)})
    value = "sk-planted-" + secrets.token_hex(16)
    kv.create_or_update_secret(path="ai/bot", mount_point=kv_mount, secret={"api_key": value})
    return {"ref": {"backend": "vault-test", "kind": "kv", "mount": kv_mount, "path": "ai/bot"},
            "value": value, "mount": kv_mount}


def meta(root: hvac.Client, mount: str, path: str = "ai/bot") -> dict[str, Any]:
    return dict(root.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)["data"])


def app_read(root: hvac.Client, mount: str, path: str = "ai/bot") -> str:
    resp = root.secrets.kv.v2.read_secret_version(path=path, mount_point=mount,
                                                   raise_on_deleted_version=True)
    return str(resp["data"]["data"]["api_key"])


def test_plan_has_no_side_effects(adapter: VaultAdapter, root: hvac.Client,
                                  planted: dict[str, Any]) -> None:
    before = meta(root, planted["mount"])
    changes = adapter.plan("credential.disable", planted["ref"], CTX)
    assert meta(root, planted["mount"]) == before
    (ch,) = changes
    assert ch.before == {"version": 2, "deleted": False, "destroyed": False}
    assert ch.after == {"version": 2, "deleted": True, "destroyed": False}
    assert ch.reversible and ch.status == "observed"
    assert ch.undo["versions"] == [2]
    assert ch.precondition == fingerprint(ch.before)
    assert adapter.read(ch) == ch.before


def test_disable_verify_undo_roundtrip(adapter: VaultAdapter, root: hvac.Client,
                                       planted: dict[str, Any]) -> None:
    mount = planted["mount"]
    (ch,) = adapter.plan("credential.disable", planted["ref"], CTX)
    applied = adapter.apply(ch)
    assert applied == {"versions": [2]}
    with pytest.raises(hvac.exceptions.InvalidPath):
        app_read(root, mount)
    assert adapter.read(ch) == ch.after
    verdict = adapter.verify(ch)
    assert verdict.ok and verdict.state == "dead"

    # second apply is a no-op, and planning again reports noop
    adapter.apply(ch)
    assert meta(root, mount)["versions"]["2"]["deletion_time"]
    (again,) = adapter.plan("credential.disable", planted["ref"], CTX)
    assert again.status == NOOP and "already" in again.note

    undo = adapter.inverse(ch, applied)
    assert undo.action == "credential.enable"
    assert undo.before == ch.after and undo.after == ch.before
    assert undo.inverse_of == ch.op_id and undo.op_id == ch.op_id + ":undo"
    assert undo.step == "undo-revoke"
    assert adapter.read(undo) == undo.before  # no drift for the engine
    adapter.apply(undo)
    v = adapter.verify(undo)
    assert v.ok and v.state == "restored"
    m = meta(root, mount)
    assert m["current_version"] == 2 and not m["versions"]["2"]["deletion_time"]
    assert app_read(root, mount) == planted["value"]
    assert adapter.read(undo) == undo.after


def test_verify_fails_while_live(adapter: VaultAdapter, planted: dict[str, Any]) -> None:
    (ch,) = adapter.plan("credential.disable", planted["ref"], CTX)
    verdict = adapter.verify(ch)
    assert not verdict.ok and verdict.state == "live"


def test_destroy_is_irreversible(adapter: VaultAdapter, root: hvac.Client,
                                 planted: dict[str, Any]) -> None:
    (ch,) = adapter.plan("credential.destroy", planted["ref"], CTX)
    assert not ch.reversible and "irreversible" in ch.note
    assert ch.after == {"version": 2, "deleted": False, "destroyed": True}
    adapter.apply(ch)
    adapter.apply(ch)  # idempotent
    assert meta(root, planted["mount"])["versions"]["2"]["destroyed"] is True
    assert adapter.verify(ch).ok
    assert adapter.read(ch) == ch.after
    with pytest.raises(UndoUnsupported):
        adapter.inverse(ch, {"versions": [2]})


def test_noop_change_has_no_inverse(adapter: VaultAdapter, root: hvac.Client,
                                    planted: dict[str, Any]) -> None:
    root.secrets.kv.v2.delete_latest_version_of_secret(path="ai/bot",
                                                       mount_point=planted["mount"])
    (ch,) = adapter.plan("credential.disable", planted["ref"], CTX)
    assert ch.status == NOOP
    with pytest.raises(UndoUnsupported):
        adapter.inverse(ch, {})


def test_token_revoke_by_accessor(adapter: VaultAdapter, root: hvac.Client,
                                  bao: BaoServer) -> None:
    tok = root.auth.token.create(policies=["default"], ttl="1h")["auth"]
    ref = {"backend": "vault-test", "kind": "token", "accessor": tok["accessor"]}
    for action in ("credential.disable", "credential.destroy"):
        (ch,) = adapter.plan(action, ref, CTX)
        assert not ch.reversible and "cannot suspend" in ch.note
        assert ch.before == {"active": True, "policies": 1} and ch.after == {"active": False}
    adapter.apply(ch)
    victim = hvac.Client(url=bao.url, token=tok["client_token"])
    assert not victim.is_authenticated()
    victim.adapter.close()
    assert adapter.verify(ch).state == "dead"
    adapter.apply(ch)  # idempotent
    assert adapter.plan("credential.disable", ref, CTX)[0].status == NOOP
    with pytest.raises(UndoUnsupported):
        adapter.inverse(ch, {})
    for change in (ch,):
        assert tok["client_token"] not in json.dumps(change.to_dict())


def test_lease_prefix_revoke(adapter: VaultAdapter, root: hvac.Client, bao: BaoServer) -> None:
    role = "ir-" + secrets.token_hex(4)
    root.auth.token.create_or_update_role(role, allowed_policies=["default"], orphan=True)
    toks = [root.auth.token.create(role_name=role, policies=["default"], ttl="1h")["auth"]
            ["client_token"] for _ in range(3)]
    ref = {"backend": "vault-test", "kind": "lease", "prefix": f"auth/token/create/{role}"}
    (ch,) = adapter.plan("credential.disable", ref, CTX)
    assert ch.before == {"active": True} and "3 lease(s)" in ch.note and not ch.reversible
    assert not adapter.verify(ch).ok
    adapter.apply(ch)
    for t in toks:
        c = hvac.Client(url=bao.url, token=t)
        assert not c.is_authenticated()
        c.adapter.close()
    assert adapter.verify(ch).ok
    assert adapter.plan("credential.disable", ref, CTX)[0].status == NOOP


def test_missing_token_names_env_var(bao: BaoServer, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    monkeypatch.delenv("KS_TEST_VAULT_TOKEN", raising=False)
    a = VaultAdapter("vault-test", {"url": bao.url, "token_env": "KS_TEST_VAULT_TOKEN",
                                    "token_file": str(tmp_path / "none.token")})
    with pytest.raises(AuthError) as err:
        a.open()
    text = str(err.value)
    assert "KS_TEST_VAULT_TOKEN" in text and "none.token" in text and "export" in text


def test_token_file_fallback(bao: BaoServer, monkeypatch: pytest.MonkeyPatch,
                             tmp_path: Path, kv_mount: str) -> None:
    monkeypatch.delenv("KS_TEST_VAULT_TOKEN", raising=False)
    (tmp_path / "t").write_text(bao.token + "\n")
    a = make(bao.url, token_file=str(tmp_path / "t"))
    with pytest.raises(NotFound) as err:
        a.plan("credential.disable", {"mount": kv_mount, "path": "nope"}, CTX)
    assert f"{kv_mount}/nope" in str(err.value)
    a.close()


def test_bad_token_is_permission_denied(bao: BaoServer, monkeypatch: pytest.MonkeyPatch,
                                        planted: dict[str, Any]) -> None:
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", "hvs.not-a-real-token")
    a = make(bao.url)
    with pytest.raises(PermissionDenied) as err:
        a.plan("credential.disable", planted["ref"], CTX)
    assert "permission denied" in str(err.value) and "ai/bot" in str(err.value)
    assert "hvs.not-a-real-token" not in str(err.value)
    a.close()


def test_server_down_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", "x")
    url = f"http://127.0.0.1:{free_port_pair()}"
    a = make(url)
    with pytest.raises(Unavailable) as err:
        a.plan("credential.disable", {"path": "ai/bot"}, CTX)
    assert url in str(err.value) and "running?" in str(err.value)
    assert err.value.retryable
    a.close()


class _Throttle(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b'{"errors":["request rate limit exceeded"]}'
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_rate_limit_keeps_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Throttle)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        monkeypatch.setenv("KS_TEST_VAULT_TOKEN", "x")
        a = make(f"http://127.0.0.1:{srv.server_address[1]}")
        with pytest.raises(RateLimited) as err:
            a.plan("credential.disable", {"path": "ai/bot"}, CTX)
        assert err.value.retry_after == 7.0 and err.value.status == 429
        assert "rate limit" in str(err.value)
        a.close()
    finally:
        srv.shutdown()
        srv.server_close()
        th.join()


def test_secret_value_never_leaks(adapter: VaultAdapter, planted: dict[str, Any],
                                  bao: BaoServer) -> None:
    value = planted["value"]
    texts: list[str] = []
    for action in ("credential.disable", "credential.destroy"):
        (ch,) = adapter.plan(action, planted["ref"], CTX)
        texts.append(json.dumps(ch.to_dict()))
    (ch,) = adapter.plan("credential.disable", planted["ref"], CTX)
    texts.append(str(adapter.verify(ch)))
    applied = adapter.apply(ch)
    texts += [json.dumps(applied), str(adapter.verify(ch))]
    undo = adapter.inverse(ch, applied)
    texts.append(json.dumps(undo.to_dict()))
    adapter.apply(undo)
    texts.append(str(adapter.verify(undo)))
    for bad in ({"mount": planted["mount"], "path": "missing"}, {"kind": "bogus"}, {}):
        with pytest.raises(AdapterError) as err:
            adapter.plan("credential.disable", bad, CTX)
        texts.append(str(err.value) + repr(err.value.__cause__))
    joined = "\n".join(texts)
    assert value not in joined and value[11:] not in joined
    assert bao.token not in joined


def test_actions_declare_permissions_and_schema() -> None:
    for kind, spec in VaultAdapter.ACTIONS.items():
        assert spec.kind == kind and spec.kill_point == "credentials"
        assert spec.permissions and spec.schema["properties"]
    assert not VaultAdapter.ACTIONS["credential.destroy"].reversible
    with pytest.raises(AdapterError):
        VaultAdapter("v", {"url": "not a url"})
