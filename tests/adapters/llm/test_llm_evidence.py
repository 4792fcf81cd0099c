"""Evidence from the OpenAI and Anthropic Admin APIs, against their stand-ins.

The usage and cost routes are proven first with the official clients: openai 3.54 has typed
bindings (``client.admin.organization.usage.*``); anthropic 2.12 has none for the Admin
usage and cost reports, so they go through the official client's own request path
(``client.get`` with its query encoding, auth headers and error mapping).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from console.sandbox.standin import Request, Response
from tests.adapters.evidence.recorder import Recorder
from tests.adapters.llm.conftest import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    PROJECT,
    SERVICE_ACCOUNT,
    LLMSandbox,
)

OPENAI_REF = {"backend": "openai-sandbox", "project": PROJECT, "api_key_id": OPENAI_KEY}
ANTHROPIC_REF = {"backend": "anthropic-sandbox", "api_key_id": ANTHROPIC_KEY}


@pytest.fixture
def admin(llm: LLMSandbox) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sk-unused", admin_api_key=llm.admin_key("openai"),
                           base_url=llm.openai_url, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def ant(llm: LLMSandbox) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(api_key=llm.admin_key("anthropic"), base_url=llm.anthropic_url,
                                 max_retries=0)
    yield client
    client.close()


def day_ago() -> int:
    return int(time.time()) - 86400


# -- the stand-ins, driven by the official clients ------------------------------------------------

def test_openai_sdk_reads_usage_and_costs(admin: openai.OpenAI) -> None:
    usage = admin.admin.organization.usage
    first = usage.completions(start_time=day_ago(), bucket_width="1h", limit=10,
                              project_ids=[PROJECT], group_by=["api_key_id", "model"])
    assert first.object == "page" and len(first.data) == 10 and first.has_more
    rest = usage.completions(start_time=day_ago(), bucket_width="1h", limit=24,
                             project_ids=[PROJECT], group_by=["api_key_id", "model"],
                             page=first.next_page)
    assert not rest.has_more and rest.next_page is None
    buckets = first.data + rest.data
    assert [b.end_time - b.start_time for b in buckets] == [3600] * len(buckets)
    assert buckets[0].start_time <= day_ago() < buckets[0].end_time, "aligned to the hour"
    results = [r for b in buckets for r in b.results]
    assert {r.object for r in results} == {"organization.usage.completions.result"}
    assert {r.model for r in results} == {"gpt-4o", "gpt-4o-mini"}
    assert OPENAI_KEY in {r.api_key_id for r in results}
    assert all(r.input_tokens > 0 and r.num_model_requests > 0 for r in results)
    late = sum(r.num_model_requests for b in buckets[-3:] for r in b.results
               if r.api_key_id == OPENAI_KEY)
    early = sum(r.num_model_requests for b in buckets[:3] for r in b.results
                if r.api_key_id == OPENAI_KEY)
    assert late > early, "the seeded burst of the last hours shows"
    embeddings = usage.embeddings(start_time=day_ago(), project_ids=[PROJECT])
    assert {r.object for b in embeddings.data for r in b.results} == \
        {"organization.usage.embeddings.result"}
    costs = usage.costs(start_time=day_ago(), project_ids=[PROJECT], group_by=["line_item"])
    lines = [r for b in costs.data for r in b.results]
    assert lines and all(r.object == "organization.costs.result" for r in lines)
    assert all(r.amount is not None and r.amount.currency == "usd" and r.amount.value
               for r in lines)
    assert "gpt-4o, input_tokens" in {r.line_item for r in lines}
    assert usage.completions(start_time=day_ago(), project_ids=["proj_nope"]).data[0].results \
        == []


def test_openai_sdk_bad_usage_parameters_are_refused(admin: openai.OpenAI) -> None:
    usage = admin.admin.organization.usage
    with pytest.raises(openai.BadRequestError) as err:
        usage.costs(start_time=day_ago(), bucket_width="1h")  # type: ignore[arg-type]
    assert "bucket_width" in err.value.message
    with pytest.raises(openai.BadRequestError):
        usage.completions(start_time=day_ago(), bucket_width="1h", limit=500)
    with pytest.raises(openai.BadRequestError):
        usage.completions(start_time=day_ago(), group_by=["colour"])  # type: ignore[list-item]


def test_openai_usage_needs_the_admin_key(llm: LLMSandbox) -> None:
    client = openai.OpenAI(api_key="sk-x", admin_api_key="sk-admin-wrong",
                           base_url=llm.openai_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.admin.organization.usage.completions(start_time=day_ago())
    client.close()


def test_anthropic_client_reads_usage_and_cost_reports(ant: anthropic.Anthropic) -> None:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = {"starting_at": start, "bucket_width": "1h", "limit": 20,
             "api_key_ids": [ANTHROPIC_KEY], "group_by": ["model", "api_key_id"]}
    page: dict = ant.get("/v1/organizations/usage_report/messages", cast_to=object,
                         options={"params": query})  # type: ignore[assignment]
    assert len(page["data"]) == 20 and page["has_more"] and page["next_page"]
    more: dict = ant.get("/v1/organizations/usage_report/messages", cast_to=object,
                         options={"params": {**query, "page": page["next_page"]}}
                         )  # type: ignore[assignment]
    assert not more["has_more"]
    results = [r for b in page["data"] + more["data"] for r in b["results"]]
    assert {r["api_key_id"] for r in results} == {ANTHROPIC_KEY}
    assert all(r["uncached_input_tokens"] > 0 and r["output_tokens"] > 0 for r in results)
    assert set(results[0]["cache_creation"]) == {"ephemeral_1h_input_tokens",
                                                 "ephemeral_5m_input_tokens"}
    costs: dict = ant.get("/v1/organizations/cost_report", cast_to=object, options={
        "params": {"starting_at": start, "group_by": ["workspace_id", "description"]}}
                          )  # type: ignore[assignment]
    lines = [r for b in costs["data"] for r in b["results"]]
    assert lines and {r["currency"] for r in lines} == {"USD"}
    assert all(float(r["amount"]) > 0 and r["workspace_id"] == "wrkspc_sandbox" for r in lines)
    with pytest.raises(anthropic.BadRequestError):
        ant.get("/v1/organizations/cost_report", cast_to=object,
                options={"params": {"starting_at": start, "bucket_width": "1h"}})
    with pytest.raises(anthropic.BadRequestError):
        ant.get("/v1/organizations/usage_report/messages", cast_to=object,
                options={"params": {"bucket_width": "1h"}})


# -- preserve() ------------------------------------------------------------------------------


def test_openai_preserve_key_usage_and_costs(llm: LLMSandbox) -> None:
    adapter = llm.openai_adapter()
    sink = Recorder()
    try:
        adapter.preserve(OPENAI_REF, sink)
    finally:
        adapter.close()
    assert sink.failures == []
    assert sink.sources == {"keys", "usage", "usage-embeddings", "costs"}
    key = sink.data("keys")["key"]
    assert key["id"] == OPENAI_KEY and key["name"] == "support-bot"
    assert {"created_at", "last_used_at", "owner"} <= set(key)
    assert "redacted_value" not in key
    usage = sink.data("usage-completions")
    assert usage["project_id"] == PROJECT and usage["end_time"] - usage["start_time"] == 86400
    assert usage["bucket_width"] == "1h" and not usage["capped"]
    assert OPENAI_KEY in {r["api_key_id"] for b in usage["buckets"] for r in b["results"]}
    costs = sink.data("costs")
    assert all(r["amount"]["currency"] == "usd" and isinstance(r["amount"]["value"], float)
               for b in costs["buckets"] for r in b["results"])
    asked = [r for r in llm.openai.requests if r["path"] == "/v1/organization/usage/completions"]
    assert asked[0]["query"]["project_ids[]"] == [PROJECT]
    assert asked[0]["query"]["group_by[]"] == ["api_key_id", "model"]
    assert llm.value("openai", OPENAI_KEY) not in sink.everything()


def test_openai_preserve_service_account(llm: LLMSandbox) -> None:
    adapter = llm.openai_adapter()
    sink = Recorder()
    try:
        adapter.preserve({"backend": "openai-sandbox", "project": PROJECT,
                          "service_account_id": SERVICE_ACCOUNT}, sink)
    finally:
        adapter.close()
    keys = sink.data("keys")
    assert keys["service_account"]["id"] == SERVICE_ACCOUNT and keys["found"]
    assert keys["service_account"]["role"] == "member"


def test_openai_one_failing_source_is_reported_and_the_rest_comes(
        llm: LLMSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = llm.openai.handle_inner

    def costs_broken(req: Request) -> Response:
        if req.path == "/v1/organization/costs":
            return llm.openai.error(500, "The server had an error", "server_error")
        return inner(req)

    monkeypatch.setattr(llm.openai, "handle_inner", costs_broken)
    adapter = llm.openai_adapter()
    sink = Recorder()
    try:
        adapter.preserve(OPENAI_REF, sink)
    finally:
        adapter.close()
    assert sink.sources == {"keys", "usage", "usage-embeddings"}
    [(source, message)] = sink.failures
    assert source == "costs" and "The server had an error" in message


def test_openai_deleted_key_is_recorded_as_not_found(llm: LLMSandbox) -> None:
    del llm.openai.state["projects"][PROJECT]["api_keys"][OPENAI_KEY]
    adapter = llm.openai_adapter()
    sink = Recorder()
    try:
        adapter.preserve(OPENAI_REF, sink)
    finally:
        adapter.close()
    assert sink.data("keys") == {"project": PROJECT, "api_key_id": OPENAI_KEY,
                                 "found": False, "key": None}
    assert "usage" in sink.sources, "usage is still preserved"


def test_anthropic_preserve_key_usage_and_costs(llm: LLMSandbox) -> None:
    adapter = llm.anthropic_adapter()
    sink = Recorder()
    try:
        adapter.preserve(ANTHROPIC_REF, sink)
    finally:
        adapter.close()
    assert sink.failures == [] and sink.sources == {"keys", "usage", "costs"}
    key = sink.data("keys")["key"]
    assert {key["id"], key["status"], key["workspace_id"]} == \
        {ANTHROPIC_KEY, "active", "wrkspc_sandbox"}
    assert key["created_by"] == {"id": "user_sandbox", "type": "user"}
    assert "partial_key_hint" not in key
    usage = sink.data("usage-messages")
    assert usage["api_key_id"] == ANTHROPIC_KEY and usage["bucket_width"] == "1h"
    assert sum(r["output_tokens"] for b in usage["buckets"] for r in b["results"]) > 0
    costs = sink.data("costs")
    assert costs["workspace_id"] == "wrkspc_sandbox"
    assert {r["workspace_id"] for b in costs["buckets"] for r in b["results"]} == \
        {"wrkspc_sandbox"}
    asked = [r for r in llm.anthropic.requests
             if r["path"] == "/v1/organizations/usage_report/messages"]
    assert asked[0]["query"]["api_key_ids[]"] == [ANTHROPIC_KEY]
    hint = llm.value("anthropic", ANTHROPIC_KEY)
    assert hint[:10] not in sink.everything() and hint[-4:] + '"' not in sink.everything()


def test_anthropic_down_reports_every_source(llm: LLMSandbox) -> None:
    from console.sandbox.standin import Faults

    llm.anthropic.faults = Faults(error_rate=1.0, error_status=500)
    adapter = llm.anthropic_adapter()
    sink = Recorder()
    try:
        adapter.preserve(ANTHROPIC_REF, sink)  # never raises
    finally:
        adapter.close()
    assert sink.items == {}
    assert sink.failed_sources == {"keys", "usage", "costs"}
