"""Read-only kill-point state of integrations, for the inventory screen's live columns.

Uses the planner with a built-in "would we kill it?" runbook: a target whose kill would be a
no-op is already ``off``; one that would change is ``live``; some of both is ``partial``; one
that could not be observed is ``unknown`` (with the provider's message). Nothing is written
anywhere. The words are :data:`STATE_WORDS`; no screen says "ok" for "still live".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.base import ERROR, NOOP, UNSUPPORTED, Change
from console.engine.planner import PlanProgress, make_plan
from console.engine.runtime import Runtime

if TYPE_CHECKING:
    from console.config import Config
    from console.inventory import Integration

__all__ = ["KILL_POINT_PROBES", "STATE_WORDS", "PointState", "observe_states"]

KILL_POINT_PROBES = {
    "keys": ("credentials", "credential.disable"),
    "flags": ("flags", "flag.disable"),
    "batches": ("batches", "batch.cancel"),
    "egress": ("egress", "egress.block"),
}
"""Column name -> (inventory list, the action whose plan tells the state)."""

STATE_WORDS = ("live", "off", "partial", "unknown", "-")
"""Every state a kill point can be in: ``live`` (would change: still usable), ``off``
(disabled/revoked), ``partial`` (some references off), ``unknown`` (could not be observed:
``detail`` says why), ``-`` (none listed in the inventory)."""


@dataclass
class PointState:
    """State of one kill-point column of one integration.

    Attributes:
        state: One of :data:`STATE_WORDS`.
        detail: Why (provider message for unknown; ``n/m off`` for partial).
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
        return "off", ""
    return ("live", "") if off == 0 else ("partial", f"{off}/{len(changes)} off")


async def observe_states(config: Config, integrations: list[Integration],
                         timeout: float = 5.0, runtime: Runtime | None = None,
                         progress: PlanProgress | None = None
                         ) -> dict[str, dict[str, PointState]]:
    """Observe every kill point of ``integrations``; never raises for a backend failure.

    ``runtime``: a long-lived runtime whose clients are reused (the console's); a view of it
    with one attempt and ``timeout`` is used, and it stays open. Without one, a runtime is
    built for this call and closed after it. ``progress`` hears each target's observation
    start and finish, with its backend (:data:`console.engine.planner.PlanProgress`).
    """
    base = runtime if runtime is not None else Runtime(config)
    # one attempt: a background refresh must not stall on a dead backend
    rt = base.view(max_attempts=1, default_timeout=timeout)
    try:
        plan = await make_plan(rt, _Probe(), integrations, [],  # type: ignore[arg-type]
                               progress=progress)
    finally:
        if runtime is None:
            base.close()
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
                state = "off" if off == len(changes) else "live" if off == 0 else "partial"
                row[column] = PointState(state, f"{off}/{len(changes)} off",
                                         [c.target for c in changes])
            if column in row:
                row[column].per_ref = [_ref_state([c for c in changes if c.ref == ref.fields()])
                                       for ref in getattr(integ, kill_point, None) or []]
        out[integ.id] = row
    return out
