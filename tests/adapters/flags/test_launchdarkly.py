"""LaunchDarklyAdapter against the stand-in: documented request shapes, exact undo, faults."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import PlanContext
from adapters.launchdarkly import SEMANTIC_PATCH, LaunchDarklyAdapter
from console.config import load_config
from console.engine.service import Session
from console.errors import AuthError, NotFound, PermissionDenied, RateLimited
from console.sandbox.api_launchdarkly import LaunchDarklyStandIn
from tests.adapters.flags.conftest import LD_TOKEN

LD = tuple[LaunchDarklyStandIn, str]
CTX = PlanContext("support-bot", "flags-off", {"reason": "key leaked in a public repo"},
                  run_id="r-ld-1", incident="IR-42")
REF = {"backend": "ld", "project": "ai", "flag": "support-bot-enabled"}


def adapter(url: str) -> LaunchDarklyAdapter:
    a = LaunchDarklyAdapter("ld", {"base_url": url, "token_env": "KS_TEST_LD_TOKEN"})
    a.open()
    return a


def flag_state(app: LaunchDarklyStandIn, flag: str = "support-bot-enabled") -> dict[str, bool]:
    envs = app.state["projects"]["ai"]["flags"][flag]["environments"]
    return {k: v["on"] for k, v in envs.items()}


def patches(url: str) -> list[dict[str, Any]]:
    return [r for r in httpx.get(f"{url}/_sandbox/requests").json() if r["method"] == "PATCH"]


def test_request_shapes_follow_the_documented_api(ld: LD) -> None:
    app, url = ld
    a = adapter(url)
    [change] = a.plan("flag.disable", {**REF, "environments": ["production"]}, CTX)
    assert change.before == {"production": True} and change.after == {"production": False}
    assert patches(url) == [], "plan is read-only"
    a.apply(change)
    [patch] = patches(url)
    assert patch["path"] == "/api/v2/flags/ai/support-bot-enabled"
    assert patch["headers"]["content-type"] == SEMANTIC_PATCH
    assert patch["headers"]["authorization"] == LD_TOKEN, "raw token, no Bearer"
    assert patch["headers"]["ld-api-version"] == "20240415"
    [comment] = app.state["projects"]["ai"]["flags"]["support-bot-enabled"]["comments"]
    assert comment == {**comment, "environmentKey": "production", "kinds": ["turnFlagOff"],
                       "comment": "IR-42 r-ld-1: key leaked in a public repo"}
    gets = [r for r in httpx.get(f"{url}/_sandbox/requests").json() if r["method"] == "GET"]
    assert gets[0]["query"] == {"env": ["production"]}
    assert flag_state(app) == {"production": False, "staging": True, "test": True}
    a.close()


def test_standin_refuses_what_the_real_api_refuses(ld: LD) -> None:
    _, url = ld
    path = f"{url}/api/v2/flags/ai/support-bot-enabled"
    body = {"environmentKey": "production", "instructions": [{"kind": "turnFlagOff"}]}
    plain = httpx.patch(path, json=body, headers={"Authorization": LD_TOKEN})
    assert plain.status_code == 400 and set(plain.json()) >= {"code", "message"}
    bearer = httpx.patch(path, json=body, headers={"Authorization": f"Bearer {LD_TOKEN}",
                                                   "Content-Type": SEMANTIC_PATCH})
    assert bearer.status_code == 401 and bearer.json()["code"] == "unauthorized"
    no_env = httpx.patch(path, content=json.dumps({"instructions": [{"kind": "turnFlagOff"}]}),
                         headers={"Authorization": LD_TOKEN, "Content-Type": SEMANTIC_PATCH})
    assert no_env.status_code == 400 and "environmentKey" in no_env.json()["message"]


def test_disable_all_environments_then_exact_undo(ld: LD) -> None:
    app, url = ld
    a = adapter(url)
    ref = {**REF, "flag": "half-on"}  # production on, test off
    change, already = a.plan("flag.disable", ref, CTX)
    assert change.before == {"production": True} and change.status == "observed"
    assert already.before == {"test": False} and already.status == "noop"
    undo = a.apply(change)
    assert undo == {"prior": {"production": True}}
    verdict = a.verify(change)
    assert verdict.ok and verdict.state == "off"
    assert {c.status for c in a.plan("flag.disable", ref, CTX)} == {"noop"}
    version = app.state["projects"]["ai"]["flags"]["half-on"]["version"]
    a.apply(change)  # idempotent: LaunchDarkly does nothing when already off
    assert app.state["projects"]["ai"]["flags"]["half-on"]["version"] == version
    inverse = a.inverse(change, undo)
    a.apply(inverse)
    assert a.verify(inverse).ok
    assert flag_state(app, "half-on") == {"production": True, "test": False}
    kinds = [c["kinds"] for c in app.state["projects"]["ai"]["flags"]["half-on"]["comments"]]
    assert kinds == [["turnFlagOff"], ["turnFlagOff"], ["turnFlagOn"]]
    assert {c["environmentKey"] for c in
            app.state["projects"]["ai"]["flags"]["half-on"]["comments"]} == {"production"}
    a.close()


def test_errors_carry_the_provider_message(ld: LD, monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = ld
    a = adapter(url)
    with pytest.raises(NotFound, match="Unknown flag nope"):
        a.plan("flag.disable", {**REF, "flag": "nope"}, CTX)
    with pytest.raises(NotFound, match="no environment qa"):
        a.plan("flag.disable", {**REF, "environments": ["qa"]}, CTX)
    a.close()
    monkeypatch.setenv("KS_TEST_LD_TOKEN", "api-wrong-token")
    bad = adapter(url)
    with pytest.raises(AuthError, match="KS_TEST_LD_TOKEN") as err:
        bad.plan("flag.disable", REF, CTX)
    assert "api-wrong-token" not in str(err.value)
    httpx.post(f"{url}/_sandbox/faults", json={"throttle_rate": 1.0, "retry_after": 7})
    with pytest.raises(RateLimited) as limited:
        bad.plan("flag.disable", REF, CTX)
    assert limited.value.retry_after == 7
    bad.close()


RUNBOOK = """
name = "ld-off"
description = "flags off with a reason"
[[steps]]
id = "flags-off"
action = "flag.disable"
options = { reason = "tabletop: runaway agent" }
"""


def write_config(root: Path, url: str, n: int = 4) -> Path:
    (root / "runbooks").mkdir()
    (root / "runbooks" / "ld-off.toml").write_text(RUNBOOK)
    lines = ["[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
             "max_attempts = 20", "", "[backends.ld]", 'type = "launchdarkly"',
             f'base_url = "{url}"', 'token_env = "KS_TEST_LD_TOKEN"', 'project = "ai"', ""]
    for i in range(n):
        lines += ["[[integrations]]", f'id = "app-{i}"', f'name = "App {i}"', 'owner = "t"',
                  'environment = "prod"', 'status = "approved"', 'provider = "openai"',
                  "[[integrations.flags]]", 'backend = "ld"', f'flag = "flag-{i}"', ""]
    (root / "config.toml").write_text("\n".join(lines))
    return root / "config.toml"


async def test_faults_at_30_percent_converge_through_the_engine(ld: LD, tmp_path: Path) -> None:
    from console.sandbox.api_launchdarkly import new_flag

    app, url = ld
    for i in range(4):
        app.state["projects"]["ai"]["flags"][f"flag-{i}"] = new_flag(["production", "test"])
    httpx.post(f"{url}/_sandbox/faults",
               json={"throttle_rate": 0.3, "retry_after": 0.01})
    s = Session(load_config(write_config(tmp_path, url)), operator="tester", incident="IR-9")
    ids = [f"app-{i}" for i in range(4)]
    plan = await s.plan("ld-off", ids)
    assert {c.status for c in plan.changes} == {"observed"}, [c.error for c in plan.changes]
    result = await s.apply(plan, reason="drill")
    assert result.count("applied") == 8, result.failed  # 2 environments x 4 flags
    assert all(r.verified for r in result.results.values())
    retried = [e for e in s.audit.events(run_id=result.run_id) if e["outcome"] == "retrying"]
    requests = httpx.get(f"{url}/_sandbox/requests").json()
    assert retried or len(requests) > 16, "with 30% faults some calls must have been retried"
    for i in range(4):
        assert set(flag_state(app, f"flag-{i}").values()) == {False}
        comments = app.state["projects"]["ai"]["flags"][f"flag-{i}"]["comments"]
        assert all(c["comment"] == f"IR-9 {plan.run_id}: tabletop: runaway agent"
                   for c in comments)
    back = await s.apply(s.restore_plan(plan.run_id), reason="all clear", saved=True)
    assert back.exit_code() == 0, back.failed
    for i in range(4):
        assert set(flag_state(app, f"flag-{i}").values()) == {True}
    trail = json.dumps(s.audit.events(run_id=result.run_id))
    assert LD_TOKEN not in trail


# -- issue 9: conflicts, approvals, User-Agent -------------------------------------------------


def test_standin_refuses_changes_that_conflict_with_pending_ones(ld: LD) -> None:
    app, url = ld
    envs = app.state["projects"]["ai"]["flags"]["support-bot-enabled"]["environments"]
    envs["production"]["pending"] = [{"kind": "scheduledChange", "_id": "sc-1",
                                      "instructions": [{"kind": "turnFlagOn"}]}]
    path = f"{url}/api/v2/flags/ai/support-bot-enabled"
    body = {"environmentKey": "production", "instructions": [{"kind": "turnFlagOff"}]}
    headers = {"Authorization": LD_TOKEN, "Content-Type": SEMANTIC_PATCH}
    refused = httpx.patch(path, content=json.dumps(body), headers=headers)
    assert refused.status_code == 400 and "pending" in refused.json()["message"]
    assert envs["production"]["on"] is True, "all or nothing"
    forced = httpx.patch(path, content=json.dumps(body), headers=headers,
                         params={"ignoreConflicts": "true"})
    assert forced.status_code == 200 and envs["production"]["on"] is False
    assert envs["production"]["pending"], "the pending change stays (it may fail later)"


def test_kill_is_not_blocked_by_a_pending_scheduled_change(ld: LD) -> None:
    """Fails without ignoreConflicts=true: the stand-in answers 400 like LaunchDarkly."""
    app, url = ld
    envs = app.state["projects"]["ai"]["flags"]["support-bot-enabled"]["environments"]
    envs["production"]["pending"] = [{"kind": "approvalRequest", "_id": "ar-1",
                                      "instructions": [{"kind": "turnFlagOn"}]}]
    a = adapter(url)
    [change] = a.plan("flag.disable", {**REF, "environments": ["production"]}, CTX)
    a.apply(change)
    assert a.verify(change).ok and flag_state(app)["production"] is False
    [patch] = patches(url)
    assert patch["query"] == {"ignoreConflicts": ["true"]}
    a.close()


def test_environment_requiring_approvals_says_so_and_how_to_proceed(
        ld: LD, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on a bare 405: the error must name approvals and the two ways forward."""
    app, url = ld
    app.state["projects"]["ai"]["environments"] = {
        "production": {"approvalSettings": {"required": True}}}
    a = adapter(url)
    [change] = a.plan("flag.disable", {**REF, "environments": ["production"]}, CTX)
    with pytest.raises(PermissionDenied, match="requires approvals") as err:
        a.apply(change)
    assert err.value.status == 405 and not err.value.retryable
    hint = err.value.hint
    assert "/api/v2/projects/ai/flags/support-bot-enabled/environments/production/" \
           "approval-requests" in hint and "bypassRequiredApproval" in hint
    assert flag_state(app)["production"] is True
    a.close()
    # a token whose role may bypass required approvals goes through
    app.state["bypass_tokens"] = ["api-bypass-" + LD_TOKEN[-8:]]
    monkeypatch.setenv("KS_TEST_LD_TOKEN", app.state["bypass_tokens"][0])
    b = adapter(url)
    b.apply(change)
    assert b.verify(change).ok
    b.close()


async def test_requests_carry_the_user_agent_with_the_run_id(ld: LD, tmp_path: Path) -> None:
    """Fails on httpx's default User-Agent: LaunchDarkly's audit log must show the run."""
    from console.sandbox.api_launchdarkly import new_flag

    app, url = ld
    app.state["projects"]["ai"]["flags"]["flag-0"] = new_flag(["production", "test"])
    s = Session(load_config(write_config(tmp_path, url, n=1)), operator="t", incident="IR-1")
    plan = await s.plan("ld-off", ["app-0"])
    result = await s.apply(plan, reason="drill")
    assert result.exit_code() == 0, result.failed
    seen = httpx.get(f"{url}/_sandbox/requests").json()
    assert {r["method"] for r in seen} == {"GET", "PATCH"}
    want = f"killswitch/{version('killswitch')} run/{plan.run_id}"
    assert {r["headers"].get("user-agent") for r in seen} == {want}
