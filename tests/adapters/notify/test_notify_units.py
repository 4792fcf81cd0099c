"""The notify adapters and receivers directly: wire shapes, errors, redaction, seeds."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from adapters.base import PlanContext
from adapters.notify_common import REDACTED, call_with_chain_head, chain_text, redact
from adapters.pagerduty import PagerDutyAdapter
from adapters.slack import SlackWebhookAdapter
from console.config import load_config
from console.errors import AdapterError, AuthError, Timeout, Unavailable
from console.sandbox import api_pagerduty, api_slack
from tests.adapters.notify.conftest import CANARY, ROUTING_KEY, Receivers

CTX = PlanContext("app", "notify", run_id="r-1", incident="INC-1", operator="op",
                  runbook="kill-switch", facts={"name": "App", "environment": "dev"})
REF = {"backend": "s", "name": "channel"}


def test_slack_receiver_answers_plain_text(receivers: Receivers) -> None:
    ok = httpx.post(receivers.webhook_url, json={"text": "hi"})
    assert (ok.status_code, ok.text) == (200, "ok")
    assert ok.headers["content-type"].startswith("text/plain")
    bad = httpx.post(receivers.webhook_url, content=b"not json")
    assert (bad.status_code, bad.text) == (400, "invalid_payload")
    empty = httpx.post(receivers.webhook_url, json={})
    assert (empty.status_code, empty.text) == (400, "no_text")
    gone = httpx.post(receivers.webhook_url.rsplit("/", 1)[0] + "/nope", json={"text": "x"})
    assert (gone.status_code, gone.text) == (404, "no_service")
    receivers.faults(throttle_rate=1.0, retry_after=3)
    slow = httpx.post(receivers.webhook_url, json={"text": "x"})
    assert (slow.status_code, slow.text, slow.headers["retry-after"]) == (429, "rate_limited",
                                                                           "3")
    assert [m["text"] for m in receivers.messages()] == ["hi"]


def test_pagerduty_receiver_validates_events(receivers: Receivers) -> None:
    url = receivers.pd_url + "/v2/enqueue"
    short = httpx.post(url, json={"routing_key": "x", "event_action": "trigger"})
    assert short.status_code == 400 and "32 characters" in short.json()["errors"][0]
    no_payload = httpx.post(url, json={"routing_key": ROUTING_KEY, "event_action": "trigger"})
    assert no_payload.status_code == 400
    resolve = httpx.post(url, json={"routing_key": ROUTING_KEY, "event_action": "resolve"})
    assert resolve.status_code == 400 and "dedup_key" in resolve.json()["errors"][0]
    ok = httpx.post(url, json={"routing_key": ROUTING_KEY, "event_action": "trigger",
                               "payload": {"summary": "s", "source": "t",
                                           "severity": "info"}})
    assert ok.status_code == 202 and ok.json()["status"] == "success"
    assert ok.json()["dedup_key"] in receivers.pagerduty.state["alerts"]


def test_slack_200_without_ok_is_not_success(receivers: Receivers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_UNIT_HOOK", receivers.webhook_url)
    a = SlackWebhookAdapter("s", {"webhook_env": "KS_UNIT_HOOK"})
    [change] = a.plan("notify", REF, CTX)
    receivers.slack.route("POST", r"/services/.*",
                          lambda req: api_slack.Response(200, "<html>portal</html>"))
    receivers.slack._routes.insert(0, receivers.slack._routes.pop())
    try:
        with pytest.raises(AdapterError, match="without `ok`") as err:
            a.apply(change)
        assert not err.value.retryable
    finally:
        receivers.slack._routes.pop(0)
    assert not a.verify(change).ok
    a.close()


def test_unreachable_and_hung_endpoints_are_retryable(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T1/B1/{'z' * 24}"
    monkeypatch.setenv("KS_UNIT_HOOK", url)
    a = SlackWebhookAdapter("s", {"webhook_env": "KS_UNIT_HOOK", "request_timeout": 0.5})
    [change] = a.plan("notify", REF, CTX)
    with pytest.raises(Unavailable) as err:
        a.apply(change)
    assert url not in str(err.value) and "z" * 24 not in str(err.value)
    a.close()
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        hung = f"http://127.0.0.1:{listener.getsockname()[1]}/services/T1/B1/{'y' * 24}"
        monkeypatch.setenv("KS_UNIT_HOOK", hung)
        b = SlackWebhookAdapter("s", {"webhook_env": "KS_UNIT_HOOK", "request_timeout": 0.2})
        with pytest.raises(Timeout, match="may or may not have been delivered") as t:
            b.apply(b.plan("notify", REF, CTX)[0])
        assert t.value.retryable and "y" * 24 not in str(t.value)
        b.close()


def test_missing_secret_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KS_UNIT_NONE", raising=False)
    for adapter in (SlackWebhookAdapter("s", {"webhook_env": "KS_UNIT_NONE"}),
                    PagerDutyAdapter("p", {"routing_key_env": "KS_UNIT_NONE"})):
        with pytest.raises(AuthError, match="KS_UNIT_NONE") as err:
            adapter.open()
        assert err.value.hint and "export KS_UNIT_NONE" in err.value.hint


def test_options_are_validated_without_io() -> None:
    with pytest.raises(AdapterError, match="severity"):
        PagerDutyAdapter("p", {"severity": "loud"})
    with pytest.raises(AdapterError, match="base_url"):
        PagerDutyAdapter("p", {"base_url": "events.pagerduty.com"})
    assert PagerDutyAdapter("p", {}).base_url == "https://events.pagerduty.com"


def test_redact_removes_key_shaped_values() -> None:
    text = redact(f"name {CANARY} url https://hooks.slack.com/services/T1/B2/abc "
                  f"key {ROUTING_KEY} token=abc123 ok-words", ["hunter2hunter2"])
    assert CANARY not in text and "hooks.slack.com" not in text and ROUTING_KEY not in text
    assert "abc123" not in text and text.count(REDACTED) == 4 and "ok-words" in text
    assert redact("prefix hunter2hunter2 suffix", ["hunter2hunter2"]) == \
        f"prefix {REDACTED} suffix"
    assert redact("r-20261122-112955-45f9 support-bot INC-77") == \
        "r-20261122-112955-45f9 support-bot INC-77"


def test_sandbox_seeds_write_the_secret_files(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("""
[settings]
audit_db = ".sandbox/audit.db"
[sandbox]
dir = ".sandbox"
[backends.slack-sandbox]
type = "slack"
webhook_env = "KILLSWITCH_SANDBOX_SLACK_WEBHOOK"
webhook_file = ".sandbox/slack-webhook.url"
[backends.pagerduty-sandbox]
type = "pagerduty"
base_url = "http://127.0.0.1:8394"
routing_key_env = "KILLSWITCH_SANDBOX_PAGERDUTY_KEY"
routing_key_file = ".sandbox/pagerduty-routing.key"
""")
    config = load_config(tmp_path / "config.toml")
    assert api_slack.wanted(config) and api_pagerduty.wanted(config)
    slack = api_slack.seed(config)
    url_file = tmp_path / ".sandbox" / "slack-webhook.url"
    url = url_file.read_text().strip()
    assert url.startswith("http://127.0.0.1:8393/services/T000/B000/")
    assert slack["hooks"] == [url.removeprefix("http://127.0.0.1:8393")]
    assert url_file.stat().st_mode & 0o777 == 0o600
    assert api_slack.seed(config) == slack, "the seed keeps the same hook"
    pd = api_pagerduty.seed(config)
    key = (tmp_path / ".sandbox" / "pagerduty-routing.key").read_text().strip()
    assert pd["routing_keys"] == [key] and len(key) == 32
    assert api_pagerduty.seed(config)["routing_keys"] == [key]


def test_chain_head_is_per_call_and_per_thread() -> None:
    import threading

    assert chain_text() == ""
    head = (42, "3f2a9c0d1e2b4f56" + "0" * 48)
    assert call_with_chain_head(head, chain_text) == "seq 42, hash 3f2a9c0d1e2b4f56"
    assert chain_text() == "", "reset after the call"
    seen: list[str] = []
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        def body() -> None:
            barrier.wait(timeout=10)  # both threads hold their own head at the same time
            seen.append(chain_text())
        call_with_chain_head((n, f"{n:x}" * 16), body)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (10, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == ["seq 10, hash aaaaaaaaaaaaaaaa", "seq 11, hash bbbbbbbbbbbbbbbb"]


def test_notifications_carry_the_chain_head_when_given(receivers: Receivers,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_UNIT_HOOK", receivers.webhook_url)
    monkeypatch.setenv("KS_UNIT_PD", ROUTING_KEY)
    slack = SlackWebhookAdapter("s", {"webhook_env": "KS_UNIT_HOOK"})
    pd = PagerDutyAdapter("p", {"base_url": receivers.pd_url, "routing_key_env": "KS_UNIT_PD"})
    head = (7, "ab" * 32)
    try:
        [sc] = slack.plan("notify", REF, CTX)
        [pc] = pd.plan("notify", {**REF, "backend": "p"}, CTX)
        bare = slack.apply(sc)
        applied = call_with_chain_head(head, lambda: slack.apply(sc))
        paged = call_with_chain_head(head, lambda: pd.apply(pc))
        resolved = call_with_chain_head(head, lambda: pd.apply(pd.inverse(pc, paged)))
    finally:
        slack.close()
        pd.close()
    first, second = receivers.messages()
    assert first["text"] == sc.after["text"] and "chain" not in bare
    assert second["text"] == sc.after["text"] + "\nChain: seq 7, hash abababababababab"
    assert applied["chain"] == "seq 7, hash abababababababab"
    trigger, resolve = receivers.events()
    assert trigger["payload"]["custom_details"]["chain"] == "seq 7, hash abababababababab"
    assert paged["chain"] == "seq 7, hash abababababababab"
    assert not resolve.get("payload") and "chain" not in resolved  # a resolve has no payload
    # The head is never part of the plan: the planned change is unchanged by sending.
    assert "Chain" not in sc.after["text"] and "chain" not in pc.after["custom_details"]
