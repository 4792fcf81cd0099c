"""The shared HTTP base (adapters/http.py), network-free through its transport hook.

One client per backend, the User-Agent of the run that acts (set per request), the one
status-to-error map with the providers' overrides, Retry-After, transport errors, and a probe
that carries none of the console's credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import version

import httpx
import pytest

from adapters.base import PlanContext
from adapters.http import STATUS_ERRORS, HttpApi, classify
from adapters.openai_admin import OpenAIAdminAdapter
from adapters.unleash import UnleashAdapter
from console.errors import (
    AdapterError,
    AuthError,
    Conflict,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
)

UA = f"killswitch/{version('killswitch')} run/"
KEY = "sk-admin-http-base-canary-0123456789"


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[httpx.Request]]:
    """The requests sent (see :func:`install`); the admin key in its variable."""
    requests: list[httpx.Request] = []
    monkeypatch.setenv("KS_TEST_HTTP_BASE_KEY", KEY)
    yield requests


def install(monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request],
            answer: Callable[[httpx.Request], httpx.Response]) -> None:
    """Route every client through ``HttpApi.TRANSPORT``: record, then ``answer``."""
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request)
    monkeypatch.setattr(HttpApi, "TRANSPORT", httpx.MockTransport(handler))


def openai() -> OpenAIAdminAdapter:
    return OpenAIAdminAdapter("openai-test", {"base_url": "http://openai.test/v1",
                                              "admin_key_env": "KS_TEST_HTTP_BASE_KEY"})


def test_one_client_user_agent_per_request(monkeypatch: pytest.MonkeyPatch,
                                          seen: list[httpx.Request]) -> None:
    install(monkeypatch, seen, lambda r: httpx.Response(200, json={"id": "k", "name": "n"}))
    a = openai()
    a.run_id = "r-plan"
    assert a.api.request("GET", "/organization/x", "x") == {"id": "k", "name": "n"}
    client = a.api.client
    a.run_id = "r-apply"  # the engine may set the run between phases
    a.api.request("GET", "/organization/x", "x")
    assert a.api.client is client, "one client per backend"
    assert [r.headers["user-agent"] for r in seen] == [UA + "r-plan", UA + "r-apply"]
    assert {r.headers["authorization"] for r in seen} == {f"Bearer {KEY}"}
    assert str(seen[0].url) == "http://openai.test/v1/organization/x"
    a.close()
    assert not a.api.opened


@pytest.mark.parametrize(("status", "headers", "cls", "retryable", "wait"), [
    (401, {}, AuthError, False, None),
    (404, {}, NotFound, False, None),
    (409, {}, Conflict, True, None),           # the OpenAI / Anthropic override
    (429, {"retry-after": "7"}, RateLimited, True, 7.0),
    (429, {"retry-after-ms": "1500"}, RateLimited, True, 1.5),
    (503, {"retry-after": "2"}, Unavailable, True, 2.0),
    (418, {}, AdapterError, False, None),
])
def test_status_map(monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], status: int,
                    headers: dict[str, str], cls: type[AdapterError], retryable: bool,
                    wait: float | None) -> None:
    install(monkeypatch, seen, lambda r: httpx.Response(
        status, headers=headers, json={"error": {"message": "said so", "type": "kind"}}))
    a = openai()
    with pytest.raises(AdapterError) as err:
        a.api.request("GET", "/organization/x", "the target")
    assert type(err.value) is cls and err.value.retryable is retryable
    assert err.value.retry_after == wait and err.value.status == status
    assert "said so (kind)" in err.value.msg and "the target" in err.value.msg
    assert err.value.where == "openai-test" and KEY not in str(err.value)
    a.close()


def test_default_map_and_overrides() -> None:
    assert classify(409) == (Conflict, False) and classify(502) == (Unavailable, True)
    assert classify(409, {**STATUS_ERRORS, 409: (Conflict, True)}) == (Conflict, True)
    assert OpenAIAdminAdapter("o", {}).api.statuses[409] == (Conflict, True)
    assert UnleashAdapter("u", {"url": "http://unleash.test"}).api.statuses[409] == \
        (Conflict, False)


def test_missing_ok_and_non_json(monkeypatch: pytest.MonkeyPatch,
                                 seen: list[httpx.Request]) -> None:
    install(monkeypatch, seen, lambda r: httpx.Response(404) if r.method == "GET"
            else httpx.Response(200, text="<html>"))
    a = openai()
    assert a.api.request("GET", "/organization/x", "x", missing_ok=True) is None
    with pytest.raises(AdapterError, match="non-JSON"):
        a.api.request("POST", "/organization/x", "x")
    a.close()


@pytest.mark.parametrize(("exc", "cls"), [
    (httpx.ConnectError("refused"), Unavailable),
    (httpx.ReadTimeout("slow"), Timeout),
])
def test_transport_errors(monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request],
                          exc: Exception, cls: type[AdapterError]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc
    install(monkeypatch, seen, fail)
    a = openai()
    with pytest.raises(cls) as err:
        a.api.request("GET", "/organization/x", "the target")
    assert err.value.retryable and "http://openai.test/v1" in err.value.msg
    a.api.secret_url = True  # a webhook: the URL is the secret
    with pytest.raises(cls) as hidden:
        a.api.request("GET", "/organization/x", "the target")
    assert "openai.test" not in str(hidden.value)
    a.close()


def test_probe_carries_none_of_the_consoles_credentials(
        monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]) -> None:
    install(monkeypatch, seen, lambda r: httpx.Response(401, json={"error": {"message": "no"}}))
    a = openai()
    a.run_id = "r-proof"
    verdict = a.probe("sk-app-key-under-test-0000000000")
    assert verdict.ok and verdict.state == "revoked"
    [probe] = seen
    assert probe.headers["authorization"] == "Bearer sk-app-key-under-test-0000000000"
    assert probe.headers["user-agent"] == UA + "r-proof"
    assert str(probe.url) == "http://openai.test/v1/models"
    a.close()


def test_unleash_names_the_rejected_token(monkeypatch: pytest.MonkeyPatch,
                                          seen: list[httpx.Request]) -> None:
    monkeypatch.setenv("KS_TEST_HTTP_BASE_UNLEASH", "*:*.unleash-admin-token-canary")
    install(monkeypatch, seen, lambda r: httpx.Response(
        401, json={"name": "AuthenticationRequired", "message": "You must log in"}))
    u = UnleashAdapter("u", {"url": "http://unleash.test",
                             "token_env": "KS_TEST_HTTP_BASE_UNLEASH"})
    with pytest.raises(AuthError) as err:
        u.plan("flag.disable", {"flag": "f"}, PlanContext("app", "flags-off"))
    text = str(err.value)
    assert "You must log in (AuthenticationRequired)" in text
    assert "environment variable KS_TEST_HTTP_BASE_UNLEASH was rejected" in text
    assert "unleash-admin-token-canary" not in text
    assert seen[0].headers["authorization"] == "*:*.unleash-admin-token-canary"
    u.close()
