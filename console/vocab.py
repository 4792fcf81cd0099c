"""The one vocabulary: outcomes, phases, modes and proof states, defined once.

The engine, the CLI, the report, the console and the audit trail all speak these words. They
are ``StrEnum`` members, so they are stored and compared as the plain strings the trail has
always held (``Outcome.APPLIED == "applied"``), and old trails read back unchanged.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CAUSES", "DEFAULT_CAUSE", "FINAL_OUTCOMES", "MODE_MEANING", "NOT_DONE", "Mode",
           "Outcome", "Phase", "ProofState", "mode_sentence"]


class Phase(StrEnum):
    """Which part of a run an event belongs to."""

    PLAN = "plan"
    RUN = "run"
    APPLY = "apply"
    VERIFY = "verify"


class Mode(StrEnum):
    """How a run touches the world (see the README: one mode model)."""

    PLAN = "plan"
    DRY_RUN = "dry-run"
    REHEARSAL = "rehearsal"
    EXERCISE = "exercise"
    LIVE = "live"


MODE_MEANING: dict[Mode, str] = {
    Mode.DRY_RUN: "changes nothing anywhere",
    Mode.EXERCISE: "applies only to sandbox backends",
    Mode.LIVE: "applies to real systems",
}
"""What each console mode means, said once: the README, the help screen, the banner, the
palette, the plan header and the confirm dialogs all use these words."""


def mode_sentence(mode: str) -> str:
    """``DRY-RUN changes nothing anywhere`` (no full stop): the mode's name and meaning."""
    m = Mode(mode)
    return f"{m.value.upper()} {MODE_MEANING[m]}" if m in MODE_MEANING else m.value.upper()


class Outcome(StrEnum):
    """What happened: to one operation (apply / verify) or to a whole run."""

    # one operation
    PENDING = "pending"
    STARTED = "started"
    RETRYING = "retrying"
    APPLIED = "applied"
    NOOP = "noop"
    FAILED = "failed"
    REFUSED = "refused"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"
    OK = "ok"
    # a whole run
    PLANNED = "planned"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    RESUMED = "resumed"
    LOCK_TAKEN_OVER = "stale-lock-taken-over"


class ProofState(StrEnum):
    """Proof of death of one integration's key, tested at its provider."""

    REVOKED = "revoked"
    PROPAGATING = "propagating"
    STILL_LIVE = "STILL LIVE"
    UNKNOWN = "unknown"


FINAL_OUTCOMES = frozenset({Outcome.APPLIED, Outcome.NOOP, Outcome.FAILED, Outcome.REFUSED,
                            Outcome.UNSUPPORTED})
"""Outcomes after which a resumed run leaves an operation alone."""

NOT_DONE = frozenset({Outcome.FAILED, Outcome.REFUSED, Outcome.SKIPPED, Outcome.PENDING})
"""Operations that did not end as planned (a retry or a resume picks them up)."""


CAUSES: tuple[str, ...] = ("leak", "cost", "data", "abuse", "exercise", "other")
"""Why a run happened (``--cause``): recorded in the trail, shown in the banner, the report and
notifications. ``leak`` also makes ``restore`` refuse to re-enable the leaked credentials."""

DEFAULT_CAUSE = "other"
"""The cause of a run that was not given one."""
