"""Shared logic of the ``batch.cancel`` adapters (OpenAI, Azure OpenAI, Anthropic, Bedrock, Vertex).

A provider module supplies four small hooks on :class:`BatchAdapter`; everything else (the
plan, the engine-facing state, idempotent apply, verify with a wait) lives here so the five
providers behave alike::

    _check_ref(ref)           validate an inventory reference (AdapterError if malformed)
    _scope(ref)               "where the jobs were looked for", for targets and notes
    _raw_jobs(ref)            every job of the integration as the provider shows it, in a
                              :class:`JobList` with ``capped`` set when the listing stopped
                              at ``LIST_PAGES`` pages with more left (the plan says so)
    _list(ref)                the same jobs normalised (see below)
    _get(ref, job_id)         one job (None when it no longer exists)
    _cancel(ref, job_id)      request the cancel (provider call; may answer 409 when done)

Normalised job (kept in ``Change.undo["job"]``; references, never secrets)::

    {"id": "batch_abc", "name": "...", "status": "in_progress",      # raw provider status
     "phase": "running" | "cancelling" | "cancelled" | "ended",
     "input": {...file ids / URIs...}, "output": {...}, "counts": {...}, "failed": 3}

Engine-facing state (``before`` / ``after`` / :meth:`BatchAdapter.read`): exactly one key, so
the engine's fingerprint comparison ignores counts that move on their own::

    {"status": "running"}      planned before: the job still consumes tokens
    {"status": "cancelling"}   planned after: cancel requested, cancelled, or ended anyway

The raw status before the cancel is in ``undo["status_before"]``; apply returns the raw
status after (``status_after``) and the counts, which the engine journals; verify polls the
job for up to ``wait`` seconds and puts the final raw status and counts in its detail.

The "no job running" case is one ``noop`` change with state ``{"running": 0}``.

A listing that stops at its page cap (``LIST_PAGES`` pages of 100, a guard against a runaway
paginator) never does so silently: every change planned from it carries a note that jobs
beyond the cap were not looked at, and the no-job change does not claim "nothing to cancel".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import NOOP, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context, require_key
from adapters.evidence import EvidenceSink
from adapters.retry import NotYet, poll
from console.errors import AdapterError, AuthError, Conflict, PermissionDenied

__all__ = [
    "AFTER",
    "BEFORE",
    "BatchAdapter",
    "IRREVERSIBLE_NOTE",
    "JobList",
    "batch_hints",
    "batch_key",
    "number_option",
]

BEFORE: Mapping[str, str] = {"status": "running"}
AFTER: Mapping[str, str] = {"status": "cancelling"}
IRREVERSIBLE_NOTE = ("cancelling cannot be undone; the unprocessed requests must be "
                     "resubmitted")
DEFAULT_WAIT = 60.0
DEFAULT_TIMEOUT = 30.0
MAX_PAGES = 50
"""List pages read at most per reference (a runaway paginator stops here)."""


class JobList(list[dict[str, Any]]):
    """The jobs a ``_list`` hook found; ``capped`` when it stopped at its page cap.

    Args:
        jobs: The normalised jobs.
        capped: The listing stopped after ``pages`` pages although the provider had more.
        pages: Pages read.
    """

    def __init__(self, jobs: list[dict[str, Any]] | None = None, *, capped: bool = False,
                 pages: int = 0) -> None:
        super().__init__(jobs or [])
        self.capped = capped
        self.pages = pages

    def cap_note(self, provider: str, scope: str) -> str:
        """The plan's warning for a capped listing ("" when the listing is complete)."""
        if not self.capped:
            return ""
        return (f"LISTING INCOMPLETE: the {provider} job list of {scope} stopped at its cap "
                f"of {self.pages} page(s) with more pages left; jobs beyond it were not looked "
                "at and will not be cancelled: cancel them by hand or narrow the reference")



def number_option(backend: str, options: Mapping[str, Any], names: tuple[str, ...],
                  default: float) -> float:
    """A positive number option (first of ``names`` that is set), else ``default``.

    Raises:
        AdapterError: The value is not a non-negative number.
    """
    raw = next((options[n] for n in names if options.get(n) not in (None, "")), None)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"backend {backend!r}: option {names[0]} must be a number of "
                           f"seconds, got {raw!r}", where=backend) from exc
    if value < 0:
        raise AdapterError(f"backend {backend!r}: option {names[0]} must not be negative",
                           where=backend)
    return value


def batch_key(backend: str, provider: str, key_env: str, key_file: Path | None) -> str:
    """The console's batch API key: ``$key_env``, else the first line of ``key_file``.

    Raises:
        AuthError: Neither holds a key; the message names the variable, never a value.
    """
    return require_key(
        backend, provider, key_env, key_file, what="key", file_option="key_file",
        hint=f"export {key_env}=<key> (the integration's project/workspace key or a "
        "dedicated incident-response key); for the sandbox run `killswitch sandbox start`")


def batch_hints(key_env: str, which: str) -> dict[type[AdapterError], str]:
    """Hints of a rejected batch call: which key to check (``which`` it must be)."""
    return {AuthError: f"the key in {key_env} / key_file was rejected: batches need {which}",
            PermissionDenied: "the key lacks the permission listed by `killswitch` for "
                              "batch.cancel"}


class BatchAdapter(Adapter):
    """Base of the batch adapters: plan / read / apply / verify over the provider hooks.

    ``batch.cancel`` is irreversible: a cancelled job cannot be resumed, the unprocessed
    requests must be resubmitted as a new job.
    """

    provider: ClassVar[str] = ""
    PHASES: ClassVar[Mapping[str, str]] = {}
    """Raw status -> phase (running / cancelling / cancelled / ended); unknown = running."""
    PERMISSIONS: ClassVar[tuple[str, ...]] = ()
    SCHEMA: ClassVar[Mapping[str, Any]] = {}
    LIST_PAGES: int = MAX_PAGES
    """Pages a ``_list`` hook reads at most (an instance may lower it)."""

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.timeout = number_option(backend, self.options, ("request_timeout", "timeout"),
                                     DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT
        self.wait = number_option(backend, self.options, ("wait",), DEFAULT_WAIT)

    # -- provider hooks -------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _scope(self, ref: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def _raw_jobs(self, ref: Mapping[str, Any]) -> JobList:
        raise NotImplementedError

    def _list(self, ref: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        raise NotImplementedError

    # -- evidence -------------------------------------------------------------------------
    CAN_PRESERVE: ClassVar[bool] = True

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: every job of the integration (ids, status, request counts, file ids or
        locations, created, deadlines) and, where the provider serves them, the jobs' own
        output and error files (:mod:`adapters.preserve_batches`)."""
        from adapters.preserve_batches import preserve_batches

        preserve_batches(self, ref, sink)

    # -- helpers --------------------------------------------------------------------------
    def phase(self, status: str) -> str:
        """The phase of a raw provider status."""
        return self.PHASES.get(status, "running")

    def job(self, job_id: str, status: str, *, name: str = "", inputs: Mapping[str, Any],
            outputs: Mapping[str, Any], counts: Mapping[str, Any], failed: int) -> dict[str, Any]:
        """A normalised job record (locations not known yet are kept as None)."""
        return {"id": job_id, "name": name, "status": status, "phase": self.phase(status),
                "input": dict(inputs), "output": dict(outputs),
                "counts": dict(counts), "failed": int(failed or 0)}

    @staticmethod
    def _state(job: Mapping[str, Any] | None) -> dict[str, Any]:
        if job is None or job["phase"] != "running":
            return dict(AFTER)
        return dict(BEFORE)

    def _target(self, job: Mapping[str, Any]) -> str:
        label = f" ({job['name']})" if job.get("name") and job["name"] != job["id"] else ""
        return f"{self.backend}:{self.provider} batch {job['id']}{label}"

    # -- the contract ---------------------------------------------------------------------
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """List the integration's jobs (read-only); one change per job still running.

        Jobs already cancelling appear as ``noop`` changes (verify still follows them);
        ended jobs are only counted in the note. No job at all: one ``noop`` change.
        """
        if action not in self.ACTIONS:
            raise AdapterError(f"the {self.name} adapter does not offer {action}",
                               where=self.backend)
        self._check_ref(ref)
        jobs = self._list(ref)
        capped = jobs.cap_note(self.provider, self._scope(ref)) \
            if isinstance(jobs, JobList) else ""
        ctx = plan_context(self, action, ref, ctx)
        ended = [j for j in jobs if j["phase"] in ("cancelled", "ended")]
        left = (f"; {len(ended)} ended job{'s' if len(ended) != 1 else ''} left alone"
                if ended else "")
        if capped:
            left += f". {capped}"
        changes: list[Change] = []
        for job in (j for j in jobs if j["phase"] in ("running", "cancelling")):
            running = job["phase"] == "running"
            undo = {"job": job, "status_before": job["status"], "scope": self._scope(ref),
                    "resubmit": "resubmit the unprocessed requests of this job as a new job"}
            changes.append(ctx.change(
                self._target(job), self._state(job), AFTER, index=len(changes), undo=undo,
                reversible=False, status="observed" if running else NOOP,
                note=(f"cancel {self.provider} job {job['id']} (now {job['status']}, "
                      f"counts {_counts(job)}): {IRREVERSIBLE_NOTE}{left}") if running else
                     (f"already {job['status']}: cancel was requested before{left}")))
        if not changes:
            changes.append(ctx.change(
                f"{self.backend}:{self._scope(ref)}", {"running": 0}, {"running": 0},
                reversible=False, status=NOOP,
                undo={"scope": self._scope(ref), "ended": [j["id"] for j in ended]},
                note=(f"no {self.provider} batch job of {ctx.integration} is running in "
                      f"the pages read of {self._scope(ref)}{left}") if capped else
                     (f"no {self.provider} batch job of {ctx.integration} is running in "
                      f"{self._scope(ref)}: nothing to cancel{left}")))
        return changes

    def _job_of(self, change: Change) -> str:
        job = change.undo.get("job") or {}
        return str(job.get("id") or "")

    def read(self, change: Change) -> dict[str, Any]:
        """``{"status": "running"}`` or ``{"status": "cancelling"}`` (cancelling, cancelled,
        ended or gone); for the no-job change ``{"running": n}``."""
        job_id = self._job_of(change)
        if not job_id:
            return {"running": sum(j["phase"] == "running" for j in self._list(change.ref))}
        return self._state(self._get(change.ref, job_id))

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Request the cancel (idempotent: the engine reads first; a job that ended or is
        cancelling meanwhile answers 409/400, which counts as done).

        Returns:
            ``{"status_after": raw status, "counts": {...}, "failed": n}`` for the journal.
        """
        job_id = self._job_of(change)
        if not job_id:
            return {}
        try:
            self._cancel(change.ref, job_id)
        except AdapterError as exc:
            # a job that just ended or is already cancelling: 409 (OpenAI, Anthropic,
            # Bedrock ConflictException) or 400 FAILED_PRECONDITION (Vertex)
            if not (isinstance(exc, Conflict) or exc.status in (400, 409)):
                raise
            job = self._get(change.ref, job_id)
            if job is not None and job["phase"] == "running":
                raise
        try:  # the cancel is done: the read-back only feeds the journal
            job = self._get(change.ref, job_id)
        except AdapterError as exc:
            if not exc.retryable:
                raise
            return {"status_after": "cancel requested (read-back failed: retryable error)"}
        if job is None:
            return {"status_after": "gone"}
        return {"status_after": job["status"], "counts": job["counts"],
                "failed": job["failed"], "output": job["output"]}

    def verify(self, change: Change) -> Verdict:
        """Poll the job for up to ``wait`` seconds until cancelled or ended.

        Returns:
            ``cancelled`` / ``ended`` (ok), ``cancelling`` (ok: cancel accepted, still
            winding down when the wait ran out) or ``STILL RUNNING`` (not ok).
        """
        job_id = self._job_of(change)
        if not job_id:
            running = [j["id"] for j in self._list(change.ref) if j["phase"] == "running"]
            if running:
                return Verdict(False, "STILL RUNNING", f"{len(running)} job(s) started since "
                               f"planning: {', '.join(running[:5])}")
            return Verdict(True, "none running", f"no job running in {self._scope(change.ref)}")
        job = self._poll(lambda: self._get(change.ref, job_id))
        if job is None:
            return Verdict(True, "ended", f"job {job_id} no longer exists")
        said = f"{self.provider} job {job_id} is {job['status']}; counts {_counts(job)}"
        if job["phase"] == "running":
            return Verdict(False, "STILL RUNNING", said)
        if job["phase"] == "cancelling":
            return Verdict(True, "cancelling", f"{said} (cancel accepted; still winding down "
                           f"after {self.wait:g}s)")
        return Verdict(True, job["phase"], said)

    def _poll(self, get: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Read until the job is cancelled/ended or ``wait`` runs out (transient errors too).

        Returns:
            The last job read (None: gone). An error ends the wait early with the last job
            read, or is raised when no read succeeded.
        """
        last: list[dict[str, Any] | None] = []

        def final() -> dict[str, Any] | None:
            job = get()
            last[:] = [job]
            if job is not None and job["phase"] not in ("cancelled", "ended"):
                raise NotYet(job["status"])
            return job

        if self.wait <= 0:
            return get()
        try:
            return poll(final, timeout=self.wait)
        except (NotYet, AdapterError):
            if last:
                return last[0]
            raise


def _counts(job: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in job.get("counts", {}).items())
    return counts or "n/a"


