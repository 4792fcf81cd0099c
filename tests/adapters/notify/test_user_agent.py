"""Issue 9: Slack and PagerDuty requests name the Killswitch run in their ``User-Agent``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version

from console.config import Config
from console.engine.service import Session
from tests.adapters.notify.conftest import Receivers


async def test_notifications_name_the_run(make_config: Callable[..., Config],
                                          receivers: Receivers) -> None:
    """Fails on httpx's default User-Agent: the receivers' logs must show the run."""
    s = Session(make_config(), operator="alice", incident="INC-9", mode="live")
    plan = await s.plan("tell", ["support-bot"])
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    want = f"killswitch/{version('killswitch')} run/{plan.run_id}"
    for app in (receivers.slack, receivers.pagerduty):
        assert [r["method"] for r in app.requests] == ["POST"], app.name
        assert app.requests[0]["headers"].get("user-agent") == want, app.name
    back = await s.apply(s.restore_plan(plan.run_id), reason="all clear")
    assert back.count("applied") == 2
    undo = f"killswitch/{version('killswitch')} run/{back.run_id}"
    for app in (receivers.slack, receivers.pagerduty):
        assert app.requests[-1]["headers"].get("user-agent") == undo, app.name
