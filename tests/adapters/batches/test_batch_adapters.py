"""The five batch.cancel adapters against their stand-ins, directly and through the engine."""

from __future__ import annotations

import pytest

from adapters.base import PlanContext
from console.engine.service import Session
from console.errors import AdapterError, AuthError, IrreversibleNotAllowed, RateLimited, Unavailable
from tests.adapters.batches.conftest import NO_VAR, PROVIDERS, BatchSandbox

ALL = list(PROVIDERS)
DONE = {"cancelling", "cancelled", "canceling", "ended", "Stopping", "Stopped",
        "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"}


def ctx(provider: str) -> PlanContext:
    return PlanContext(PROVIDERS[provider][0], "cancel-batches", run_id="r-test")


def mine(box: BatchSandbox, provider: str) -> set[str]:
    """Ids of the stand-in jobs that belong to the provider's integration."""
    app, integ = box.app(provider), PROVIDERS[provider][0]
    out = set()
    for jid, job in app.jobs().items():
        if provider in ("openai", "azure") and job["metadata"].get("integration") == integ or \
                provider == "anthropic" and job["_workspace"] == "wrkspc_codereview" or \
                provider == "bedrock" and job["jobName"].startswith(f"{integ}-") or \
                provider == "vertex" and job["labels"].get("integration") == integ:
            out.add(jid)
    return out


@pytest.mark.parametrize("provider", ALL)
def test_plan_lists_only_running_jobs_of_the_integration(batches: BatchSandbox,
                                                         provider: str) -> None:
    a = batches.adapter(provider)
    before = batches.statuses(provider)
    changes = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
    assert batches.statuses(provider) == before, "plan must not change anything"
    assert {r["method"] for r in batches.app(provider).requests} == {"GET"}
    [c] = changes
    assert c.status == "observed" and c.reversible is False
    assert c.before == {"status": "running"} and c.after == {"status": "cancelling"}
    assert c.op_id.endswith("/0")
    job = c.undo["job"]
    assert job["id"] in mine(batches, provider)
    assert job["input"] or job["output"], "file locations are recorded"
    assert job["counts"] and "failed" in job and c.undo["status_before"]
    assert "cannot be undone" in c.note and "resubmitted" in c.note
    assert "1 ended job left alone" in c.note
    a.close()


@pytest.mark.parametrize("provider", ALL)
def test_apply_verify_second_plan_and_others_untouched(batches: BatchSandbox,
                                                       provider: str) -> None:
    a = batches.adapter(provider)
    others = {k: v for k, v in batches.statuses(provider).items()
              if k not in mine(batches, provider)}
    [c] = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
    data = a.apply(c)
    assert data["status_after"] in DONE and "counts" in data
    assert a.read(c) == c.after
    verdict = a.verify(c)
    assert verdict.ok and verdict.state == "cancelled", verdict
    assert a.apply(c)["status_after"] in DONE, "a second apply is harmless"
    again = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
    assert [x.status for x in again] == ["noop"]
    assert "2 ended jobs left alone" in again[0].note
    assert a.verify(again[0]).ok
    now = batches.statuses(provider)
    assert {k: now[k] for k in others} == others, "another integration's job was touched"
    a.close()


def test_verify_reports_cancelling_when_the_wait_runs_out(
        batches: BatchSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    app = batches.app("openai")
    monkeypatch.setattr(app, "TRANSITIONS", {**app.TRANSITIONS,
                                             "cancelling": ("cancelled", 600.0, 10**6)})
    a = batches.adapter("openai", wait=0.3)
    [c] = a.plan("batch.cancel", batches.ref("openai"), ctx("openai"))
    a.apply(c)
    v = a.verify(c)
    assert v.ok and v.state == "cancelling" and "total 120" in v.detail
    b = batches.adapter("bedrock", wait=0)
    [d] = b.plan("batch.cancel", batches.ref("bedrock"), ctx("bedrock"))
    assert b.verify(d).state == "STILL RUNNING" and not b.verify(d).ok


def test_refs_must_scope_the_jobs(batches: BatchSandbox) -> None:
    for provider, bad in (("openai", {}), ("azure", {"metadata": {}}), ("anthropic", {}),
                          ("bedrock", {"name_prefix": ""}), ("vertex", {"labels": {}})):
        a = batches.adapter(provider)
        ref = {**{k: v for k, v in batches.ref(provider).items()
                  if k not in ("metadata", "workspace", "name_prefix", "labels")}, **bad}
        with pytest.raises(AdapterError):
            a.plan("batch.cancel", ref, ctx(provider))


def test_typed_errors(batches: BatchSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    app = batches.app("anthropic")
    app.faults.throttle_rate, app.faults.retry_after = 1.0, 7
    a = batches.adapter("anthropic")
    with pytest.raises(RateLimited) as err:
        a.plan("batch.cancel", batches.ref("anthropic"), ctx("anthropic"))
    assert err.value.retry_after == 7
    app.faults.throttle_rate, app.faults.error_rate = 0.0, 1.0
    with pytest.raises(Unavailable):
        a.plan("batch.cancel", batches.ref("anthropic"), ctx("anthropic"))
    b = batches.adapter("bedrock")
    batches.app("bedrock").faults.throttle_rate = 1.0
    with pytest.raises(RateLimited, match="ThrottlingException"):
        b.plan("batch.cancel", batches.ref("bedrock"), ctx("bedrock"))
    monkeypatch.setenv(NO_VAR, "sk-wrong")
    with pytest.raises(AuthError, match="Incorrect API key"):
        batches.adapter("openai").plan("batch.cancel", batches.ref("openai"), ctx("openai"))
    monkeypatch.delenv(NO_VAR)
    wrong_ws = {**batches.ref("anthropic"), "workspace": "wrkspc_not_mine"}
    app.faults.error_rate = 0.0
    with pytest.raises(AdapterError, match="cannot act in workspace"):
        batches.adapter("anthropic").plan("batch.cancel", wrong_ws, ctx("anthropic"))


def test_missing_key_names_the_variable(batches: BatchSandbox) -> None:
    a = batches.adapter("openai", key_file="/nonexistent/key")
    with pytest.raises(AuthError, match=NO_VAR):
        a.plan("batch.cancel", batches.ref("openai"), ctx("openai"))


async def test_engine_needs_consent_then_cancels_everything(batches: BatchSandbox) -> None:
    s = Session(batches.config, operator="tester", incident="INC-5")
    integs = [v[0] for v in PROVIDERS.values()]
    plan = await s.plan("cancel-batches", integs)
    assert len(plan.changes) == 5 and all(not c.reversible for c in plan.changes)
    with pytest.raises(IrreversibleNotAllowed):
        await s.apply(plan, reason="leak")
    result = await s.apply(plan, reason="leak", allow_irreversible=True)
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    assert all(r.verified and r.verdict == "cancelled" for r in result.results.values())
    again = await s.plan("cancel-batches", integs)
    assert {c.status for c in again.changes} == {"noop"}
    assert s.audit.verify().ok


async def test_faults_at_30_percent_converge(batches: BatchSandbox) -> None:
    config = batches.reload(max_attempts=14, timeout=0.3, wait=5.0)
    for app in batches.apps.values():
        f = app.faults
        f.throttle_rate, f.error_rate, f.timeout_rate = 0.1, 0.1, 0.1
        f.retry_after, f.hang = 0.01, 0.5
    s = Session(config, operator="tester", incident="INC-5")
    integs = [v[0] for v in PROVIDERS.values()]
    plan = await s.plan("cancel-batches", integs)
    assert all(c.status == "observed" for c in plan.changes), [c.error for c in plan.changes]
    result = await s.apply(plan, reason="chaos", allow_irreversible=True)
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    for app in batches.apps.values():
        app.faults.throttle_rate = app.faults.error_rate = app.faults.timeout_rate = 0.0
    for provider in PROVIDERS:
        now = batches.statuses(provider)
        assert all(now[j] in DONE | {"completed", "Completed", "JOB_STATE_SUCCEEDED"}
                   for j in mine(batches, provider))
        assert sum(s in ("in_progress", "InProgress", "JOB_STATE_RUNNING")
                   for s in now.values()) >= 1, "the other integration's job still runs"


def test_canary_key_never_leaks(batches: BatchSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-proj-CANARY-7f3e9b1c2d4a"
    batches.app("openai").state["keys"].append(canary)
    batches.app("anthropic").state["keys"][canary] = ["wrkspc_codereview"]
    monkeypatch.setenv(NO_VAR, canary)
    out: list[str] = []
    for provider in ("openai", "azure", "anthropic"):
        a = batches.adapter(provider)
        [c] = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
        out += [str(c.to_dict()), str(a.apply(c)), str(a.verify(c))]
        batches.app(provider).faults.error_rate = 1.0
        with pytest.raises(Unavailable) as err:
            a.plan("batch.cancel", batches.ref(provider), ctx(provider))
        out.append(f"{err.value} {err.value.hint}")
        batches.app(provider).faults.error_rate = 0.0
    monkeypatch.setenv(NO_VAR, canary[:-1] + "X")
    with pytest.raises(AuthError) as bad:
        batches.adapter("openai").plan("batch.cancel", batches.ref("openai"), ctx("openai"))
    out.append(f"{bad.value} {bad.value.hint}")
    assert not any(canary in text or canary[:-1] in text for text in out)
