"""Secrets Manager adapter against a real moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.aws_secrets import SecretsManagerAdapter
from adapters.base import PlanContext, canonical_json
from console.errors import AdapterError, AuthError, NotFound, UndoUnsupported
from tests.adapters.aws.conftest import CANARY, client, options

CTX = PlanContext("claims", "revoke", run_id="r-1")


@pytest.fixture
def sm(moto: str) -> Any:
    return client(moto, "secretsmanager")


@pytest.fixture
def adapter(moto: str) -> Iterator[SecretsManagerAdapter]:
    a = SecretsManagerAdapter("aws-sm", options(moto))
    a.open()
    yield a
    a.close()


@pytest.fixture
def planted(sm: Any) -> dict[str, Any]:
    """A secret with two versions; the current one holds the canary."""
    sm.create_secret(Name="ai/claims/openai", SecretString=json.dumps({"api_key": "old"}))
    sm.put_secret_value(SecretId="ai/claims/openai",
                        SecretString=json.dumps({"api_key": CANARY}))
    return {"backend": "aws-sm", "secret_id": "ai/claims/openai"}


def stages(sm: Any, name: str = "ai/claims/openai") -> dict[str, list[str]]:
    raw = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    return {k: sorted(v) for k, v in raw.items() if v}


def app_read(sm: Any, name: str = "ai/claims/openai") -> str:
    # VersionStage=AWSCURRENT: moto's default read ignores stage moves (rollback read bug)
    return str(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])


@pytest.mark.parametrize("method", ["tombstone", "schedule-deletion"])
def test_disable_verify_undo_roundtrip(adapter: SecretsManagerAdapter, sm: Any,
                                       planted: dict[str, Any], method: str) -> None:
    ref = {**planted, "method": method}
    original = stages(sm)
    [change] = adapter.plan("credential.disable", ref, CTX)
    assert change.status == "observed" and change.reversible
    assert stages(sm) == original and app_read(sm) == json.dumps({"api_key": CANARY})
    assert change.before["stages"] == original and not change.before["deleted"]

    applied = adapter.apply(change)
    assert adapter.read(change) == change.after
    assert adapter.verify(change).ok
    if method == "tombstone":
        assert json.loads(app_read(sm))["revoked_by"] == "killswitch"
    else:
        with pytest.raises(sm.exceptions.InvalidRequestException, match="marked deleted"):
            app_read(sm)

    [again] = adapter.plan("credential.disable", ref, CTX)
    assert again.status == "noop"
    assert adapter.apply(change) is not None  # idempotent
    assert adapter.read(change) == change.after

    undo = adapter.inverse(change, applied)
    assert undo.action == "credential.enable" and undo.before == change.after
    adapter.apply(undo)
    assert adapter.verify(undo).ok
    assert adapter.read(change) == change.before
    assert stages(sm) == original, "undo restores the exact version ids and stages"
    assert app_read(sm) == json.dumps({"api_key": CANARY})


def test_default_method_is_schedule_deletion(adapter: SecretsManagerAdapter,
                                             planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.disable", planted, CTX)
    assert change.undo["method"] == "schedule-deletion"
    assert change.undo["recovery_window_days"] == 7
    [c30] = adapter.plan("credential.disable", {**planted, "recovery_window_days": 30}, CTX)
    assert c30.undo["recovery_window_days"] == 30


def test_tombstone_on_single_version_secret_restores_exactly(
        adapter: SecretsManagerAdapter, sm: Any) -> None:
    sm.create_secret(Name="solo", SecretString="sk-only")
    original = stages(sm, "solo")
    ref = {"backend": "aws-sm", "secret_id": "solo", "method": "tombstone"}
    [change] = adapter.plan("credential.disable", ref, CTX)
    applied = adapter.apply(change)
    assert adapter.verify(change).ok
    adapter.apply(adapter.inverse(change, applied))
    assert stages(sm, "solo") == original and app_read(sm, "solo") == "sk-only"


def test_enable_planned_from_the_tombstone(adapter: SecretsManagerAdapter, sm: Any,
                                           planted: dict[str, Any]) -> None:
    ref = {**planted, "method": "tombstone"}
    [change] = adapter.plan("credential.disable", ref, CTX)
    adapter.apply(change)
    [enable] = adapter.plan("credential.enable", ref, CTX)
    assert enable.status == "observed"
    adapter.apply(enable)
    assert adapter.verify(enable).ok
    assert app_read(sm) == json.dumps({"api_key": CANARY})


def test_verify_fails_while_live(adapter: SecretsManagerAdapter,
                                 planted: dict[str, Any]) -> None:
    for method in ("tombstone", "schedule-deletion"):
        [change] = adapter.plan("credential.disable", {**planted, "method": method}, CTX)
        verdict = adapter.verify(change)
        assert not verdict.ok and verdict.state == "live"


def test_destroy_is_irreversible(adapter: SecretsManagerAdapter, sm: Any,
                                 planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.destroy", planted, CTX)
    assert not change.reversible and "irreversible" in change.note
    assert change.after == {"exists": False}
    adapter.apply(change)
    assert adapter.verify(change).ok and adapter.read(change) == {"exists": False}
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=planted["secret_id"])
    with pytest.raises(UndoUnsupported):
        adapter.inverse(change, {})
    [again] = adapter.plan("credential.destroy", planted, CTX)
    assert again.status == "noop"


def test_missing_secret_is_not_found(adapter: SecretsManagerAdapter) -> None:
    with pytest.raises(NotFound, match="no/such"):
        adapter.plan("credential.disable", {"backend": "aws-sm", "secret_id": "no/such"}, CTX)


def test_missing_credentials_name_the_env_var(moto: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KS_TEST_AWS_KEY")
    a = SecretsManagerAdapter("aws-sm", options(moto))
    with pytest.raises(AuthError, match="KS_TEST_AWS_KEY"):
        a.open()


def test_server_down_is_unavailable() -> None:
    import os

    os.environ.setdefault("KS_TEST_AWS_KEY", "x")
    os.environ.setdefault("KS_TEST_AWS_SECRET", "x")
    a = SecretsManagerAdapter("aws-sm", options("http://127.0.0.1:9", timeout=2))
    with pytest.raises(AdapterError) as err:
        a.plan("credential.disable", {"backend": "aws-sm", "secret_id": "x"}, CTX)
    assert err.value.retryable and "127.0.0.1:9" in str(err.value)


def test_bad_options_are_rejected_without_io() -> None:
    with pytest.raises(AdapterError):
        SecretsManagerAdapter("b", {"method": "shred"})
    with pytest.raises(AdapterError):
        SecretsManagerAdapter("b", {"recovery_window_days": 3})
    SecretsManagerAdapter("b", {})  # nothing required, nothing contacted


def test_reveal_and_scan(adapter: SecretsManagerAdapter, sm: Any,
                         planted: dict[str, Any]) -> None:
    sm.create_secret(Name="plain", SecretString="sk-plain")
    assert adapter.reveal(planted) == CANARY
    assert adapter.reveal({"backend": "aws-sm", "secret_id": "plain"}) == "sk-plain"
    found = {canonical_json(ref): value for ref, value in adapter.scan()}
    assert found[canonical_json({**planted, "field": "api_key"})] == CANARY
    assert found[canonical_json({"backend": "aws-sm", "secret_id": "plain"})] == "sk-plain"
    for ref_json in found:
        assert adapter.reveal(json.loads(ref_json)) == found[ref_json]


def test_secret_value_never_leaks(adapter: SecretsManagerAdapter,
                                  planted: dict[str, Any]) -> None:
    seen: list[str] = []
    for method in ("tombstone", "schedule-deletion"):
        ref = {**planted, "method": method}
        [change] = adapter.plan("credential.disable", ref, CTX)
        seen.append(canonical_json(change.to_dict()))
        seen.append(str(adapter.verify(change)))
        applied = adapter.apply(change)
        seen += [canonical_json(applied), str(adapter.verify(change))]
        undo = adapter.inverse(change, applied)
        adapter.apply(undo)
        seen += [canonical_json(undo.to_dict()), str(adapter.verify(undo))]
    try:
        adapter.plan("credential.disable", {"backend": "aws-sm", "secret_id": "nope"}, CTX)
    except AdapterError as exc:
        seen.append(str(exc))
    assert not [s for s in seen if CANARY in s or "7f3e9b2a" in s]
