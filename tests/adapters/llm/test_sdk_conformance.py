"""The stand-ins speak the providers' protocols: driven by the official SDKs (retries off).

openai 3.54.0 and anthropic 2.12.0 are pinned in pyproject; header behaviour differs between
anthropic 1.x (``x-api-key``) and 2.x (``Authorization: Bearer``), so both styles are checked.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.adapters.llm.conftest import (
    ANTHROPIC_KEY,
    EXTRA_KEYS,
    OPENAI_KEY,
    PROJECT,
    SERVICE_ACCOUNT,
    LLMSandbox,
)

assert openai.__version__ == "3.54.0", openai.__version__
assert anthropic.__version__ == "2.12.0", anthropic.__version__


@pytest.fixture
def oai(llm: LLMSandbox) -> Iterator[openai.OpenAI]:
    """An OpenAI client holding the support bot's key and the sandbox admin key."""
    client = openai.OpenAI(api_key=llm.value("openai", OPENAI_KEY),
                           admin_api_key=llm.admin_key("openai"), base_url=llm.openai_url,
                           max_retries=0)
    yield client
    client.close()


@pytest.fixture
def ant_admin(llm: LLMSandbox) -> Iterator[anthropic.Anthropic]:
    """An Anthropic client holding the sandbox admin key (sent as Bearer by 2.x)."""
    client = anthropic.Anthropic(api_key=llm.admin_key("anthropic"), base_url=llm.anthropic_url,
                                 max_retries=0)
    yield client
    client.close()


# -- OpenAI ---------------------------------------------------------------------------------

def test_openai_models_live_then_revoked(oai: openai.OpenAI, llm: LLMSandbox) -> None:
    assert {m.id for m in oai.models.list()} == {"gpt-4o", "gpt-4o-mini"}
    deleted = oai.admin.organization.projects.api_keys.delete(OPENAI_KEY, project_id=PROJECT)
    assert deleted.deleted and deleted.id == OPENAI_KEY
    with pytest.raises(openai.AuthenticationError) as err:
        oai.models.list()
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert llm.value("openai", OPENAI_KEY) not in str(err.value.body)


def test_openai_not_found_has_request_id(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.admin.organization.projects.api_keys.retrieve("key_nope", project_id=PROJECT)
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert isinstance(err.value.body, dict) and "key_nope" in err.value.body["message"]


def test_openai_typed_admin_resources_and_pagination(oai: openai.OpenAI,
                                                    llm: LLMSandbox) -> None:
    keys = oai.admin.organization.projects.api_keys
    got = keys.retrieve(OPENAI_KEY, project_id=PROJECT)
    assert got.name == "support-bot" and got.redacted_value.startswith("sk-...")
    first = keys.list(PROJECT, limit=2)
    assert len(first.data) == 2 and first.has_more
    ids = [k.id for k in keys.list(PROJECT, limit=2)]  # auto-pages with after=<last_id>
    assert ids == [OPENAI_KEY, *EXTRA_KEYS]
    accounts = oai.admin.organization.projects.service_accounts
    assert [s.id for s in accounts.list(PROJECT)] == [SERVICE_ACCOUNT]
    assert accounts.retrieve(SERVICE_ACCOUNT, project_id=PROJECT).role == "member"
    assert accounts.delete(SERVICE_ACCOUNT, project_id=PROJECT).deleted
    # the generic client.get path (bearer = the admin key) sees the same wire shape
    generic = openai.OpenAI(api_key=llm.admin_key("openai"), base_url=llm.openai_url,
                            max_retries=0)
    raw = generic.get(f"/organization/projects/{PROJECT}/api_keys",
                      options={"params": {"limit": 1, "after": EXTRA_KEYS[2]}}, cast_to=object)
    assert raw["data"][0]["id"] == EXTRA_KEYS[3] and raw["has_more"] is False  # type: ignore[index]
    generic.close()


def test_openai_admin_auth_is_checked(llm: LLMSandbox) -> None:
    client = openai.OpenAI(api_key="sk-x", admin_api_key="sk-admin-wrong",
                           base_url=llm.openai_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.admin.organization.projects.api_keys.list(PROJECT)
    client.close()


def test_openai_429_retry_after_parsed(oai: openai.OpenAI, llm: LLMSandbox) -> None:
    llm.openai.faults.throttle_rate, llm.openai.faults.retry_after = 1.0, 2
    with pytest.raises(openai.RateLimitError) as err:
        oai.models.list()
    headers = err.value.response.headers
    assert headers["retry-after"] == "2"
    assert oai._parse_retry_after_header(headers) == 2.0  # the SDK's own parser
    llm.openai.faults.throttle_rate, llm.openai.faults.error_rate = 0.0, 1.0
    with pytest.raises(openai.InternalServerError):
        oai.models.list()


# -- Anthropic ------------------------------------------------------------------------------

def test_anthropic_models_live_then_revoked(ant_admin: anthropic.Anthropic,
                                            llm: LLMSandbox) -> None:
    value = llm.value("anthropic", ANTHROPIC_KEY)
    app = anthropic.Anthropic(api_key=value, base_url=llm.anthropic_url, max_retries=0)
    assert {m.id for m in app.models.list()} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    updated = ant_admin.organization.api_keys.update(ANTHROPIC_KEY, status="inactive")
    assert updated.status == "inactive"
    with pytest.raises(anthropic.AuthenticationError) as err:
        app.models.list()
    assert err.value.status_code == 401 and value not in str(err.value.body)
    assert ant_admin.organization.api_keys.update(ANTHROPIC_KEY, status="active").status \
        == "active"
    assert app.models.list().data
    app.close()


def test_anthropic_both_auth_styles(llm: LLMSandbox) -> None:
    admin = llm.admin_key("anthropic")
    url = f"{llm.anthropic_url}/v1/organizations/api_keys/{ANTHROPIC_KEY}"
    documented = httpx.get(url, headers={"x-api-key": admin, "anthropic-version": "2023-06-01"})
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {admin}",
                                     "anthropic-version": "2026-10-21"})
    assert documented.status_code == bearer.status_code == 200
    assert httpx.get(url).status_code == 401
    sdk = anthropic.Anthropic(api_key=admin, base_url=llm.anthropic_url, max_retries=0)
    assert sdk.organization.api_keys.retrieve(ANTHROPIC_KEY).status == "active"
    sent = llm.anthropic.requests[-1]["headers"]
    assert sent["authorization"].startswith("Bearer ") and "x-api-key" not in sent
    sdk.close()


def test_anthropic_not_found_and_pagination(ant_admin: anthropic.Anthropic,
                                            llm: LLMSandbox) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        ant_admin.organization.api_keys.retrieve("apikey_nope")
    assert err.value.request_id and err.value.request_id.startswith("req_")
    from console.sandbox.api_anthropic import key_object

    for i in range(4):
        llm.anthropic.state["api_keys"][f"apikey_more{i}"] = key_object(
            f"apikey_more{i}", f"more{i}", f"sk-ant-sandbox-more{i}")
    first = ant_admin.organization.api_keys.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    ids = [k.id for k in ant_admin.organization.api_keys.list(limit=2)]
    assert ids == [ANTHROPIC_KEY, *(f"apikey_more{i}" for i in range(4))]
    inactive = ant_admin.get("/v1/organizations/api_keys", cast_to=object,
                             options={"params": {"status": "inactive"}})
    assert inactive["data"] == []  # type: ignore[index]


def test_anthropic_429_retry_after_parsed(ant_admin: anthropic.Anthropic,
                                          llm: LLMSandbox) -> None:
    llm.anthropic.faults.throttle_rate, llm.anthropic.faults.retry_after = 1.0, 4
    with pytest.raises(anthropic.RateLimitError) as err:
        ant_admin.organization.api_keys.list()
    assert err.value.response.headers["retry-after"] == "4"
    assert ant_admin._parse_retry_after_header(err.value.response.headers) == 4.0
    assert err.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
