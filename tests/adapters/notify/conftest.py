"""Fixtures: the Slack and PagerDuty stand-ins (one each per session, reset per test) and a
tmp config whose ``notify`` step reaches them, with secrets planted in the inventory."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config
from console.sandbox.api_pagerduty import PagerDutyStandIn
from console.sandbox.api_slack import SlackStandIn
from console.sandbox.standin import Faults, StandIn, serve

HOOK = f"/services/T000/B000/{secrets.token_hex(12)}"
ROUTING_KEY = secrets.token_hex(16)
CANARY = "sk-proj-" + "Ab3" * 14
"""A key-shaped value planted in the integration's name: it must never leave the process."""

NOTIFY = """
name = "tell"
description = "notify the contacts"
[[steps]]
id = "notify"
action = "notify"
"""


@dataclass
class Receivers:
    """Both stand-ins, their URLs and the test's own view of what arrived."""

    slack: SlackStandIn
    pagerduty: PagerDutyStandIn
    webhook_url: str
    pd_url: str

    def messages(self) -> list[dict[str, Any]]:
        """Every Slack message that arrived."""
        return list(self.slack.state["messages"])

    def events(self) -> list[dict[str, Any]]:
        """Every PagerDuty event that arrived (routing keys are not kept)."""
        return list(self.pagerduty.state["events"])

    def faults(self, **kw: Any) -> None:
        """Same faults on both."""
        self.slack.faults = Faults(**kw)
        self.pagerduty.faults = Faults(**kw)


def _reset(app: StandIn) -> None:
    with app.lock:
        app.state = copy.deepcopy(app.seed)
        app.faults = Faults()
        app.requests.clear()


@pytest.fixture(scope="session")
def _servers() -> Iterator[Receivers]:
    slack = SlackStandIn({"hooks": [HOOK], "messages": []})
    pd = PagerDutyStandIn({"routing_keys": [ROUTING_KEY], "events": [], "alerts": {}})
    s1, s2 = serve(slack), serve(pd)
    yield Receivers(slack, pd, f"http://127.0.0.1:{s1.server_address[1]}{HOOK}",
                    f"http://127.0.0.1:{s2.server_address[1]}")
    for s in (s1, s2):
        s.shutdown()
        s.server_close()


@pytest.fixture
def receivers(_servers: Receivers) -> Receivers:
    """The stand-ins, fresh: nothing received, no faults."""
    _reset(_servers.slack)
    _reset(_servers.pagerduty)
    return _servers


def write_config(root: Path, r: Receivers, attempts: int = 8) -> Path:
    """config.toml with slack and pagerduty backends and one integration with both contacts.

    Planted: the canary in the integration's name, the webhook URL as its owner and the
    routing key in the kill-switch owner's ``how``.
    """
    rb = root / "runbooks"
    rb.mkdir(exist_ok=True)
    (rb / "tell.toml").write_text(NOTIFY)
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_attempts = {attempts}

[backends.slack-test]
type = "slack"
webhook_env = "KS_TEST_SLACK_WEBHOOK"

[backends.pd-test]
type = "pagerduty"
base_url = "{r.pd_url}"
routing_key_env = "KS_TEST_PD_KEY"
severity = "error"

[[integrations]]
id = "support-bot"
name = "Support bot {CANARY}"
owner = "{r.webhook_url}"
environment = "prod"
status = "approved"
provider = "openai"
kill_switch_owner = {{ name = "Priya Natarajan", role = "lead", how = "pd {ROUTING_KEY}" }}

[[integrations.contacts]]
name = "AI incident channel"
role = "incident channel"
how = "slack:#ai-incidents"
backend = "slack-test"

[[integrations.contacts]]
name = "AI platform on-call"
role = "on-call"
backend = "pd-test"
""")
    return path


@pytest.fixture
def make_config(tmp_path: Path, receivers: Receivers,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., Config]:
    """A loaded config on the stand-ins, with the webhook URL and routing key in env vars."""
    monkeypatch.setenv("KS_TEST_SLACK_WEBHOOK", receivers.webhook_url)
    monkeypatch.setenv("KS_TEST_PD_KEY", ROUTING_KEY)

    def build(**kw: Any) -> Config:
        return load_config(write_config(tmp_path, receivers, **kw))

    return build
