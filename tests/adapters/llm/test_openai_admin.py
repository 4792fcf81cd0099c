"""OpenAI Admin adapter against the OpenAI stand-in (and through the engine)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from adapters.base import PlanContext
from adapters.openai_admin import OpenAIAdminAdapter
from console.engine.service import Session
from console.errors import (
    AuthError,
    IrreversibleNotAllowed,
    RateLimited,
    Timeout,
    Unavailable,
    UndoUnsupported,
)
from console.sandbox.api_openai import key_object
from tests.adapters.llm.conftest import OPENAI_KEY, PROJECT, SERVICE_ACCOUNT, LLMSandbox

REF = {"backend": "openai-sandbox", "project": PROJECT, "api_key_id": OPENAI_KEY}
SA_REF = {"backend": "openai-sandbox", "project": PROJECT, "service_account_id": SERVICE_ACCOUNT}
CTX = PlanContext("support-bot", "revoke", run_id="r-test")


@pytest.fixture
def adapter(llm: LLMSandbox) -> Iterator[OpenAIAdminAdapter]:
    a = llm.openai_adapter()
    yield a
    a.close()


def keys(llm: LLMSandbox) -> dict[str, object]:
    return copy.deepcopy(llm.openai.state["projects"][PROJECT])


@pytest.mark.parametrize("action", ["credential.disable", "credential.destroy"])
def test_plan_is_read_only_and_irreversible(adapter: OpenAIAdminAdapter, llm: LLMSandbox,
                                            action: str) -> None:
    before = keys(llm)
    [c] = adapter.plan(action, REF, CTX)
    assert keys(llm) == before, "plan must not change anything"
    assert c.status == "observed" and c.reversible is False
    assert c.before["exists"] is True and c.before["name"] == "support-bot"
    assert c.before["redacted_value"].startswith("sk-...")
    assert c.after == {"exists": False}
    note = c.note.lower()
    assert "irreversible" in note and "delete" in note
    assert "flag" in note and "egress" in note and "--allow-irreversible" in note
    assert {r["method"] for r in llm.openai.requests} == {"GET"}


def test_delete_verify_probe_and_second_apply(adapter: OpenAIAdminAdapter,
                                              llm: LLMSandbox) -> None:
    value = llm.value("openai", OPENAI_KEY)
    assert adapter.probe(value).state == "live"
    [c] = adapter.plan("credential.destroy", REF, CTX)
    adapter.apply(c)
    assert OPENAI_KEY not in llm.openai.state["projects"][PROJECT]["api_keys"]
    v = adapter.verify(c)
    assert v.ok and v.state == "dead"
    assert adapter.read(c) == c.after
    probe = adapter.probe(value)
    assert probe.ok and probe.state == "revoked"
    [again] = adapter.plan("credential.destroy", REF, CTX)
    assert again.status == "noop" and "already deleted" in again.note
    assert adapter.apply(c)["already_gone"] is True  # idempotent: 404 on a second delete
    with pytest.raises(UndoUnsupported):
        adapter.inverse(c, {})


def test_service_account_delete_kills_its_keys(adapter: OpenAIAdminAdapter,
                                               llm: LLMSandbox) -> None:
    value = llm.value("openai", SERVICE_ACCOUNT)
    assert adapter.probe(value).state == "live"
    [c] = adapter.plan("credential.disable", SA_REF, CTX)
    assert c.before == {"exists": True, "name": "batch-worker", "role": "member"}
    assert not c.reversible and "together with all its keys" in c.note
    adapter.apply(c)
    assert adapter.verify(c).ok
    assert adapter.probe(value).state == "revoked"


def test_unknown_key_value_is_revoked_and_enable_is_refused(adapter: OpenAIAdminAdapter) -> None:
    assert adapter.probe("sk-sandbox-unknown").state == "revoked"
    with pytest.raises(Exception, match="does not offer credential.enable"):
        adapter.plan("credential.enable", REF, CTX)


def test_missing_admin_key_names_the_variable(llm: LLMSandbox) -> None:
    a = OpenAIAdminAdapter("o", {"base_url": llm.openai_url,
                                 "admin_key_env": "KS_TEST_LLM_NO_SUCH_VAR"})
    with pytest.raises(AuthError, match="KS_TEST_LLM_NO_SUCH_VAR"):
        a.plan("credential.disable", REF, CTX)


def test_env_admin_key_and_bad_admin_key(llm: LLMSandbox,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_OPENAI_ADMIN", llm.admin_key("openai"))
    a = OpenAIAdminAdapter("o", {"base_url": llm.openai_url,
                                 "admin_key_env": "KS_TEST_OPENAI_ADMIN"})
    assert a.plan("credential.disable", REF, CTX)[0].status == "observed"
    a.close()
    monkeypatch.setenv("KS_TEST_OPENAI_ADMIN", "sk-admin-wrong-canary-123")
    with pytest.raises(AuthError) as err:
        a.plan("credential.disable", REF, CTX)
    assert err.value.status == 401 and "Invalid admin API key" in err.value.msg
    assert "sk-admin-wrong-canary-123" not in str(err.value)
    a.close()


def test_rate_limit_and_5xx_are_typed(adapter: OpenAIAdminAdapter, llm: LLMSandbox) -> None:
    llm.openai.faults.throttle_rate, llm.openai.faults.retry_after = 1.0, 7
    with pytest.raises(RateLimited) as err:
        adapter.plan("credential.disable", REF, CTX)
    assert err.value.retry_after == 7 and err.value.retryable
    assert "Rate limit reached" in err.value.msg and "request id req_" in err.value.msg
    llm.openai.faults.throttle_rate = 0.0
    llm.openai.faults.error_rate = 1.0
    with pytest.raises(Unavailable) as err5:
        adapter.plan("credential.disable", REF, CTX)
    assert err5.value.status == 503 and "server had an error" in err5.value.msg


def test_timeout_and_unreachable(llm: LLMSandbox) -> None:
    llm.openai.faults.timeout_rate, llm.openai.faults.hang = 1.0, 1.0
    a = llm.openai_adapter(request_timeout=0.2)
    with pytest.raises(Timeout, match="did not answer in time"):
        a.plan("credential.disable", REF, CTX)
    a.close()
    b = llm.openai_adapter(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(Unavailable, match="http://127.0.0.1:9/v1"):
        b.plan("credential.disable", REF, CTX)
    assert b.probe("sk-x").state == "unknown"
    b.close()


async def test_engine_refuses_delete_without_consent(llm: LLMSandbox) -> None:
    s = Session(llm.config, operator="tester", incident="INC-4")
    plan = await s.plan("revoke", ["support-bot"])
    assert [c.reversible for c in plan.changes] == [False]
    with pytest.raises(IrreversibleNotAllowed) as err:
        await s.apply(plan, reason="leak")
    assert err.value.exit_code == 3
    assert OPENAI_KEY in llm.openai.state["projects"][PROJECT]["api_keys"]
    result = await s.apply(plan, reason="leak", allow_irreversible=True)
    assert result.exit_code() == 0 and result.count("applied") == 1
    assert all(r.verified and r.verdict == "dead" for r in result.results.values())
    assert OPENAI_KEY not in llm.openai.state["projects"][PROJECT]["api_keys"]
    again = await s.plan("revoke", ["support-bot"])
    assert {c.status for c in again.changes} == {"noop"}
    assert s.audit.verify().ok


async def test_faults_at_30_percent_converge(llm: LLMSandbox) -> None:
    config = llm.reload(max_attempts=12, request_timeout=0.3)
    f = llm.openai.faults
    f.throttle_rate, f.error_rate, f.timeout_rate = 0.1, 0.1, 0.1
    f.retry_after, f.hang = 0.01, 0.6
    s = Session(config, operator="tester", incident="INC-4")
    plan = await s.plan("destroy", ["support-bot", "batch-worker", "spare-keys"])
    assert all(c.status == "observed" for c in plan.changes), [c.error for c in plan.changes]
    result = await s.apply(plan, reason="chaos", allow_irreversible=True)
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    f.throttle_rate = f.error_rate = f.timeout_rate = 0.0
    proj = llm.openai.state["projects"][PROJECT]
    assert proj["api_keys"] == {} and proj["service_accounts"] == {}


def test_canary_never_leaks(adapter: OpenAIAdminAdapter, llm: LLMSandbox) -> None:
    canary = "sk-CANARY-openai-7f3e9b1c2d4a"
    proj = llm.openai.state["projects"][PROJECT]
    proj["api_keys"]["key_canary"] = key_object("key_canary", "canary", canary)
    proj["api_keys"]["key_canary"]["redacted_value"] = canary  # a misbehaving API
    ref = {**REF, "api_key_id": "key_canary"}
    out: list[str] = []
    out.append(str(adapter.probe(canary)))
    [c] = adapter.plan("credential.destroy", ref, CTX)
    out.append(str(c.to_dict()))
    out.append(str(adapter.apply(c)))
    out.append(str(adapter.verify(c)))
    out.append(str(adapter.probe(canary)))
    llm.openai.faults.error_rate = 1.0
    out.append(str(adapter.probe(canary)))
    with pytest.raises(Unavailable) as err:
        adapter.plan("credential.destroy", ref, CTX)
    out.append(str(err.value))
    assert "redacted_value" not in c.before, "an unredacted value must never be kept"
    assert not any(canary in text for text in out)
