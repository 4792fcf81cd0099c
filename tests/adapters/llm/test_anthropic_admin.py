"""Anthropic Admin adapter against the Anthropic stand-in (and through the engine)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator

import pytest

from adapters.anthropic_admin import AnthropicAdminAdapter
from adapters.base import PlanContext
from console.engine.service import Session
from console.errors import AuthError, Conflict, RateLimited, UndoUnsupported
from console.sandbox.api_anthropic import key_object
from tests.adapters.llm.conftest import ANTHROPIC_KEY, LLMSandbox

REF = {"backend": "anthropic-sandbox", "api_key_id": ANTHROPIC_KEY}
CTX = PlanContext("code-review-agent", "revoke", run_id="r-test")


@pytest.fixture
def adapter(llm: LLMSandbox) -> Iterator[AnthropicAdminAdapter]:
    a = llm.anthropic_adapter()
    yield a
    a.close()


def status(llm: LLMSandbox, key: str = ANTHROPIC_KEY) -> str:
    return str(llm.anthropic.state["api_keys"][key]["status"])


def test_plan_is_read_only(adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    before = copy.deepcopy(llm.anthropic.state)
    [c] = adapter.plan("credential.disable", REF, CTX)
    assert llm.anthropic.state == before
    assert c.status == "observed" and c.reversible
    assert c.before == {"status": "active"} and c.after == {"status": "inactive"}
    assert c.undo == {"api_key_id": ANTHROPIC_KEY, "status": "active"}
    sent = llm.anthropic.requests
    assert {r["method"] for r in sent} == {"GET"}
    assert all(r["headers"].get("x-api-key") and
               r["headers"].get("anthropic-version") == "2023-06-01" for r in sent)


def test_inactive_probe_undo_probe(adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    value = llm.value("anthropic", ANTHROPIC_KEY)
    assert adapter.probe(value).state == "live"
    [c] = adapter.plan("credential.disable", REF, CTX)
    undo_data = adapter.apply(c)
    assert status(llm) == "inactive"
    v = adapter.verify(c)
    assert v.ok and v.state == "dead"
    assert adapter.probe(value).state == "revoked"
    [again] = adapter.plan("credential.disable", REF, CTX)
    assert again.status == "noop"
    with pytest.raises(UndoUnsupported):
        adapter.inverse(again, {})
    adapter.apply(c)  # idempotent
    assert status(llm) == "inactive"

    back = adapter.inverse(c, undo_data)
    assert back.action == "credential.enable" and back.after == {"status": "active"}
    adapter.apply(back)
    assert status(llm) == "active" and adapter.read(back) == c.before
    assert adapter.verify(back).state == "restored"
    assert adapter.probe(value).state == "live"


def test_archived_is_one_way(adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    llm.anthropic.state["api_keys"][ANTHROPIC_KEY]["status"] = "archived"
    [c] = adapter.plan("credential.disable", REF, CTX)
    assert c.status == "noop" and "archived" in c.note
    with pytest.raises(Conflict, match="cannot be reactivated"):
        adapter.plan("credential.enable", REF, CTX)


def test_enable_of_active_key_is_noop(adapter: AnthropicAdminAdapter) -> None:
    [c] = adapter.plan("credential.enable", REF, CTX)
    assert c.status == "noop"


def test_errors_are_typed(llm: LLMSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    a = llm.anthropic_adapter()
    with pytest.raises(Exception, match="not found"):
        a.plan("credential.disable", {**REF, "api_key_id": "apikey_nope"}, CTX)
    llm.anthropic.faults.throttle_rate, llm.anthropic.faults.retry_after = 1.0, 3
    with pytest.raises(RateLimited) as err:
        a.plan("credential.disable", REF, CTX)
    assert err.value.retry_after == 3 and "rate_limit_error" in err.value.msg
    a.close()
    llm.anthropic.faults.throttle_rate = 0.0
    monkeypatch.setenv("KS_TEST_ANTHROPIC_ADMIN", "sk-ant-admin-wrong")
    bad = llm.anthropic_adapter(admin_key_env="KS_TEST_ANTHROPIC_ADMIN")
    with pytest.raises(AuthError, match="authentication_error"):
        bad.plan("credential.disable", REF, CTX)
    bad.close()


async def test_engine_disable_restore_roundtrip(llm: LLMSandbox) -> None:
    s = Session(llm.config, operator="tester", incident="INC-4")
    plan = await s.plan("revoke", ["code-review-agent"])
    assert [c.reversible for c in plan.changes] == [True]
    result = await s.apply(plan, reason="leak")  # reversible: no consent needed
    assert result.exit_code() == 0 and status(llm) == "inactive"
    again = await s.apply(await s.plan("revoke", ["code-review-agent"]), reason="again")
    assert again.count("noop") == 1 and again.exit_code() == 0
    undo = s.restore_plan(plan.run_id)
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0 and status(llm) == "active"
    assert s.audit.verify().ok


async def test_faults_at_30_percent_converge(llm: LLMSandbox) -> None:
    config = llm.reload(max_attempts=12, request_timeout=0.3)
    f = llm.anthropic.faults
    f.throttle_rate, f.error_rate, f.timeout_rate = 0.1, 0.1, 0.1
    f.retry_after, f.hang = 0.01, 0.6
    s = Session(config, operator="tester", incident="INC-4")
    for runbook, wanted in (("revoke", "inactive"), ("reenable", "active")):
        result = await s.apply(await s.plan(runbook, ["code-review-agent"]), reason="chaos")
        assert result.exit_code() == 0, [(r.outcome, r.message)
                                         for r in result.results.values()]
        # a call that timed out client-side may still land later (the stand-in applies it
        # after its hang, as a real provider could): let those settle before going on
        await asyncio.sleep(f.hang + 0.2)
        assert status(llm) == wanted
    f.throttle_rate = f.error_rate = f.timeout_rate = 0.0


def test_canary_never_leaks(adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    canary = "sk-ant-CANARY-5e8d1f0a9c3b"
    llm.anthropic.state["api_keys"]["apikey_canary"] = key_object("apikey_canary", "c", canary)
    ref = {**REF, "api_key_id": "apikey_canary"}
    out = [str(adapter.probe(canary))]
    [c] = adapter.plan("credential.disable", ref, CTX)
    applied = adapter.apply(c)
    out += [str(c.to_dict()), str(applied), str(adapter.verify(c)), str(adapter.probe(canary)),
            str(adapter.inverse(c, applied).to_dict())]
    llm.anthropic.faults.error_rate = 1.0
    out.append(str(adapter.probe(canary)))
    try:
        adapter.plan("credential.disable", ref, CTX)
    except Exception as exc:  # noqa: BLE001 - collecting the text
        out.append(str(exc))
    assert len(out) == 8
    assert not any(canary in text for text in out)
