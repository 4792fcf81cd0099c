"""SSM Parameter Store adapter against a real moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.aws_ssm import SsmParameterAdapter
from adapters.base import PlanContext, canonical_json
from console.errors import AdapterError, NotFound, UndoUnsupported
from tests.adapters.aws.conftest import CANARY, client, options

CTX = PlanContext("support-bot", "revoke", run_id="r-1")
NAME = "/ai/support-bot/openai"


@pytest.fixture
def ssm(moto: str) -> Any:
    return client(moto, "ssm")


@pytest.fixture
def adapter(moto: str) -> Iterator[SsmParameterAdapter]:
    a = SsmParameterAdapter("aws-ssm", options(moto))
    a.open()
    yield a
    a.close()


@pytest.fixture
def planted(ssm: Any) -> dict[str, Any]:
    ssm.put_parameter(Name=NAME, Value="sk-older", Type="SecureString")
    ssm.put_parameter(Name=NAME, Value=json.dumps({"api_key": CANARY}), Type="SecureString",
                      Overwrite=True)
    return {"backend": "aws-ssm", "name": NAME}


def app_read(ssm: Any) -> str:
    return str(ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"])


def test_disable_verify_undo_roundtrip(adapter: SsmParameterAdapter, ssm: Any,
                                       planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.disable", planted, CTX)
    assert change.before == {"exists": True, "type": "SecureString", "value_version": 2,
                             "tombstone": False}
    assert change.after == {**change.before, "value_version": 3, "tombstone": True}
    assert change.undo["restore_version"] == 2
    assert json.loads(app_read(ssm)) == {"api_key": CANARY}, "plan has no side effects"

    applied = adapter.apply(change)
    assert adapter.read(change) == change.after and adapter.verify(change).ok
    assert json.loads(app_read(ssm))["revoked_by"] == "killswitch"
    [again] = adapter.plan("credential.disable", planted, CTX)
    assert again.status == "noop"
    adapter.apply(change)  # idempotent: no second tombstone version
    assert ssm.get_parameter(Name=NAME)["Parameter"]["Version"] == 3

    undo = adapter.inverse(change, applied)
    assert undo.before == change.after and undo.after == change.before
    adapter.apply(undo)
    assert adapter.verify(undo).ok
    assert adapter.read(change) == change.before
    assert json.loads(app_read(ssm)) == {"api_key": CANARY}
    adapter.apply(undo)  # idempotent
    assert ssm.get_parameter(Name=NAME)["Parameter"]["Version"] == 4

    redo = adapter.inverse(undo, {})
    adapter.apply(redo)
    assert adapter.read(change) == change.after and adapter.verify(redo).ok


def test_enable_planned_from_the_tombstone(adapter: SsmParameterAdapter, ssm: Any,
                                           planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.disable", planted, CTX)
    adapter.apply(change)
    [enable] = adapter.plan("credential.enable", planted, CTX)
    assert enable.status == "observed" and enable.undo["restore_version"] == 2
    adapter.apply(enable)
    assert adapter.verify(enable).ok and json.loads(app_read(ssm)) == {"api_key": CANARY}


def test_verify_fails_while_live(adapter: SsmParameterAdapter, planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.disable", planted, CTX)
    verdict = adapter.verify(change)
    assert not verdict.ok and verdict.state == "live"


def test_destroy_is_irreversible(adapter: SsmParameterAdapter, ssm: Any,
                                 planted: dict[str, Any]) -> None:
    [change] = adapter.plan("credential.destroy", planted, CTX)
    assert not change.reversible and "irreversible" in change.note
    adapter.apply(change)
    assert adapter.verify(change).ok and adapter.read(change) == {"exists": False}
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=NAME)
    with pytest.raises(UndoUnsupported):
        adapter.inverse(change, {})
    assert adapter.plan("credential.destroy", planted, CTX)[0].status == "noop"


def test_missing_parameter_is_not_found(adapter: SsmParameterAdapter) -> None:
    with pytest.raises(NotFound):
        adapter.plan("credential.disable", {"backend": "aws-ssm", "name": "/no/such"}, CTX)


def test_reveal_and_scan(adapter: SsmParameterAdapter, ssm: Any,
                         planted: dict[str, Any]) -> None:
    ssm.put_parameter(Name="/plain", Value="sk-plain", Type="SecureString")
    ssm.put_parameter(Name="/not-secret", Value="hello", Type="String")
    assert adapter.reveal(planted) == CANARY
    found = {canonical_json(ref): value for ref, value in adapter.scan()}
    assert found == {canonical_json({**planted, "field": "api_key"}): CANARY,
                     canonical_json({"backend": "aws-ssm", "name": "/plain"}): "sk-plain"}


def test_secret_value_never_leaks(adapter: SsmParameterAdapter,
                                  planted: dict[str, Any]) -> None:
    seen: list[str] = []
    [change] = adapter.plan("credential.disable", planted, CTX)
    seen.append(canonical_json(change.to_dict()))
    applied = adapter.apply(change)
    seen += [canonical_json(applied), str(adapter.verify(change))]
    undo = adapter.inverse(change, applied)
    adapter.apply(undo)
    seen += [canonical_json(undo.to_dict()), str(adapter.verify(undo))]
    try:
        adapter.plan("credential.disable", {"backend": "aws-ssm", "name": "/nope"}, CTX)
    except AdapterError as exc:
        seen.append(str(exc))
    assert not [s for s in seen if CANARY in s or "sk-older" in s]


def test_tombstone_and_undo_carry_the_current_tier(adapter: SsmParameterAdapter,
                                                   ssm: Any) -> None:
    """Fails without ``Tier``: moto keeps the tier, real SSM would use the default tier and
    refuse to write an Advanced parameter back as Standard, so the request is checked."""
    ssm.put_parameter(Name=NAME, Value="sk-big-" + "x" * 5000, Type="SecureString",
                      Tier="Advanced")
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(params["body"]))

    adapter.ssm.meta.events.register("before-call.ssm.PutParameter", record)
    ref = {"backend": "aws-ssm", "name": NAME}
    [change] = adapter.plan("credential.disable", ref, CTX)
    applied = adapter.apply(change)
    undo = adapter.inverse(change, applied)
    adapter.apply(undo)
    assert adapter.verify(undo).ok
    assert [(p["Name"], p.get("Tier")) for p in sent] == [(NAME, "Advanced")] * 2, sent
    assert ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [NAME]}])["Parameters"][0]["Tier"] == \
        "Advanced"
