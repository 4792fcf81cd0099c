"""Issue 9 for the batch adapters: a listing cut at its page cap says so in the plan, and
every HTTP request names the Killswitch run in its ``User-Agent``."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

import pytest

from adapters.base import PlanContext
from adapters.batch_common import MAX_PAGES
from console.engine.service import Session
from console.sandbox import api_anthropic_batches, api_bedrock, api_openai_batches, api_vertex
from tests.adapters.batches.conftest import PROVIDERS, BatchSandbox


def ctx(provider: str) -> PlanContext:
    return PlanContext(PROVIDERS[provider][0], "cancel-batches", run_id="r-cap")


def _ended_jobs(box: BatchSandbox, provider: str, n: int, newer: bool = True) -> None:
    """``n`` ended jobs in the integration's own scope, newer than every seeded one (so the
    integration's running job lies beyond the first ``n`` listed) or older than all."""
    app, now = box.app(provider), time.time() + (0 if newer else -10 * 86400)
    ref = box.ref(provider)
    jobs: dict[str, Any] = {}
    for i in range(n):
        if provider == "openai":
            job = api_openai_batches.batch_object(
                f"batch_newer{i:05d}", "completed", dict(ref["metadata"]), 1, 1, 0,
                int(now) + i)
            jobs[job["id"]] = job
        elif provider == "anthropic":
            job = api_anthropic_batches.batch_object(
                f"msgbatch_newer{i:05d}", ref["workspace"], "ended", 0, 1, 0, now + i)
            jobs[job["id"]] = job
        elif provider == "vertex":
            parent = f"projects/{ref['project']}/locations/{ref['location']}"
            job = api_vertex.job_object(parent, f"9{i:08d}", f"newer-{i}", "JOB_STATE_SUCCEEDED",
                                        dict(ref["labels"]), 1, 0, 0, now + i)
            jobs[job["name"]] = job
        else:
            job = api_bedrock.job_object(f"newer{i:05d}", f"{ref['name_prefix']}newer-{i}",
                                         "Completed", 1, 1, 0, now + i, "us-east-1")
            jobs[job["jobArn"]] = job
    with app.lock:
        app.jobs().update(jobs)


def test_openai_listing_at_the_real_cap_is_not_silent(batches: BatchSandbox) -> None:
    """Fails on today's adapter: it stops after 50 pages and says "nothing to cancel"
    although the integration's running batch lies beyond the cap."""
    _ended_jobs(batches, "openai", MAX_PAGES * 100 + 1)
    a = batches.adapter("openai")
    [change] = a.plan("batch.cancel", batches.ref("openai"), ctx("openai"))
    lists = [r for r in batches.app("openai").requests if r["path"].endswith("/batches")]
    assert len(lists) == MAX_PAGES
    assert change.status == "noop" and "nothing to cancel" not in change.note
    assert "LISTING INCOMPLETE" in change.note and f"{MAX_PAGES} page(s)" in change.note


@pytest.mark.parametrize("provider", ["openai", "anthropic", "bedrock", "vertex"])
def test_capped_listing_marks_every_change(batches: BatchSandbox, provider: str) -> None:
    """Cap lowered to one page: a cancel planned from the first page carries the warning,
    and so does a plan whose running job lies beyond it."""
    _ended_jobs(batches, provider, 150, newer=False)  # page 1 holds the running job
    complete = batches.adapter(provider)
    [full] = complete.plan("batch.cancel", batches.ref(provider), ctx(provider))
    assert full.status == "observed" and "LISTING INCOMPLETE" not in full.note
    a = batches.adapter(provider)
    a.LIST_PAGES = 1
    [cut] = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
    assert cut.status == "observed" and cut.undo["job"]["id"] == full.undo["job"]["id"]
    assert "LISTING INCOMPLETE" in cut.note and "will not be cancelled" in cut.note
    _ended_jobs(batches, provider, 150)  # now the running job lies beyond page 1
    [missed] = a.plan("batch.cancel", batches.ref(provider), ctx(provider))
    assert missed.status == "noop" and "LISTING INCOMPLETE" in missed.note
    assert "nothing to cancel" not in missed.note


async def test_every_request_names_the_run(batches: BatchSandbox) -> None:
    """Fails on httpx's default User-Agent: the providers' audit logs must show the run."""
    s = Session(batches.config, operator="tester", incident="INC-9")
    integs = [PROVIDERS[p][0] for p in ("openai", "azure", "anthropic")]
    plan = await s.plan("cancel-batches", integs)
    result = await s.apply(plan, reason="leak", allow_irreversible=True)
    assert result.count("applied") == 3, [(r.outcome, r.message)
                                           for r in result.results.values()]
    want = f"killswitch/{version('killswitch')} run/{plan.run_id}"
    for provider in ("openai", "anthropic"):
        seen = batches.app(provider).requests
        assert {r["method"] for r in seen} == {"GET", "POST"}
        assert {r["headers"].get("user-agent") for r in seen} == {want}, provider
