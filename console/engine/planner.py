"""Planning: observe every target read-only and build the Plan a run will apply verbatim."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from adapters.base import ERROR, KILL_POINTS, UNSUPPORTED, Change, PlanContext
from console.engine.model import Plan, StepInfo, new_run_id
from console.engine.runtime import Runtime
from console.errors import AdapterError, ConfigError

if TYPE_CHECKING:
    from console.inventory import Integration
    from console.runbook import Runbook, Step

__all__ = ["PlanProgress", "make_plan", "ref_target"]

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
                    run_id: str, incident: str, is_unlisted: bool = False) -> list[Change]:
    changes = await _observe_ref(rt, integ, step, ref, run_id, incident)
    if is_unlisted:
        for c in changes:
            c.target = f"{c.target} (UNLISTED)"
            c.note = ("UNLISTED copy found by `credentials scan`; not in the inventory. "
                      + c.note).strip()
    return changes


async def _observe_ref(rt: Runtime, integ: Integration, step: Step, ref: dict[str, Any],
                       run_id: str, incident: str) -> list[Change]:
    backend = str(ref.get("backend", ""))
    owner = getattr(integ, "kill_switch_owner", None)
    facts = {"name": integ.name, "environment": integ.environment,
             "provider": integ.provider, "owner": integ.owner,
             "kill_switch_owner": owner.model_dump(exclude_none=True) if owner else None,
             "data_classes": list(getattr(integ, "data_classes", []) or [])}
    ctx = PlanContext(integ.id, step.id, dict(step.options), run_id, incident,
                      rt.operator, rt.runbook, facts, action=step.action, backend=backend,
                      adapter="?", ref=dict(ref))
    target = ref_target(ref)
    try:
        adapter = rt.adapter(backend)
    except ConfigError as exc:
        return [replace(ctx.change(target, {}, {}, status=ERROR), error=exc.msg)]
    spec = adapter.ACTIONS.get(step.action)
    ctx = replace(ctx, adapter=adapter.name, reversible=spec.reversible if spec else False)
    if spec is None:
        return [ctx.change(target, {}, {}, status=UNSUPPORTED,
                           note=f"the {adapter.name} adapter cannot do {step.action}; "
                                "this will NOT happen")]
    try:
        return await rt.read_call(backend, lambda a: a.plan(step.action, ref, ctx),
                                  rt.timeout(backend, step.timeout))
    except AdapterError as exc:
        return [replace(ctx.change(target, {}, {}, status=ERROR,
                                   note="could not observe: the change cannot be planned"),
                        error=str(exc.msg))]


async def _tracked(rt: Runtime, integ: Integration, step: Step, ref: dict[str, Any],
                   run_id: str, incident: str, is_unlisted: bool,
                   progress: PlanProgress | None) -> list[Change]:
    changes = await _plan_ref(rt, integ, step, ref, run_id, incident, is_unlisted)
    if progress is not None:
        progress("finished", str(ref.get("backend", "")))
    return changes


async def make_plan(rt: Runtime, runbook: Runbook, integrations: list[Integration],
                    selectors: list[str], *, incident: str = "",
                    run_id: str | None = None,
                    unlisted: dict[str, list[dict[str, Any]]] | None = None,
                    progress: PlanProgress | None = None) -> Plan:
    """Observe every target of ``runbook`` on ``integrations`` and return the plan.

    Read-only: only adapter ``plan`` calls are made, concurrently under backend limits.
    ``unlisted`` adds credential copies found by a scan (marked UNLISTED in the plan).
    ``progress`` hears each target start and finish (:data:`PlanProgress`). Cancelling the
    caller cancels every observation still waiting (a blocking SDK call already in its
    thread ends there; its answer is dropped).
    """
    unlisted = unlisted or {}
    run_id = run_id or new_run_id()
    notes: list[str] = []
    jobs: list[tuple[str, str, asyncio.Task[list[Change]]]] = []
    for integ in integrations:
        for step in runbook.steps:
            if not step.applies_to(integ):
                notes.append(f"{integ.id}: step {step.id} skipped (when: {step.when})")
                continue
            kill_point = KILL_POINTS[step.action]
            refs: list[Any] = list(getattr(integ, kill_point, []) or [])
            if kill_point == "contacts":  # people to call by hand have no backend
                refs = [c for c in refs if getattr(c, "backend", None)]
            extra = unlisted.get(integ.id, []) if kill_point == "credentials" else []
            if not refs and not extra:
                notes.append(f"{integ.id}: step {step.id} has nothing to act on "
                             f"(no {kill_point} in the inventory)")
            for ref in [*refs, *extra]:
                fields = (ref.fields() if hasattr(ref, "fields") else
                          ref.model_dump(exclude_none=True) if hasattr(ref, "model_dump")
                          else dict(ref))
                task = asyncio.create_task(_tracked(rt, integ, step, fields, run_id, incident,
                                                    ref in extra, progress))
                jobs.append((integ.id, step.id, task))
                if progress is not None:
                    progress("started", str(fields.get("backend", "")))
    changes: list[Change] = []
    counters: dict[tuple[str, str], int] = {}
    try:
        for integ_id, step_id, task in jobs:
            for change in await task:
                n = counters.get((integ_id, step_id), 0)
                counters[(integ_id, step_id)] = n + 1
                change.op_id = f"{integ_id}/{step_id}/{n}"
                changes.append(change)
    except BaseException:  # cancelled, or a target failed outside the contract
        for _, _, task in jobs:
            task.cancel()
        raise
    steps = [StepInfo(s.id, s.action, list(s.needs), s.on_error, s.timeout)
             for s in runbook.steps]
    return Plan(run_id=run_id, runbook=runbook.name, selectors=list(selectors),
                integrations=[i.id for i in integrations], steps=steps, changes=changes,
                notes=notes, config=str(rt.config.path))
