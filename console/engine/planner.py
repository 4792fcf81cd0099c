"""Planning: observe every target read-only and build the Plan a run will apply verbatim."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from adapters.base import ERROR, KILL_POINTS, UNSUPPORTED, Change, PlanContext
from adapters.evidence import EVIDENCE_ACTION, EVIDENCE_KILL_POINTS
from console.engine.evidence import evidence_change
from console.engine.model import Plan, StepInfo, new_run_id
from console.engine.rotation import plan_notes, skip_reason
from console.engine.runtime import Runtime
from console.errors import AdapterError, ConfigError

if TYPE_CHECKING:
    from console.inventory import Integration
    from console.runbook import Runbook, Step

__all__ = ["DOWNSTREAM", "PlanProgress", "make_plan", "ref_target"]

DOWNSTREAM = "(downstream)"
"""Appended to the target of a change planned from a ``role = "downstream"`` credential: a
credential the integration's tools hold, listed apart in plans and reports."""

PlanProgress = Callable[[str, str], None]
"""``progress(event, backend)``, called in the planning task's event loop: ``"started"`` once
per target as its observation is scheduled (every ``started`` comes before the first
``finished``, so their count is the total), ``"finished"`` when that target's observation
ended (observed, or an error row). ``backend`` is the backend named by the target's
inventory reference."""


def ref_target(ref: dict[str, Any]) -> str:
    """A readable name of an inventory reference, for rows that could not be observed."""
    parts = [str(v) for k, v in ref.items() if k not in ("backend", "label") and v]
    return f"{ref.get('backend', '?')}:{'/'.join(parts) or ref.get('label') or '?'}"


async def _plan_ref(rt: Runtime, integ: Integration, step: Step, ref: dict[str, Any],
                    run_id: str, incident: str, is_unlisted: bool = False,
                    facts: dict[str, Any] | None = None, cause: str = "other") -> list[Change]:
    changes = await _observe_ref(rt, integ, step, ref, run_id, incident, facts, cause)
    if ref.get("role") == "downstream":
        for c in changes:
            c.target = f"{c.target} {DOWNSTREAM}"
    if is_unlisted:
        for c in changes:
            c.target = f"{c.target} (UNLISTED)"
            c.note = ("UNLISTED copy found by `credentials scan`; not in the inventory. "
                      + c.note).strip()
    return changes


def _facts(integ: Integration) -> dict[str, Any]:
    """Inventory facts a notification may quote (``PlanContext.facts``)."""
    owner = getattr(integ, "kill_switch_owner", None)
    return {"name": integ.name, "environment": integ.environment,
            "provider": integ.provider, "owner": integ.owner,
            "kill_switch_owner": owner.model_dump(exclude_none=True) if owner else None,
            "data_classes": list(getattr(integ, "data_classes", []) or [])}


async def _observe_ref(rt: Runtime, integ: Integration, step: Step, ref: dict[str, Any],
                       run_id: str, incident: str,
                       facts: dict[str, Any] | None = None,
                       cause: str = "other") -> list[Change]:
    backend = str(ref.get("backend", ""))
    try:
        adapter = rt.adapter(backend)
    except ConfigError as exc:
        adapter, problem = None, exc.msg
    spec = adapter.ACTIONS.get(step.action) if adapter is not None else None
    ctx = PlanContext(integ.id, step.id, dict(step.options), run_id, incident,
                      rt.operator, rt.runbook, dict(facts) if facts else _facts(integ),
                      action=step.action, backend=backend,
                      adapter=adapter.name if adapter is not None else "?", ref=dict(ref),
                      reversible=spec.reversible if spec else adapter is None, cause=cause)
    if adapter is None:
        return [replace(ctx.change(ref_target(ref), {}, {}, status=ERROR), error=problem)]
    if step.action == EVIDENCE_ACTION:  # the engine copies: the adapter is not asked to plan
        return [evidence_change(ctx, adapter,
                                ref_target({k: v for k, v in ref.items() if k != "role"}))]
    if spec is None:
        return [ctx.change(ref_target(ref), {}, {}, status=UNSUPPORTED,
                           note=f"the {adapter.name} adapter cannot do {step.action}; "
                                "this will NOT happen")]
    try:
        return await rt.read_call(backend, lambda a: a.plan(step.action, ref, ctx),
                                  rt.timeout(backend, step.timeout))
    except AdapterError as exc:
        return [replace(ctx.change(ref_target(ref), {}, {}, status=ERROR,
                                   note="could not observe: the change cannot be planned"),
                        error=str(exc.msg))]


_Job = tuple["Integration", "Step", dict[str, Any], bool, dict[str, Any]]
"""One target to observe: integration, step, reference fields, unlisted, facts."""

WORKERS_PER_SLOT = 1
"""Observation workers per unit of a backend's concurrency cap: as many workers as calls
may be in flight, so the cap is kept busy without tasks queueing on its semaphore (measured:
two per slot plan 10,000 integrations some 20% slower). A worker waiting out a retry's
backoff leaves its slot idle meanwhile."""


async def _tracked(rt: Runtime, jobs: list[_Job | None], queue: deque[int],
                   results: list[list[Change]], run_id: str, incident: str,
                   progress: PlanProgress | None, began: list[float],
                   cause: str = "other") -> None:
    """One observation worker of one backend: observes the targets in ``queue`` (indexes of
    ``jobs``) one after the other, storing each target's changes in ``results`` and the
    ``time.monotonic()`` its observation began in ``began``."""
    while queue:
        i = queue.popleft()
        began[i] = time.monotonic()
        job = jobs[i]
        assert job is not None
        jobs[i] = None  # the reference fields are not needed once observed
        integ, step, fields, is_unlisted, facts = job
        results[i] = await _plan_ref(rt, integ, step, fields, run_id, incident,
                                     is_unlisted, facts, cause)
        if progress is not None:
            progress("finished", str(fields.get("backend", "")))


def _worker_count(rt: Runtime, backend: str, queued: int) -> int:
    spec = rt.config.backends.get(backend)
    cap = spec.max_concurrency if spec is not None else 8
    return max(1, min(queued, WORKERS_PER_SLOT * max(1, cap)))


async def make_plan(rt: Runtime, runbook: Runbook, integrations: list[Integration],
                    selectors: list[str], *, incident: str = "",
                    run_id: str | None = None,
                    unlisted: dict[str, list[dict[str, Any]]] | None = None,
                    progress: PlanProgress | None = None,
                    observed_at: dict[str, float] | None = None,
                    cause: str = "other") -> Plan:
    """Observe every target of ``runbook`` on ``integrations`` and return the plan.

    Read-only: only adapter ``plan`` calls are made, concurrently under backend limits
    (a few workers per backend, as many as keep its concurrency cap busy, so that planning
    thousands of targets holds a few tasks, not one per target).
    ``unlisted`` adds credential copies found by a scan (marked UNLISTED in the plan).
    ``progress`` hears each target start and finish (:data:`PlanProgress`).
    ``observed_at``, when given, receives each change's op id -> the ``time.monotonic()``
    its target's observation began (how old the observation is when the change applies).
    ``cause`` (leak, cost, ...) is the plan's and every adapter's (notifications say it).
    Cancelling the caller cancels every observation still waiting (a blocking SDK call
    already in its thread ends there; its answer is dropped).
    """
    unlisted = unlisted or {}
    run_id = run_id or new_run_id()
    notes: list[str] = []
    jobs: list[_Job | None] = []
    keys: list[tuple[str, str]] = []
    queues: dict[str, deque[int]] = {}
    for integ in integrations:
        facts: dict[str, Any] | None = None
        for step in runbook.steps:
            if not step.applies_to(integ):
                notes.append(f"{integ.id}: step {step.id} skipped (when: {step.when})")
                continue
            kill_point = KILL_POINTS[step.action]
            refs: list[Any] = list(getattr(integ, kill_point, []) or [])
            if step.action == EVIDENCE_ACTION:  # evidence of every key and batch reference
                refs = [r for kp in EVIDENCE_KILL_POINTS for r in getattr(integ, kp, []) or []]
            if kill_point == "contacts":  # people to call by hand have no backend
                refs = [c for c in refs if getattr(c, "backend", None)]
            extra = unlisted.get(integ.id, []) if kill_point == "credentials" else []
            if not refs and not extra:
                lists = (" or ".join(EVIDENCE_KILL_POINTS) if step.action == EVIDENCE_ACTION
                         else kill_point)
                notes.append(f"{integ.id}: step {step.id} has nothing to act on "
                             f"(no {lists} in the inventory)")
            for ref in [*refs, *extra]:
                fields = (ref.fields() if hasattr(ref, "fields") else
                          ref.model_dump(exclude_none=True) if hasattr(ref, "model_dump")
                          else dict(ref))
                skipped = skip_reason(rt, integ.id, step.id, step.action, fields,
                                      role=getattr(ref, "role", None))
                if skipped:  # rotation: not this step's target (or downstream): a note
                    notes.append(skipped)
                    continue
                if facts is None:
                    facts = _facts(integ)
                backend = str(fields.get("backend", ""))
                queues.setdefault(backend, deque()).append(len(jobs))
                jobs.append((integ, step, fields, ref in extra, facts))
                keys.append((integ.id, step.id))
                if progress is not None:
                    progress("started", backend)
    results: list[list[Change]] = [[] for _ in jobs]
    began = [0.0] * len(jobs)
    workers = [asyncio.create_task(_tracked(rt, jobs, queue, results, run_id, incident,
                                            progress, began, cause))
               for backend, queue in queues.items()
               for _ in range(_worker_count(rt, backend, len(queue)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:  # cancelled, or a target failed outside the contract
        for task in workers:
            task.cancel()
        raise
    changes: list[Change] = []
    counters: dict[tuple[str, str], int] = {}
    for key, found, when in zip(keys, results, began, strict=True):
        for change in found:
            n = counters.get(key, 0)
            counters[key] = n + 1
            change.op_id = f"{key[0]}/{key[1]}/{n}"
            changes.append(change)
            if observed_at is not None:
                observed_at[change.op_id] = when
    del results, jobs
    notes.extend(plan_notes(changes, [i.id for i in integrations]))  # rotate: pasted keys
    steps = [StepInfo(s.id, s.action, list(s.needs), s.on_error, s.timeout)
             for s in runbook.steps]
    return Plan(run_id=run_id, runbook=runbook.name, selectors=list(selectors),
                integrations=[i.id for i in integrations], steps=steps, changes=changes,
                notes=notes, config=str(rt.config.path), cause=cause)
