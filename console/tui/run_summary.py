"""What a run or a restore left behind, per integration, in the words of the run screen.

Built only from the engine's outcomes: each change's apply outcome and verify verdict, the
proof of death per integration, and, for a restore, :meth:`Plan.not_restored`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.vocab import NOT_DONE, Outcome, ProofState

if TYPE_CHECKING:
    from console.engine.model import OpResult, Plan

__all__ = ["KILL_POINTS", "RESTORE_LABELS", "RUN_LABELS", "Fates", "run_summary",
           "verify_word"]

KILL_POINTS = ("credential", "flag", "batch", "egress")
"""Action families that turn something off (or, restored, on again)."""



def verify_word(res: OpResult) -> str:
    """What verify proved, in the words an operator expects."""
    if res.verified is None:
        return ""
    if res.verified:
        return res.verdict or "ok"
    if res.verdict in ("live", "STILL LIVE"):
        return "STILL LIVE"
    if res.verdict in ("", "unknown"):
        return "unknown"
    return f"{res.verdict} (not as planned)"


@dataclass
class Fates:
    """What one integration's run (or restore) left behind, in four groups and the rest.

    Attributes:
        integration: The integration's id.
        done: Proven as intended: now off (a run), back on (a restore).
        live: Not as intended: STILL LIVE after a run (verify or the provider says so, or the
            change did not happen), still off after a restore.
        unchecked: Could not be checked (verify or the proof answered unknown, or nothing
            verifies it).
        gone: Cannot come back: irreversible changes a run applied, what a restore cannot
            undo.
        other: Notifications and evidence that did not happen.
    """

    integration: str
    done: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


RUN_LABELS = ("now off", "STILL LIVE", "not checked", "cannot come back")
"""The four groups' words after a run."""
RESTORE_LABELS = ("back on", "STILL OFF", "not checked", "cannot come back")
"""The four groups' words after a restore."""


def _why(res: OpResult | None) -> str:
    if res is None:
        return "did not run"
    word = {"failed": "failed", "refused": "refused", "skipped": "skipped",
            "pending": "did not finish", "unsupported": "no adapter can do it"}.get(
                res.outcome, res.outcome)
    return f"{word}: {res.message}" if res.message else word


def run_summary(plan: Plan, results: dict[str, OpResult],
                proofs: dict[str, Any] | None = None) -> list[Fates]:
    """Per integration, what is now off, STILL LIVE, not checked, and cannot come back.

    Uses the engine's outcomes only: each change's apply outcome and verify verdict, the
    proof of death per integration, and, for a restore, :meth:`Plan.not_restored`.

    Args:
        plan: The plan that ran (a restore's when ``plan.restore_of`` is set).
        results: Outcome per op id (:attr:`RunResult.results`, or what was seen so far).
        proofs: Proof of death per integration (:attr:`RunResult.proofs`).

    Returns:
        One :class:`Fates` per integration of the plan, in the plan's order.
    """
    restore = bool(plan.restore_of)
    fates = {i: Fates(i) for i in plan.integrations}
    for c in plan.changes:
        fate = fates.setdefault(c.integration, Fates(c.integration))
        res = results.get(c.op_id)
        if c.action.split(".")[0] not in KILL_POINTS:
            if res is None or res.outcome in NOT_DONE or res.outcome == Outcome.UNSUPPORTED:
                fate.other.append(f"{c.action} {c.target} ({_why(res)})")
            continue
        if restore and c.inverse_of and c.status == "unsupported":
            continue  # listed below, from not_restored(): it stays as the run left it
        if res is None or res.outcome not in (Outcome.APPLIED, Outcome.NOOP):
            fate.live.append(f"{c.target} ({_why(res)})")
        elif res.verified:
            fate.done.append(c.target)
        elif res.verified is None or res.verdict in ("", "unknown"):
            fate.unchecked.append(f"{c.target} ({res.verdict or 'not verified'})")
        else:
            fate.live.append(f"{c.target} (verify: {verify_word(res)})")
        if not restore and not c.reversible and res is not None \
                and res.outcome == Outcome.APPLIED:
            fate.gone.append(f"{c.target} ({c.action})")
    for integ, proof in (proofs or {}).items():
        fate = fates.setdefault(integ, Fates(integ))
        line = f"key at its provider: {proof.state}"
        if proof.state == ProofState.REVOKED:
            fate.done.append(line)
        elif proof.state == ProofState.STILL_LIVE:
            fate.live.append(f"{line} ({proof.detail})")
        else:
            fate.unchecked.append(f"{line} ({proof.detail})")
    if restore:
        for integ, lines in plan.not_restored().items():
            fates.setdefault(integ, Fates(integ)).gone.extend(lines)
    return list(fates.values())
