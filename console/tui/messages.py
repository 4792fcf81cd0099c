"""Typed messages: engine work reporting back, and screens telling the app what the
operator asked for.

Named in the past tense after what happened. Engine coroutines run in workers on the Textual
event loop; they reply with the messages of the first group (``bubble = False``: they stay on
the screen that posted them), and failures land in one ``Worker.StateChanged`` handler per
screen (or, for runs, in :class:`RunFailed`).

The second group bubbles from the screen (or widget) that posts it up to the app, which
routes: a screen says what the operator asked for and never opens another screen itself.

| message               | the app                                                  |
|-----------------------|----------------------------------------------------------|
| DetailRequested       | opens the integration's detail                           |
| RunbooksRequested     | opens the runbook picker (and plans a named runbook)     |
| PlanReviewRequested   | opens the plan review                                    |
| RunConfirmed          | applies the plan and opens the run screen (or resumes)   |
| ReportRequested       | opens a run's report in the audit section                |
| RestoreRequested      | plans the undo of a run and opens its review             |
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
    "DetailRequested",
    "OperationChanged",
    "PlanFailed",
    "PlanReady",
    "PlanReviewRequested",
    "ReportRequested",
    "RestoreRequested",
    "RunConfirmed",
    "RunFailed",
    "RunFinished",
    "RunbooksRequested",
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


# -- what the operator asked for (bubbles to the app) ----------------------------------
class DetailRequested(Message):
    """The operator asked for one integration's detail."""

    def __init__(self, integration_id: str) -> None:
        super().__init__()
        self.integration_id = integration_id
        """The integration."""


class RunbooksRequested(Message):
    """The operator asked to pick a runbook for some integrations."""

    def __init__(self, integration_ids: list[str], runbook: str | None = None) -> None:
        super().__init__()
        self.integration_ids = list(integration_ids)
        """The integrations to act on (the inventory's marks)."""
        self.runbook = runbook
        """A runbook to highlight and plan at once (the palette's "run: ..."), or None."""


class PlanReviewRequested(Message):
    """A plan (a runbook's, a retry's or a restore's) is ready for the operator's review."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        """The plan."""


class RunConfirmed(Message):
    """The operator confirmed a run (typed confirmation), or accepted to resume one."""

    def __init__(self, plan: Plan, reason: str, allow_irreversible: bool, *,
                 resume: bool = False, previous: dict[str, OpResult] | None = None) -> None:
        super().__init__()
        self.plan = plan
        """The plan to apply (or the interrupted run's plan)."""
        self.reason = reason
        """Why, as typed; recorded with the run."""
        self.allow_irreversible = allow_irreversible
        """The operator consented to the plan's irreversible changes."""
        self.resume = resume
        """Resume an interrupted run instead of starting one."""
        self.previous = previous
        """For a resume: the last recorded outcome of each operation."""


class ReportRequested(Message):
    """The operator asked for a run's report (the postmortem timeline)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        """The run."""


class RestoreRequested(Message):
    """The operator asked to undo a run: its restore plan is to be made and reviewed."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        """The run to undo."""


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

