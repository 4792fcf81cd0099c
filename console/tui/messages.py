"""Typed messages the screens post to themselves when engine work reports back.

Named in the past tense after what happened. Engine coroutines run in workers on the Textual
event loop; they reply with these messages, and failures land in one ``Worker.StateChanged``
handler per screen (or, for runs, in :class:`RunFailed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from console.audit import ChainReport
    from console.engine.model import OpResult, Plan, RunResult

__all__ = [
    "AuditLoaded",
    "ChainVerified",
    "OperationChanged",
    "PlanFailed",
    "PlanReady",
    "RunFailed",
    "RunFinished",
    "describe_error",
    "error_text",
]


class PlanReady(Message):
    """A plan was made (or a restore plan was built) and can be reviewed."""

    bubble = False

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        """The plan."""


class PlanFailed(Message):
    """Planning failed; nothing was changed."""

    bubble = False

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        """The error (a ConsoleError carries ``msg`` and ``hint``)."""


class OperationChanged(Message):
    """The executor reported a state change of one operation."""

    bubble = False

    def __init__(self, phase: str, result: OpResult, extra: dict[str, Any]) -> None:
        super().__init__()
        self.phase = phase
        """``apply`` or ``verify``."""
        self.result = result
        """A snapshot (copy) of the operation's result at that moment."""
        self.extra = extra
        """``running`` / ``retrying`` / ``wait`` / ``detail`` as given by the executor."""


class RunFinished(Message):
    """Apply (or resume) ended and every applied change was verified."""

    bubble = False

    def __init__(self, result: RunResult) -> None:
        super().__init__()
        self.result = result
        """The run's result."""


class RunFailed(Message):
    """Apply (or resume) was refused or stopped with an error."""

    bubble = False

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        """The error (LockHeld, BlastRadiusExceeded, AuditError, ...)."""


class AuditLoaded(Message):
    """Runs and events matching the audit filter were read."""

    bubble = False

    def __init__(self, runs: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.runs = runs
        """Run summaries (``AuditLog.runs()`` rows) that have matching events."""
        self.events = events
        """Matching events, oldest first."""


class ChainVerified(Message):
    """The audit chain was verified."""

    bubble = False

    def __init__(self, report: ChainReport) -> None:
        super().__init__()
        self.report = report
        """The verification report."""


def describe_error(error: BaseException) -> tuple[str, str, str]:
    """Title, message and hint of an error, for a notification.

    Args:
        error: Any exception; ConsoleErrors carry title and hint.

    Returns:
        ``(title, message, hint)``.
    """
    from console.errors import ConsoleError

    if isinstance(error, ConsoleError):
        msg = f"{error.where}: {error.msg}" if error.where else error.msg
        return error.title, msg, error.hint
    return type(error).__name__, str(error) or repr(error), ""


def error_text(error: BaseException) -> str:
    """One notification body: message, then the hint on its own line."""
    _title, msg, hint = describe_error(error)
    return f"{msg}\nhint: {hint}" if hint else msg

