"""Read-only kill-point state of integrations, for the inventory screen's live columns.

Uses the planner with a built-in "would we kill it?" runbook: a target whose kill would be a
no-op is already ``disabled``; one that would change is ``ok`` (live); one that could not be
observed is ``unknown`` (with the provider's message). Nothing is written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.base import ERROR, NOOP, UNSUPPORTED, Change
from console.engine.planner import make_plan
from console.engine.runtime import Runtime

if TYPE_CHECKING:
    from console.config import Config
    from console.inventory import Integration

__all__ = ["KILL_POINT_PROBES", "PointState", "observe_states"]

KILL_POINT_PROBES = {
    "keys": ("credentials", "credential.disable"),
    "flags": ("flags", "flag.disable"),
    "batches": ("batches", "batch.cancel"),
    "egress": ("egress", "egress.block"),
}
"""Column name -> (inventory list, the action whose plan tells the state)."""


@dataclass
class PointState:
    """State of one kill-point column of one integration.

    Attributes:
        state: ``ok`` (live), ``disabled``, ``partial``, ``unknown`` or ``-`` (none listed).
        detail: Why (provider message for unknown).
    """

    state: str
    detail: str = ""
    targets: list[str] = field(default_factory=list)
    per_ref: list[tuple[str, str]] = field(default_factory=list)
    """(state, detail) of each inventory reference of the column, in inventory order."""


class _Step:
    def __init__(self, action: str) -> None:
        self.id = action.split(".")[0]
        self.action = action
        self.options: dict[str, object] = {}
        self.needs: list[str] = []
        self.when = None
        self.timeout: float | None = None
        self.on_error = "continue"

    def applies_to(self, integration: object) -> bool:
        return True


class _Probe:
    name = "observe"
    kind = "steps"

    def __init__(self) -> None:
        self.steps = [_Step(a) for _, a in KILL_POINT_PROBES.values()]


def _ref_state(changes: list[Change]) -> tuple[str, str]:
    """The state of one inventory reference from the changes planned for it."""
    if not changes:
        return "unknown", "not observed"
    if any(c.status == ERROR for c in changes):
        return "unknown", "; ".join(c.error for c in changes if c.status == ERROR)
    if all(c.status == UNSUPPORTED for c in changes):
        return "unknown", "no installed adapter can read it"
    off = sum(1 for c in changes if c.status == NOOP)
    if off == len(changes):
        return "disabled", ""
    return ("ok", "") if off == 0 else ("partial", f"{off}/{len(changes)} disabled")


async def observe_states(config: Config, integrations: list[Integration],
                         timeout: float = 5.0) -> dict[str, dict[str, PointState]]:
    """Observe every kill point of ``integrations``; never raises for a backend failure."""
    rt = Runtime(config)
    rt.retry.max_attempts = 1  # a background refresh must not stall on a dead backend
    rt.default_timeout = timeout
    try:
        plan = await make_plan(rt, _Probe(), integrations, [])  # type: ignore[arg-type]
    finally:
        rt.close()
    by_integration: dict[str, list[Change]] = {}
    for c in plan.changes:
        by_integration.setdefault(c.integration, []).append(c)
    out: dict[str, dict[str, PointState]] = {}
    for integ in integrations:
        row: dict[str, PointState] = {}
        mine = by_integration.get(integ.id, [])
        for column, (kill_point, action) in KILL_POINT_PROBES.items():
            changes = [c for c in mine if c.action == action]
            if not getattr(integ, kill_point, None):
                row[column] = PointState("-", "none listed in the inventory")
            elif not changes or all(c.status == UNSUPPORTED for c in changes):
                row[column] = PointState("unknown", "no installed adapter can read these")
            elif any(c.status == ERROR for c in changes):
                errors = "; ".join(c.error for c in changes if c.status == ERROR)
                row[column] = PointState("unknown", errors)
            else:
                off = sum(1 for c in changes if c.status == NOOP)
                state = "disabled" if off == len(changes) else "ok" if off == 0 else "partial"
                row[column] = PointState(state, f"{off}/{len(changes)} disabled",
                                         [c.target for c in changes])
            if column in row:
                row[column].per_ref = [_ref_state([c for c in changes if c.ref == ref.fields()])
                                       for ref in getattr(integ, kill_point, None) or []]
        out[integ.id] = row
    return out
