"""GcpSecretManagerAdapter and GcpServiceAccountKeyAdapter against the GCP stand-in."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from adapters.base import NOOP, PlanContext
from adapters.gcp_keys import GcpServiceAccountKeyAdapter
from adapters.gcp_secrets import GcpSecretManagerAdapter, pick_value
from console.errors import (
    AdapterError,
    Conflict,
    NotFound,
    RateLimited,
    Unavailable,
    UndoUnsupported,
)
from console.sandbox.standin import Faults
from tests.adapters.gcp.conftest import CANARY, OLD, OTHER, PROJECT, SA, SECRET, Gcp

CTX = PlanContext(integration="support-bot", step="revoke")
REF = {"backend": "gcp-sm", "name": SECRET}
KEYS_ALL = {"backend": "gcp-keys", "service_account": SA}


def sm_adapter(gcp: Gcp, **opts: Any) -> GcpSecretManagerAdapter:
    a = GcpSecretManagerAdapter("gcp-sm", {"endpoint": gcp.endpoint, "anonymous": True,
                                           "project": PROJECT, **opts})
    a.open()
    return a


def key_adapter(gcp: Gcp) -> GcpServiceAccountKeyAdapter:
    a = GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": gcp.endpoint, "anonymous": True})
    a.open()
    return a


# -- Secret Manager ----------------------------------------------------------------------------

def test_disable_lifecycle_restores_exact_state(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    original = gcp.versions()
    (ch,) = a.plan("credential.disable", REF, CTX)
    assert gcp.versions() == original, "plan must not change anything"
    assert ch.before == {"versions": {"1": "DISABLED", "2": "ENABLED", "3": "ENABLED"}}
    assert ch.after == {"versions": {"1": "DISABLED", "2": "DISABLED", "3": "DISABLED"}}
    assert ch.undo == {"versions": ["2", "3"]} and ch.reversible
    assert not a.verify(ch).ok
    applied = a.apply(ch)
    assert applied == {"versions": ["2", "3"]}
    assert a.apply(ch) == applied  # idempotent
    verdict = a.verify(ch)
    assert verdict.ok and verdict.state == "dead" and "DISABLED state" in verdict.detail
    assert a.read(ch) == ch.after
    (again,) = a.plan("credential.disable", REF, CTX)
    assert again.status == NOOP
    with pytest.raises(UndoUnsupported):
        a.inverse(again, {})
    undo = a.inverse(ch, applied)
    assert undo.action == "credential.enable" and undo.before == ch.after
    assert undo.undo == {"versions": ["2", "3"]} and undo.inverse_of == ch.op_id
    a.apply(undo)
    assert a.verify(undo).ok and a.verify(undo).state == "restored"
    assert gcp.versions() == original, "v1 stays DISABLED: undo enables exactly 2 and 3"
    assert a.read(ch) == ch.before
    a.close()


def test_verify_sees_a_new_version(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    (ch,) = a.plan("credential.disable", REF, CTX)
    a.apply(ch)
    a.client.add_secret_version(parent=SECRET, payload={"data": b"sk-new"}, retry=None)
    verdict = a.verify(ch)
    assert not verdict.ok and verdict.state == "live" and "latest" in verdict.detail
    assert a.read(ch) != ch.after  # the engine sees drift
    a.close()


def test_destroy_is_irreversible_and_uses_etags(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    (ch,) = a.plan("credential.destroy", REF, CTX)
    assert not ch.reversible and "irreversible" in ch.note
    assert ch.undo["versions"] == ["1", "2", "3"] and set(ch.undo["etags"]) == {"1", "2", "3"}
    a.apply(ch)
    a.apply(ch)
    assert set(gcp.versions().values()) == {"DESTROYED"}
    assert a.verify(ch).ok and a.read(ch) == ch.after
    assert a.plan("credential.destroy", REF, CTX)[0].status == NOOP
    with pytest.raises(UndoUnsupported):
        a.inverse(ch, {"versions": ["1", "2", "3"]})
    a.close()


def test_destroy_refuses_a_changed_etag(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    (ch,) = a.plan("credential.destroy", REF, CTX)
    a.client.disable_secret_version(name=f"{SECRET}/versions/2", retry=None)
    a.client.enable_secret_version(name=f"{SECRET}/versions/2", retry=None)  # same state, new etag
    with pytest.raises(Conflict) as err:
        a.apply(ch)
    assert "ABORTED" in str(err.value) and gcp.versions()["2"] == "ENABLED"
    a.close()


def test_enable_on_its_own_enables_latest(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    (ch,) = a.plan("credential.enable", REF, CTX)
    assert ch.status == NOOP  # latest (3) is enabled
    a.client.disable_secret_version(name=f"{SECRET}/versions/3", retry=None)
    (ch,) = a.plan("credential.enable", REF, CTX)
    assert ch.undo == {"versions": ["3"]}
    a.apply(ch)
    assert a.verify(ch).ok and gcp.versions()["3"] == "ENABLED"
    a.close()


def test_reference_by_project_and_id(gcp: Gcp) -> None:
    a = sm_adapter(gcp, project="")
    (ch,) = a.plan("credential.disable", {"name": "support-bot-openai", "project": PROJECT},
                   CTX)
    assert ch.target == f"gcp-sm:{SECRET}"
    with pytest.raises(AdapterError, match="needs a project"):
        a.plan("credential.disable", {"name": "support-bot-openai"}, CTX)
    (alias,) = a.plan("credential.disable", {"secret": SECRET}, CTX)
    assert alias.target == ch.target
    with pytest.raises(AdapterError, match="needs `name`"):
        a.plan("credential.disable", {}, CTX)
    a.close()


def test_reveal_and_scan(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    assert a.reveal(REF) == CANARY  # v3 is JSON {"api_key": ...}
    assert a.reveal({**REF, "field": "missing"}).startswith("{")
    found = dict((ref["name"], value) for ref, value in a.scan())
    assert found == {SECRET: CANARY, OTHER: "sk-sandbox-unlisted"}
    assert all(ref["backend"] == "gcp-sm" for ref, _ in a.scan())
    (ch,) = a.plan("credential.disable", REF, CTX)
    a.apply(ch)
    assert a.reveal(REF) is None  # v1 (old) is disabled too
    assert a.reveal({"name": f"projects/{PROJECT}/secrets/none"}) is None
    assert OLD not in {v for _, v in a.scan()}
    a.close()


def test_pick_value() -> None:
    assert pick_value("sk-plain", None) == "sk-plain"
    assert pick_value('{"x": "only"}', None) == "only"
    assert pick_value('{"a": "1", "token": "t"}', None) == "t"
    assert pick_value('{"a": "1", "k": "2"}', "k") == "2"


def test_errors_are_typed(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    with pytest.raises(NotFound) as nf:
        a.plan("credential.disable", {"name": f"projects/{PROJECT}/secrets/nope"}, CTX)
    assert "projects/ks-test/secrets/nope" in str(nf.value)
    gcp.app.faults = Faults(throttle_rate=1.0, retry_after=4)
    with pytest.raises(RateLimited) as rl:
        a.plan("credential.disable", REF, CTX)
    assert rl.value.retry_after == 4.0 and rl.value.status == 429 and rl.value.retryable
    gcp.app.faults = Faults(error_rate=1.0)
    with pytest.raises(Unavailable) as un:
        a.read(_change(a))
    assert un.value.status == 503
    a.close()


def _change(a: GcpSecretManagerAdapter) -> Any:
    from adapters.base import Change

    return Change("o", "i", "s", "credential.disable", "gcp-sm", a.name, "t", ref=dict(REF))


def test_server_down_and_bad_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = GcpSecretManagerAdapter("gcp-sm", {"endpoint": f"http://127.0.0.1:{port}",
                                           "anonymous": True})
    with pytest.raises(Unavailable) as err:
        a.plan("credential.disable", REF, CTX)
    assert f"127.0.0.1:{port}" in str(err.value) and err.value.retryable
    a.close()
    with pytest.raises(AdapterError, match="http://"):
        GcpSecretManagerAdapter("gcp-sm", {"endpoint": "127.0.0.1:8383"})


def test_partial_apply_completes_through_faults(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    (ch,) = a.plan("credential.disable", REF, CTX)
    calls = {"n": 0}
    real = a.client.disable_secret_version

    def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second version's first attempt is throttled
            gcp.app.faults = Faults(throttle_rate=1.0, retry_after=0.01)
            try:
                return real(*args, **kw)
            finally:
                gcp.app.faults = Faults()
        return real(*args, **kw)

    a.client.disable_secret_version = flaky  # type: ignore[method-assign]
    a.apply(ch)
    assert calls["n"] == 3 and a.read(ch) == ch.after
    a.close()


def test_canary_never_leaks(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    texts: list[str] = []
    for action in ("credential.disable", "credential.destroy", "credential.enable"):
        (ch,) = a.plan(action, REF, CTX)
        texts.append(json.dumps(ch.to_dict()))
    (ch,) = a.plan("credential.disable", REF, CTX)
    texts.append(str(a.verify(ch)))
    applied = a.apply(ch)
    texts += [json.dumps(applied), str(a.verify(ch)), json.dumps(a.read(ch))]
    undo = a.inverse(ch, applied)
    texts.append(json.dumps(undo.to_dict()))
    a.apply(undo)
    texts.append(str(a.verify(undo)))
    for bad in ({"name": f"projects/{PROJECT}/secrets/missing"}, {"name": "a/b"}, {}):
        with pytest.raises(AdapterError) as err:
            a.plan("credential.disable", bad, CTX)
        texts.append(str(err.value) + repr(err.value.__cause__))
    joined = "\n".join(texts)
    assert CANARY not in joined and CANARY[10:] not in joined and OLD not in joined
    a.close()


# -- service-account keys ----------------------------------------------------------------------

def test_keys_disable_all_user_managed(gcp: Gcp) -> None:
    a = key_adapter(gcp)
    original = gcp.keys()
    (ch,) = a.plan("credential.disable", KEYS_ALL, CTX)
    assert gcp.keys() == original
    assert ch.before == {"keys": {"k1aaaa": {"disabled": False}, "k2bbbb": {"disabled": True},
                                  "k3cccc": {"disabled": False}}}
    assert ch.undo == {"keys": ["k1aaaa", "k3cccc"]}
    assert all(v == {"disabled": True} for v in ch.after["keys"].values())
    applied = a.apply(ch)
    a.apply(ch)
    assert a.verify(ch).ok and a.read(ch) == ch.after
    assert gcp.keys()["sysdddd"]["disabled"] is False  # system-managed keys untouched
    assert a.plan("credential.disable", KEYS_ALL, CTX)[0].status == NOOP
    undo = a.inverse(ch, applied)
    a.apply(undo)
    assert a.verify(undo).state == "restored"
    assert gcp.keys() == original and a.read(ch) == ch.before  # k2 stays disabled
    a.close()


def test_keys_one_key_and_delete(gcp: Gcp) -> None:
    a = key_adapter(gcp)
    ref = {**KEYS_ALL, "key": "k1aaaa"}
    (ch,) = a.plan("credential.disable", ref, CTX)
    assert ch.before == {"keys": {"k1aaaa": {"disabled": False}}}
    a.apply(ch)
    assert gcp.keys()["k3cccc"]["disabled"] is False
    (d,) = a.plan("credential.destroy", ref, CTX)
    assert not d.reversible and "irreversible" in d.note
    assert d.after == {"keys": {"k1aaaa": {"deleted": True}}}
    a.apply(d)
    a.apply(d)
    assert "k1aaaa" not in gcp.keys() and a.verify(d).ok and a.read(d) == d.after
    with pytest.raises(UndoUnsupported):
        a.inverse(d, {"keys": ["k1aaaa"]})
    with pytest.raises(NotFound):
        a.plan("credential.disable", ref, CTX)
    a.close()


def test_keys_errors(gcp: Gcp) -> None:
    a = key_adapter(gcp)
    with pytest.raises(NotFound) as nf:
        a.plan("credential.disable", {"service_account": f"nobody@{PROJECT}.iam.gserviceaccount"
                                      ".com"}, CTX)
    assert "nobody@" in str(nf.value)
    with pytest.raises(AdapterError, match="service_account"):
        a.plan("credential.disable", {"key": "x"}, CTX)
    gcp.app.faults = Faults(throttle_rate=1.0, retry_after=2)
    with pytest.raises(RateLimited) as rl:
        a.plan("credential.disable", KEYS_ALL, CTX)
    assert rl.value.retry_after == 2.0 and "RESOURCE_EXHAUSTED" in str(rl.value)
    gcp.app.faults = Faults(error_rate=1.0)
    with pytest.raises(Unavailable):
        a.plan("credential.disable", KEYS_ALL, CTX)
    a.close()
    with pytest.raises(AdapterError, match="http://"):
        GcpServiceAccountKeyAdapter("k", {"endpoint": "127.0.0.1:8383"})


def test_adapters_declare_permissions() -> None:
    for cls in (GcpSecretManagerAdapter, GcpServiceAccountKeyAdapter):
        for kind, spec in cls.ACTIONS.items():
            assert spec.kind == kind and spec.permissions and spec.schema["properties"]
        assert not cls.ACTIONS["credential.destroy"].reversible
    assert GcpSecretManagerAdapter.CAN_REVEAL and not GcpServiceAccountKeyAdapter.CAN_REVEAL
