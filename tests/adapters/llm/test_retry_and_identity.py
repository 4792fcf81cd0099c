"""Issue 9 for the LLM admin adapters: 409 is retried as the official SDKs retry it, and every
request names the Killswitch run in its ``User-Agent``.

Both stand-ins answer 409 while their ``conflicts`` counter is above zero; the official SDKs
(pinned, retries on) prove that is an answer they retry, and the engine must do the same.
"""

from __future__ import annotations

from importlib.metadata import version

import anthropic
import httpx
import openai
import pytest

from adapters.openai_admin import OpenAIAdminAdapter
from console.engine.service import Session
from tests.adapters.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY, PROJECT, LLMSandbox


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"message": "busy"}},
                          request=httpx.Request("POST", "http://127.0.0.1/x"))


@pytest.mark.parametrize(("status", "headers", "retryable"), [
    (409, {}, True),                             # both SDKs: "Retry on lock timeouts"
    (408, {}, True),                             # both SDKs: request timeouts
    (429, {"x-should-retry": "false"}, False),   # the header wins over the status
    (400, {"x-should-retry": "true"}, True),
    (400, {}, False),
    (404, {}, False),
])
def test_retryable_exactly_where_the_sdks_retry(status: int, headers: dict[str, str],
                                                retryable: bool) -> None:
    """409 fails on today's map (Conflict, not retryable)."""
    api = OpenAIAdminAdapter("openai-test", {}).api  # no key read, no request sent
    err = api.error(_response(status, **headers), "project p API key k")
    assert err.retryable is retryable and err.status == status


def test_the_sdks_retry_the_standins_409(llm: LLMSandbox) -> None:
    """The stand-ins' 409 is one the official clients retry (max_retries=1 suffices)."""
    llm.anthropic.state["conflicts"] = 1
    with anthropic.Anthropic(api_key=llm.admin_key("anthropic"), base_url=llm.anthropic_url,
                             max_retries=1) as client:
        key = client.organization.api_keys.update(ANTHROPIC_KEY, status="inactive")
    assert key.status == "inactive" and llm.anthropic.state["conflicts"] == 0
    llm.openai.state["conflicts"] = 1
    with openai.OpenAI(api_key="unused", admin_api_key=llm.admin_key("openai"),
                       base_url=llm.openai_url, max_retries=1) as oc:
        deleted = oc.admin.organization.projects.api_keys.delete(OPENAI_KEY,
                                                                 project_id=PROJECT)
    assert deleted.deleted and llm.openai.state["conflicts"] == 0
    with anthropic.Anthropic(api_key=llm.admin_key("anthropic"), base_url=llm.anthropic_url,
                             max_retries=0) as client:
        llm.anthropic.state["conflicts"] = 1
        with pytest.raises(anthropic.ConflictError) as err:
            client.organization.api_keys.update(ANTHROPIC_KEY, status="active")
    assert err.value.status_code == 409


async def test_engine_retries_a_409_anthropic(llm: LLMSandbox) -> None:
    """Fails on today's adapter: the 409 ends the operation as failed."""
    llm.anthropic.state["conflicts"] = 2
    s = Session(llm.config, operator="tester", incident="INC-9")
    plan = await s.plan("revoke", ["code-review-agent"])
    result = await s.apply(plan, reason="leak")
    assert result.count("applied") == len(plan.changes), [
        (r.outcome, r.message) for r in result.results.values()]
    assert llm.anthropic.state["api_keys"][ANTHROPIC_KEY]["status"] == "inactive"
    retried = [e for e in s.audit.events(run_id=plan.run_id) if e["outcome"] == "retrying"]
    assert len(retried) == 2


async def test_engine_retries_a_409_openai(llm: LLMSandbox) -> None:
    """Fails on today's adapter: the 409 ends the operation as failed."""
    llm.openai.state["conflicts"] = 1
    s = Session(llm.config, operator="tester", incident="INC-9")
    plan = await s.plan("destroy", ["support-bot"])
    result = await s.apply(plan, reason="leak", allow_irreversible=True)
    assert result.count("applied") == len(plan.changes), [
        (r.outcome, r.message) for r in result.results.values()]
    assert OPENAI_KEY not in llm.openai.state["projects"][PROJECT]["api_keys"]


async def test_every_request_names_the_run(llm: LLMSandbox) -> None:
    """Fails on httpx's default User-Agent: the providers' audit logs must show the run."""
    s = Session(llm.config, operator="tester", incident="INC-9")
    plan = await s.plan("revoke", ["support-bot", "code-review-agent"])
    result = await s.apply(plan, reason="leak", allow_irreversible=True)
    assert result.count("applied") == len(plan.changes), [
        (r.outcome, r.message) for r in result.results.values()]
    want = f"killswitch/{version('killswitch')} run/{plan.run_id}"
    for url, write in ((llm.openai_url.removesuffix("/v1"), "DELETE"),
                       (llm.anthropic_url, "POST")):
        seen = httpx.get(f"{url}/_sandbox/requests").json()
        assert {r["method"] for r in seen} == {"GET", write}, seen
        assert {r["headers"].get("user-agent") for r in seen} == {want}


def test_the_probe_names_the_run_too(llm: LLMSandbox) -> None:
    """The proof-of-death call is the console's too: same User-Agent."""
    a = llm.anthropic_adapter()
    a.run_id = "r-probe-1"
    assert not a.probe(llm.value("anthropic", ANTHROPIC_KEY)).ok  # still live
    o = llm.openai_adapter()
    o.run_id = "r-probe-1"
    assert not o.probe(llm.value("openai", OPENAI_KEY)).ok
    a.close()
    o.close()
    for url in (llm.openai_url.removesuffix("/v1"), llm.anthropic_url):
        [probe] = httpx.get(f"{url}/_sandbox/requests").json()
        assert probe["path"] == "/v1/models"
        assert probe["headers"]["user-agent"].endswith(" run/r-probe-1")
