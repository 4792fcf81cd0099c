"""The engine's front door, shared by the headless CLI and the TUI.

A :class:`Session` plans, runs (dry or live), resumes and restores, enforcing the safety
rules in one place: blast radius, irreversible consent, per-integration locks, stale plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.base import UNSUPPORTED, Change, canonical_json, fingerprint
from console.engine.executor import Executor, ProgressHook, drift_summary, on_the_way
from console.engine.journal import Journal
from console.engine.locks import LockStore, RunFence, takeover_detail
from console.engine.model import OpResult, Plan, RunResult, StepInfo, new_run_id, utcnow
from console.engine.planner import PlanProgress, make_plan
from console.engine.proof import KeyProof
from console.engine.rotation import discard as discard_keys
from console.engine.rotation import require_pasted_keys
from console.engine.runtime import Runtime
from console.errors import (
    AdapterError,
    AuditError,
    BlastRadiusExceeded,
    ConsoleError,
    IrreversibleNotAllowed,
    LockHeld,
    PlanStaleError,
    PlanUntrusted,
    UndoUnsupported,
    UsageError,
)
from console.identity import operator_name
from console.store import has_trail
from console.vocab import DEFAULT_CAUSE, Mode, Outcome, Phase

if TYPE_CHECKING:
    from console.audit import TrailBase
    from console.config import Config
    from console.engine.rehearsal import RehearsalResult
    from console.inventory import Integration

__all__ = ["LEAK_ADVICE", "OLD_KEY_ADVICE", "Session", "default_operator", "held_back"]

T = TypeVar("T")


def _identity(c: Change) -> tuple[str, ...]:
    """What a saved change must share with a freshly planned one (besides precondition)."""
    return (c.integration, c.step, c.action, c.backend, c.target, canonical_json(c.ref))


def default_operator(config: Config) -> str:
    """Who is acting: config, then $KILLSWITCH_OPERATOR, then the login name."""
    return operator_name(config)


LEAK_HELD = "held back: the run's cause was leak"
"""How a restore row held back after a leak starts its note (after ``cannot be restored: ``)."""
OLD_KEY_HELD = "held back: undoing a rotation brings the old key back"
"""How a restore row held back after a rotation starts its note."""
LEAK_ADVICE = ("re-enabling a leaked key re-arms whoever holds it; rotate instead "
               "(`killswitch run rotate INTEGRATION`), or restore with --reenable-leaked "
               "--reason '...' to bring it back anyway")
OLD_KEY_ADVICE = ("the old key was retired on purpose; restore with --reenable-old-key "
                  "--reason '...' to bring it back anyway")
_CREDENTIAL_UNDO = ("credential.disable", "credential.retire", "credential.write",
                    "credential.issue")
"""Original actions whose undo brings an old key back into use (or, for a rotation's
``credential.issue``, disables the new key that replaced it: held back with the rest, so a
half-undone rotation never leaves the integration with no working key)."""


def _hold_back(c: Change, cause: str, *, reenable_leaked: bool, reenable_old_key: bool) -> str:
    """The note of the restore row when the undo of ``c`` must be held back, else ``""``."""
    if c.action not in _CREDENTIAL_UNDO:
        return ""
    if cause == "leak":
        return "" if reenable_leaked else f"cannot be restored: {LEAK_HELD}: {LEAK_ADVICE}"
    if c.action == "credential.disable" or reenable_old_key:
        return ""
    return f"cannot be restored: {OLD_KEY_HELD}: {OLD_KEY_ADVICE}"


def held_back(changes: Iterable[Change]) -> list[Change]:
    """The rows of a restore plan held back because they would bring a leaked or retired
    key back (see :meth:`Session.restore_plan`)."""
    return [c for c in changes if c.status == UNSUPPORTED
            and (LEAK_HELD in c.note or OLD_KEY_HELD in c.note)]


class Session:
    """One operator's use of the engine against one config.

    Args:
        config: The loaded config.
        operator: Who is acting (recorded in every event).
        incident: Incident id (recorded in every event).
        cause: Why the runs happen (:data:`console.vocab.CAUSES`; default ``other``):
            planned into every plan (hashed), recorded in the trail.
        mode: ``live`` or ``exercise`` for runs; dry-runs are recorded as ``dry-run``.
            A ``rehearsal`` session times every plan's adapter calls (the latency model of
            :meth:`rehearse`); rehearsals are recorded as ``rehearsal`` whatever the mode.
        runtime: A runtime shared with other sessions (the console's: its clients outlive
            this session and :meth:`close` leaves them open).
    """

    def __init__(self, config: Config, *, operator: str | None = None,
                 incident: str | None = None, mode: str = "live",
                 runtime: Runtime | None = None, cause: str | None = None) -> None:
        self.config = config
        self.operator = operator or default_operator(config)
        self.incident = incident or config.settings.incident or ""
        self.cause = cause or DEFAULT_CAUSE
        self.mode = mode
        self._audit: TrailBase | None = None
        self._runtime: Runtime | None = runtime
        self._shared = runtime is not None
        self.cancel: asyncio.Event | None = None
        self.cancel_requested = False
        """:meth:`request_cancel` was called: the next run executes already cancelled."""
        self.recorded_hashes: dict[str, str] = {}
        """run id -> hash of the plan last recorded by :meth:`record_plan` (to print it
        without hashing a big plan again)."""
        self._observed: dict[str, tuple[dict[str, float], Plan]] = {}
        """run id -> (op id -> monotonic time its target's observation began, the plan) for
        the plan last made here."""
        self._timings: dict[str, dict[str, list[float]]] = {}
        """run id -> backend -> seconds of each adapter call, for the plan last made here
        with timing on (a rehearsal's latency model)."""

    # -- plumbing -----------------------------------------------------------------------
    @property
    def audit(self) -> TrailBase:
        """The audit trail (opened on first use)."""
        if self._audit is None:
            from console.audit import KEY_ENV
            from console.store import open_audit

            if self.config.settings.audit_keyed and not os.environ.get(KEY_ENV):
                raise AuditError(
                    "this config requires a keyed audit trail (settings.audit_keyed) and "
                    f"{KEY_ENV} is not set; nothing was recorded or changed",
                    where=str(self.config.path), hint=f"set {KEY_ENV} to the trail's key")
            self._audit = open_audit(self.config)
        return self._audit

    @property
    def runtime(self) -> Runtime:
        """The session's one runtime: adapters (SDK clients) are built once and reused by
        plan, drift check, apply, verify, proof and restore; each phase uses a
        :meth:`Runtime.view` carrying its run id. Closed by :meth:`close`."""
        if self._runtime is None:
            self._runtime = Runtime(self.config)
            # a session dropped without close() still closes its connections
            self._finalizer = weakref.finalize(self, self._runtime.close)
        return self._runtime

    def close(self) -> None:
        """Close the session's clients (a later call builds them again)."""
        if self._runtime is not None and not self._shared:
            self._finalizer()
            self._runtime = None

    @property
    def locks(self) -> LockStore:
        """The per-integration lock table of the configured store (leases of
        ``settings.lock_lease``)."""
        from console.store import open_locks

        return open_locks(self.config)

    def _journal(self, run_id: str, mode: str) -> Journal:
        return Journal(self.audit, {"run_id": run_id, "incident": self.incident,
                                    "operator": self.operator, "mode": mode})

    @staticmethod
    def sync(coro: Awaitable[T]) -> T:
        """Run a coroutine to completion from synchronous code.

        The result is handed over outside the main task: Python 3.11's ``asyncio.run``
        formats ``repr(main_task)`` when it restores the SIGINT handler (the ``signal``
        module's enum lookup builds a ValueError message), and a finished task's repr holds
        its result's: for a plan of 40,000 changes that was a string of some 100 MB and
        half a second, for nothing.
        """
        box: list[T] = []

        async def wrap() -> None:
            box.append(await coro)
        asyncio.run(wrap())
        return box[0]

    # -- plan ---------------------------------------------------------------------------
    async def plan(self, runbook_name: str, selectors: list[str], *,
                   record_mode: str = "plan", include_unlisted: bool = False,
                   progress: PlanProgress | None = None) -> Plan:
        """Select integrations, observe every target, return the plan (recorded).

        With ``include_unlisted``, stores are scanned first and copies of each key that the
        inventory does not list are planned too (marked UNLISTED). ``progress`` hears each
        target's observation start and finish (:data:`console.engine.planner.PlanProgress`).
        """
        from console.inventory import select

        integrations = select(self.config.integrations, selectors)
        if not integrations:
            raise UsageError(f"no integration matches {' '.join(selectors)!r}",
                             hint="check with `killswitch inventory list SELECTOR...`")
        plan = await self._observe(runbook_name, integrations, selectors,
                                   include_unlisted=include_unlisted, progress=progress,
                                   timed=record_mode == Mode.REHEARSAL)
        self.record_plan(plan, record_mode)
        return plan

    async def _observe(self, runbook_name: str, integrations: list[Integration],
                       selectors: list[str], *, include_unlisted: bool,
                       run_id: str | None = None,
                       progress: PlanProgress | None = None, timed: bool = False,
                       cause: str | None = None) -> Plan:
        """Plan ``runbook_name`` over ``integrations`` (read-only, not recorded).

        ``run_id`` names the plan (default: a new id); adapters quote it to providers.
        ``timed`` (or a ``rehearsal`` session): every adapter call is timed, per backend,
        for :meth:`rehearse`'s latency model.
        """
        from console.runbook import load_runbook

        runbook = load_runbook(runbook_name, self.config)
        if getattr(runbook, "kind", "") == "restore":
            raise UsageError("the restore runbook undoes a previous run",
                             hint="use `killswitch restore RUN_ID`")
        unlisted: dict[str, list[dict[str, Any]]] = {}
        notes: list[str] = []
        if include_unlisted:
            from console.engine.scan import scan_copies

            report = await scan_copies(self.config, integrations)
            unlisted = {i.id: report.unlisted(i.id) for i in integrations}
            notes = [f"scan: {p}" for p in report.problems]
        rt = self.runtime.view(run_id=run_id or new_run_id())
        samples: dict[str, list[float]] | None = None
        if timed or self.mode == Mode.REHEARSAL:
            from console.engine.rehearsal import TimedRuntime

            samples = {}
            rt = TimedRuntime.of(rt, samples)
        rt.operator, rt.runbook = self.operator, runbook.name
        observed_at: dict[str, float] = {}
        plan = await make_plan(rt, runbook, integrations, selectors, incident=self.incident,
                               run_id=rt.run_id, unlisted=unlisted, progress=progress,
                               observed_at=observed_at, cause=cause or self.cause)
        plan.notes.extend(notes)
        self._observed = {plan.run_id: (observed_at, plan)}
        self._timings = {plan.run_id: samples} if samples is not None else {}
        return plan

    def _fresh_until(self, plan: Plan) -> dict[str, float]:
        """Per op id, the monotonic deadline before which the plan's observation of its
        target may stand in for the read before the change (``drift_read_after`` after that
        target was observed); empty for a plan not observed in this session."""
        observed_at, observed = self._observed.pop(plan.run_id, ({}, None))
        if observed is not plan:
            return {}
        window = self.config.settings.drift_read_after
        return {op: when + window for op, when in observed_at.items()}

    async def rederive(self, saved: Plan) -> Plan:
        """The plan to run for a saved (untrusted) plan, re-derived from what is true now.

        The saved file only *selects*: every target is observed again and the runbook (or,
        for a restore plan, the journal of the run being undone) is planned again for the
        plan's integrations. Each saved change must match a freshly planned one on
        integration, step, action, backend, target, reference and precondition fingerprint;
        what runs is the fresh changes (reversibility and undo data come from the adapters,
        never from the file). Steps come from the runbook, not the file.

        Raises:
            PlanUntrusted: A change does not match, an integration is not in the inventory,
                a change lies outside ``plan.integrations``, the runbook changed, or the plan
                was already applied. Names every offending change; nothing is applied.
            PlanStaleError: The only mismatch is that targets drifted since the plan.
        """
        known = {i.id: i for i in self.config.integrations}
        problems: list[str] = []
        unknown = [i for i in saved.integrations if i not in known]
        if unknown:
            problems.append(f"integration(s) not in the inventory: {', '.join(unknown)}")
        for c in saved.changes:
            if c.integration not in saved.integrations:
                problems.append(f"{c.op_id} ({c.action} {c.target}): integration "
                                f"{c.integration!r} is outside the plan's integrations")
        if self.audit.events(run_id=saved.run_id, outcome=Outcome.STARTED):
            problems.append(f"this plan was already applied as run {saved.run_id}")
        if problems:
            raise self._untrusted(problems)
        integrations = [known[i] for i in saved.integrations]
        if saved.restore_of:
            fresh = await asyncio.to_thread(self.restore_plan, saved.restore_of)
        else:
            fresh = await self._observe(
                saved.runbook, integrations, saved.selectors,
                include_unlisted=any(c.target.endswith("(UNLISTED)") for c in saved.changes),
                run_id=saved.run_id, cause=saved.cause)
        if [asdict(s) for s in fresh.steps] != [asdict(s) for s in saved.steps]:
            problems.append(f"the steps of runbook {saved.runbook!r} are not the ones the plan "
                            "was made with (the runbook or the file changed)")
        index = {_identity(c): c for c in fresh.changes}
        matched: list[Change] = []
        drifted: list[str] = []
        for c in saved.changes:
            f = index.pop(_identity(c), None)
            if f is None:
                problems.append(f"{c.op_id} ({c.action} {c.target}): not a change runbook "
                                f"{saved.runbook!r} plans for {c.integration} now")
            elif f.precondition != c.precondition or f.status != c.status:
                drifted.append(f"{c.target}: {drift_summary(c.before, f.before)}"
                               if f.status == c.status else
                               f"{c.target}: was {c.status or 'planned'}, now {f.status}")
            else:
                matched.append(f)
        for c in index.values():
            problems.append(f"{c.op_id} ({c.action} {c.target}): runbook {saved.runbook!r} "
                            f"plans it for {c.integration} now, but the saved plan lacks it")
        if problems:
            raise self._untrusted(problems + [f"drifted: {d}" for d in drifted])
        if drifted:
            raise PlanStaleError(
                "the plan is stale; nothing was changed. Drifted: " + " | ".join(drifted),
                hint="plan again to see the current state")
        notes = list(fresh.notes)
        return Plan(run_id=saved.run_id, runbook=fresh.runbook, selectors=saved.selectors,
                    integrations=list(saved.integrations), steps=fresh.steps, changes=matched,
                    notes=notes, restore_of=fresh.restore_of, created=saved.created,
                    config=str(self.config.path), cause=saved.cause)

    @staticmethod
    def _untrusted(problems: list[str]) -> PlanUntrusted:
        return PlanUntrusted(
            f"the saved plan is not what would be planned now; refused whole, nothing was "
            f"changed ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems),
            hint="plan again (`killswitch plan ... --out FILE`) and review the new plan")

    def record_plan(self, plan: Plan, mode: str) -> None:
        """Write the plan to the trail: one summary event and one event per change, in one
        transaction (:meth:`AuditLog.append_batch`: the events are made one at a time and
        only their stored rows are held, which matters for a plan of 40,000 changes)."""
        base = self._journal(plan.run_id, mode).base
        digest = plan.hash
        self.recorded_hashes = {plan.run_id: digest}

        def events() -> Iterator[dict[str, Any]]:
            yield {**base, "phase": Phase.PLAN, "action": plan.runbook,
                   "outcome": Outcome.PLANNED,
                   "detail": {"plan_hash": digest, "selectors": plan.selectors,
                              "cause": plan.cause,
                              "integrations": plan.integrations, "changes": len(plan.changes),
                              "notes": plan.notes}}
            for c in plan.changes:
                yield {**base, "integration": c.integration, "step": c.step,
                       "op_id": c.op_id, "phase": Phase.PLAN, "action": c.action,
                       "target": c.target, "outcome": c.status,
                       "detail": {"before": c.before, "after": c.after,
                                  "reversible": c.reversible, "note": c.note,
                                  "error": c.error}}

        self.audit.append_batch(events())

    # -- guards -------------------------------------------------------------------------
    def check_guards(self, plan: Plan, *, allow_irreversible: bool,
                     max_targets: int | None) -> None:
        """Refuse a live run over too many targets or with irreversible changes unconsented.

        Raises:
            BlastRadiusExceeded: More integrations than allowed.
            IrreversibleNotAllowed: Irreversible changes without consent.
        """
        limit = max_targets if max_targets is not None else self.config.settings.max_targets
        if len(plan.integrations) > limit:
            raise BlastRadiusExceeded(
                f"this run targets {len(plan.integrations)} integrations; the limit is {limit}",
                hint=f"narrow the selectors, or pass --max-targets {len(plan.integrations)}")
        irreversible = plan.irreversible
        if irreversible and not allow_irreversible:
            names = ", ".join(f"{c.action} {c.target}" for c in irreversible[:5])
            more = f" and {len(irreversible) - 5} more" if len(irreversible) > 5 else ""
            raise IrreversibleNotAllowed(
                f"{len(irreversible)} change(s) cannot be undone: {names}{more}",
                hint="review the plan, then pass --allow-irreversible to consent")

    async def check_drift(self, plan: Plan) -> None:
        """Re-read every target of a saved plan; refuse the whole plan if any drifted.

        Raises:
            PlanStaleError: Naming every drifted target and field.
        """
        rt = self.runtime.view(run_id=plan.run_id)
        drifted: list[str] = []

        async def one(c: Change) -> None:
            try:
                state = await rt.read_call(c.backend, lambda a: a.read(c))
            except AdapterError as exc:
                drifted.append(f"{c.target}: cannot read ({exc.msg})")
                return
            now = fingerprint(state)
            if now not in (c.precondition, fingerprint(c.after)) and \
                    not on_the_way(c.before, state, c.after):
                drifted.append(f"{c.target}: {drift_summary(c.before, state)}")

        await asyncio.gather(*(one(c) for c in plan.changes if c.actionable and c.precondition))
        if drifted:
            raise PlanStaleError(
                "the plan is stale; nothing was changed. Drifted: " + " | ".join(drifted),
                hint="plan again to see the current state")

    # -- runs ---------------------------------------------------------------------------
    async def apply(self, plan: Plan, *, reason: str = "", allow_irreversible: bool = False,
                    max_targets: int | None = None, saved: bool = False,
                    progress: ProgressHook | None = None,
                    authorise: Callable[[], object] | None = None) -> RunResult:
        """Apply ``plan`` live: guards, locks, journal, apply, verify.

        Args:
            plan: The plan to apply verbatim.
            reason: Why (recorded).
            allow_irreversible: Consent to irreversible changes.
            max_targets: Override of the configured blast-radius limit.
            saved: The plan was loaded from a file: check for drift first.
            progress: Progress hook for the TUI.
            authorise: The two-person rule's pass (:mod:`console.engine.twoperson`): called
                under the locks, after the drift check, just before the run is recorded as
                started (it spends an approval, or records a break-glass); if it raises, the
                run is refused and nothing is applied. Without it, a run the rule covers is
                refused (:class:`~console.engine.twoperson.ApprovalRequired`) with an
                approval requested for the plan.
        """
        self.check_guards(plan, allow_irreversible=allow_irreversible, max_targets=max_targets)
        require_pasted_keys(plan)  # rotation: a key the operator must paste is in memory
        if authorise is None and self.config.settings.two_person != "off":
            from console.engine.twoperson import gate
            await asyncio.to_thread(gate, self, plan, reason)
        locks = self.locks
        stale = locks.acquire(plan.integrations, plan.run_id, self.operator, utcnow())
        journal = self._journal(plan.run_id, self.mode)
        try:
            for lock in stale:
                await journal.record(integration=lock.integration, phase=Phase.RUN, action="lock",
                                     outcome=Outcome.LOCK_TAKEN_OVER,
                                     detail=takeover_detail(
                                         lock, locks.mine(plan.run_id).get(lock.integration)))
            if saved:
                try:
                    await self.check_drift(plan)
                except PlanStaleError as exc:
                    await journal.record(phase=Phase.RUN, action=plan.runbook,
                                         outcome=Outcome.REFUSED,
                                         detail={"message": exc.msg})
                    raise
            if authorise is not None:
                await asyncio.to_thread(authorise)
            body = plan.body()
            await journal.record(phase=Phase.RUN, action=plan.runbook, outcome=Outcome.STARTED,
                                 detail={"plan": body, "plan_hash": plan.hash_of(body),
                                         "reason": reason, "restore_of": plan.restore_of,
                                         "allow_irreversible": allow_irreversible,
                                         "cause": plan.cause})
            fresh = {} if saved else self._fresh_until(plan)
            return await self._execute(plan, journal, None, progress, locks, fresh)
        finally:
            discard_keys(plan.run_id)  # the run's new keys lived in memory for this run only
            await journal.aclose()
            locks.release(plan.run_id)

    async def rehearse(self, runbook_name: str | None = None,
                       selectors: list[str] | None = None, *, plan: Plan | None = None,
                       include_unlisted: bool = False,
                       faults: Mapping[str, Mapping[str, Any]] | None = None,
                       seed: int | None = None, latency: Mapping[str, float] | None = None,
                       reason: str = "", allow_irreversible: bool = False,
                       max_targets: int | None = None, notes: list[str] | None = None,
                       progress: ProgressHook | None = None,
                       plan_progress: PlanProgress | None = None) -> RehearsalResult:
        """Rehearse a run: observe the real targets read-only, then play the whole run
        (the real executor: DAG, retries, verify, proof) against a simulated copy of what
        was observed (:mod:`console.engine.rehearsal`). No adapter's apply is called, no
        lock is taken; the trail records it all with mode ``rehearsal``.

        Args:
            runbook_name: The runbook to plan (with ``selectors``), recorded as a
                ``rehearsal`` plan whose adapter calls are timed for the latency model.
            selectors: What to select.
            plan: Instead of a runbook: rehearse this plan (e.g. one made with
                ``plan(..., record_mode="rehearsal")``, whose timings are used). A plan not
                recorded as a rehearsal plan is rehearsed under a new run id (its own id
                stays free for a live run) and recorded again with mode ``rehearsal``.
            include_unlisted: Plan unlisted copies too (with ``runbook_name``).
            faults: ``{backend: {field: value}}`` (:data:`console.engine.rehearsal.FAULT_FIELDS`),
                injected into the simulated calls.
            seed: Seed of the fault generator (default: a random one, reported).
            latency: Seconds per call per backend, overriding the measured medians.
            reason: Recorded in the run's start event.
            allow_irreversible, max_targets: The guards a live run would apply: a rehearsal
                is never refused by them; it notes what a live run would need.
            notes: Extra lines for the result (e.g. scenario faults not played).
            progress: The executor's progress hook (as :meth:`apply`'s).
            plan_progress: The planner's progress hook (as :meth:`plan`'s).

        Raises:
            UsageError: Bad faults (before anything is observed), or no runbook and no plan.
        """
        import random

        from console.engine.rehearsal import (
            RehearsalResult,
            RehearsalRuntime,
            SimulatedProof,
            SimulatedWorld,
            latency_model,
            parse_faults,
        )

        injected = parse_faults(faults, self.config)
        if plan is None:
            if not runbook_name or not selectors:
                raise UsageError("a rehearsal needs a runbook and selectors, or a plan",
                                 hint="e.g. killswitch run kill-switch support-bot --rehearse")
            plan = await self.plan(runbook_name, selectors, record_mode=Mode.REHEARSAL,
                                   include_unlisted=include_unlisted, progress=plan_progress)
        fresh = self._fresh_until(plan)
        timings = self._timings.pop(plan.run_id, None)
        events = self.audit.events(run_id=plan.run_id)
        if not events or any(e.get("mode") != Mode.REHEARSAL or e.get("phase") != Phase.PLAN
                             for e in events):
            from dataclasses import replace

            plan = replace(plan, run_id=new_run_id())
            self.record_plan(plan, Mode.REHEARSAL)
        notes = list(notes or [])
        try:
            self.check_guards(plan, allow_irreversible=allow_irreversible,
                              max_targets=max_targets)
        except (BlastRadiusExceeded, IrreversibleNotAllowed) as exc:
            notes.append(f"a live run would be refused: {exc.msg}"
                         + (f" ({exc.hint})" if exc.hint else ""))
        backends = {c.backend for c in plan.changes if c.actionable or c.status == "noop"}
        model = latency_model(timings, latency, backends)
        measured = [b for b in backends
                    if timings and timings.get(b) and not (latency and b in latency)]
        world = SimulatedWorld(plan, model, injected,
                               seed if seed is not None else random.SystemRandom().randrange(2**31))
        rt = RehearsalRuntime(self.runtime, world)

        def prover(view: Runtime) -> KeyProof:
            assert isinstance(view, RehearsalRuntime)
            return SimulatedProof(view)

        journal = self._journal(plan.run_id, Mode.REHEARSAL)
        try:
            body = plan.body()
            await journal.record(phase=Phase.RUN, action=plan.runbook, outcome=Outcome.STARTED,
                                 detail={"plan": body, "plan_hash": plan.hash_of(body),
                                         "reason": reason, "restore_of": plan.restore_of,
                                         "allow_irreversible": allow_irreversible,
                                         "cause": plan.cause, "rehearsal": True, "latency": model,
                                         "faults": {b: f.describe() for b, f in injected.items()},
                                         "seed": world.seed, "notes": notes})
            result = await self._execute(plan, journal, None, progress, None, fresh,
                                         runtime=rt, prover=prover)
        finally:
            await journal.aclose()
        return RehearsalResult.of(result, world, measured=measured, notes=notes)

    async def _execute(self, plan: Plan, journal: Journal,
                       previous: dict[str, OpResult] | None,
                       progress: ProgressHook | None, locks: LockStore | None,
                       fresh_until: Mapping[str, float] | None = None, *,
                       runtime: Runtime | None = None,
                       prover: Callable[[Runtime], KeyProof] | None = None) -> RunResult:
        """Run the executor over ``plan`` and record the run's end.

        ``runtime``: the runtime to run on instead of the session's (a rehearsal's simulated
        one); ``prover`` builds its proof of death; ``locks`` None: no leases to renew.
        """
        rt = (runtime or self.runtime).view(run_id=plan.run_id)
        fence = RunFence(locks, plan.run_id) if locks is not None else None
        renewer = asyncio.create_task(fence.keep()) if fence is not None else None
        self.cancel = asyncio.Event()
        if self.cancel_requested:  # cancelled before the executor existed: start nothing
            self.cancel.set()
        proof = None
        if not plan.restore_of and self._probe_backends(rt, plan):
            proof = (prover(rt) if prover is not None else
                     KeyProof(rt, self.config.settings.proof_window,
                              self.config.settings.proof_interval))
        try:
            result = await Executor(rt, journal, self.cancel, progress, proof,
                                    fresh_until=fresh_until,
                                    fence=fence).apply(plan, previous)
            if fence is not None:  # still ours at the end? (a renewal may have found it lost)
                with contextlib.suppress(LockHeld):
                    await fence.check()
        finally:
            if renewer is not None:
                renewer.cancel()
        if fence is not None and fence.lost is not None:
            await journal.record(phase=Phase.RUN, action="lock", outcome=Outcome.REFUSED,
                                 detail={"message": fence.lost.msg})
            raise fence.lost
        summary: dict[str, int] = {str(o): result.count(o) for o in
                   (Outcome.APPLIED, Outcome.NOOP, Outcome.FAILED, Outcome.REFUSED,
                    Outcome.SKIPPED, Outcome.UNSUPPORTED)}
        summary["verify_failed"] = len(result.verify_failed)
        summary["still_live"] = len(result.still_live)
        await journal.record(phase=Phase.RUN, action=plan.runbook,
                             outcome=Outcome.CANCELLED if result.cancelled else Outcome.FINISHED,
                             detail={"summary": summary, "exit_code": result.exit_code(),
                                     "elapsed": round(result.elapsed, 3)})
        from console.witness import checkpoint_run  # the head, witnessed outside the trail

        await asyncio.to_thread(checkpoint_run, self.config, self.audit, plan.run_id)
        return result

    def request_cancel(self) -> None:
        """Stop starting operations (in-flight ones finish and are recorded), also when the
        run has not reached its executor yet. Clear :attr:`cancel_requested` to run again."""
        self.cancel_requested = True
        if self.cancel is not None:
            self.cancel.set()

    @staticmethod
    def _probe_backends(rt: Runtime, plan: Plan) -> bool:
        """True when some credential change is at a provider that can test keys."""
        for backend in {c.backend for c in plan.changes if c.action.startswith("credential.")}:
            try:
                if rt.adapter(backend).CAN_PROBE:
                    return True
            except ConsoleError:
                continue
        return False

    # -- journal-based commands ---------------------------------------------------------
    def load_run(self, run_id: str) -> tuple[Plan, list[dict[str, Any]]]:
        """The plan a run applied and its events.

        Raises:
            UsageError: No such run, or it never started applying.
        """
        events = self.audit.events(run_id=run_id)
        start = next((e for e in events if e.get("phase") == Phase.RUN
                      and e.get("outcome") == Outcome.STARTED), None)
        if start is None:
            raise UsageError(f"no applied run with id {run_id}",
                             hint="list runs with `killswitch audit show`")
        return Plan.from_dict(start["detail"]["plan"]), events

    @staticmethod
    def op_results(events: list[dict[str, Any]]) -> dict[str, OpResult]:
        """Last recorded apply outcome of every operation in ``events``."""
        results: dict[str, OpResult] = {}
        for e in events:
            if e.get("phase") != Phase.APPLY or not e.get("op_id"):
                continue
            d = e.get("detail") or {}
            res = results.setdefault(e["op_id"], OpResult(e["op_id"]))
            res.outcome = (Outcome.PENDING if e["outcome"] in (Outcome.STARTED, Outcome.RETRYING)
                           else e["outcome"])
            res.message = d.get("message", res.message)
            res.undo = d.get("undo", res.undo) or {}
            res.attempts = d.get("attempts", res.attempts)
        return results

    async def resume(self, run_id: str, progress: ProgressHook | None = None) -> RunResult:
        """Finish a run that stopped (crash, kill -9) without repeating completed effects.

        Raises:
            LockHeld: The run's holder may still be alive (same host: its process runs;
                another host: its lease has not expired). Nothing is done.
            UsageError: No such run, or it already finished.
        """
        plan, events = self.load_run(run_id)
        self._refuse_rehearsal(run_id, events, "resume")
        self._refuse_finished(run_id, events)
        first = events[0]
        self.incident = self.incident or first.get("incident") or ""
        locks = self.locks
        stale = locks.acquire(plan.integrations, plan.run_id, self.operator, utcnow())
        journal = self._journal(plan.run_id, first.get("mode") or self.mode)
        try:
            # read again under the lock: the holder may have finished ops (or the run)
            # between the first read and the takeover
            events = self.audit.events(run_id=run_id)
            self._refuse_finished(run_id, events)
            previous = self.op_results(events)
            for lock in stale:
                await journal.record(integration=lock.integration, phase=Phase.RUN, action="lock",
                                     outcome=Outcome.LOCK_TAKEN_OVER,
                                     detail=takeover_detail(
                                         lock, locks.mine(plan.run_id).get(lock.integration)))
            await journal.record(phase=Phase.RUN, action=plan.runbook, outcome=Outcome.RESUMED,
                                 detail={"taken_over": [s.describe() for s in stale],
                                         "already_final": sum(
                                             1 for r in previous.values()
                                             if r.outcome != Outcome.PENDING)})
            return await self._execute(plan, journal, previous, progress, locks)
        finally:
            await journal.aclose()
            locks.release(plan.run_id)

    def interrupted_runs(self) -> list[str]:
        """Live runs in this config's trail that stopped half way and nobody is finishing.

        A run counts when its last run event is ``started`` or ``resumed`` (no ``finished``
        or ``cancelled`` after it) and no live holder has its locks: every lock it still
        holds belongs to a provably dead holder (:meth:`LockStore.holder_gone`), or the
        locks are gone. These are what ``resume`` finishes.

        Returns:
            Run ids, oldest first.
        """
        if not has_trail(self.config):
            return []  # no trail yet: nothing ran (and looking must not create one)
        ends = {Outcome.FINISHED, Outcome.CANCELLED}
        candidates = [r["run_id"] for r in self.audit.runs()
                      if Outcome.STARTED in r["outcomes"] and Outcome.FINISHED not in r["outcomes"]
                      and r["mode"] not in ("dry-run", "plan", Mode.REHEARSAL)]
        if not candidates:
            return []
        held: dict[str, list[Any]] = {}
        locks = self.locks
        for lock in locks.held():
            held.setdefault(lock.run_id, []).append(lock)
        found = []
        for run_id in candidates:
            life = [e["outcome"] for e in self.audit.events(run_id=run_id)
                    if e.get("phase") == Phase.RUN
                    and e.get("outcome") in (Outcome.STARTED, Outcome.RESUMED, *ends)]
            if not life or life[-1] in ends:
                continue
            if all(locks.holder_gone(lock) for lock in held.get(run_id, [])):
                found.append(run_id)
        return found

    @staticmethod
    def _refuse_rehearsal(run_id: str, events: list[dict[str, Any]], what: str) -> None:
        """A rehearsal changed nothing: there is nothing to resume or restore (and doing
        either would act on the real backends)."""
        if any(e.get("mode") == Mode.REHEARSAL and e.get("phase") == Phase.RUN
               for e in events):
            raise UsageError(f"run {run_id} was a rehearsal: it changed nothing, so there is "
                             f"nothing to {what}",
                             hint="rehearse again with `killswitch run RUNBOOK SELECTOR "
                                  "--rehearse`, or run it live without --rehearse")

    @staticmethod
    def _refuse_finished(run_id: str, events: list[dict[str, Any]]) -> None:
        if any(e.get("phase") == Phase.RUN and e.get("outcome") == Outcome.FINISHED
               for e in events):
            raise UsageError(f"run {run_id} already finished; nothing to resume",
                             hint=f"see `killswitch report {run_id}`")

    def _undone_by_earlier_restores(self, run_id: str) -> tuple[set[str], list[str]]:
        """Undo op ids that earlier restores of ``run_id`` applied, and those restores."""
        undone: set[str] = set()
        by: list[str] = []
        for start in self.audit.events(outcome=Outcome.STARTED):
            detail = start.get("detail") or {}
            if start.get("phase") != Phase.RUN or detail.get("restore_of") != run_id:
                continue
            restore_id = str(start.get("run_id") or "")
            done = {op for op, r in self.op_results(self.audit.events(run_id=restore_id)).items()
                    if r.outcome == Outcome.APPLIED}
            if done:
                undone |= done
                by.append(restore_id)
        return undone, by

    def restore_plan(self, run_id: str, *, reenable_leaked: bool = False,
                     reenable_old_key: bool = False) -> Plan:
        """The plan that undoes every change ``run_id`` applied, steps in reverse order.

        Knows the run's cause: when it was ``leak``, the undo of every credential change
        (re-enabling the key, putting the old value back in a store) is held back as a row
        that will NOT happen, saying to rotate instead, unless ``reenable_leaked`` (the
        operator's explicit consent, with a reason). The same holds for the undo of a
        rotation (``credential.retire`` / ``credential.write``: it brings the old key back)
        without ``reenable_old_key``. Flags, egress and everything else restore as always.
        :func:`held_back` lists the rows held back.
        """
        plan, events = self.load_run(run_id)
        self._refuse_rehearsal(run_id, events, "restore")
        start = next((e for e in events if e.get("phase") == Phase.RUN
                      and e.get("outcome") == Outcome.STARTED), {})
        cause = str((start.get("detail") or {}).get("cause") or plan.cause or DEFAULT_CAUSE)
        consented = 0
        results = self.op_results(events)
        undone, by = self._undone_by_earlier_restores(run_id)
        rt = self.runtime
        changes: list[Change] = []
        notes: list[str] = []
        for c in plan.changes:
            res = results.get(c.op_id)
            if res is None or res.outcome != Outcome.APPLIED:
                continue
            if f"{c.op_id}:undo" in undone:
                continue  # an earlier restore undid it already: never undo twice
            if c.action == "evidence.preserve":
                continue  # nothing to undo: the bundle is kept
            held = _hold_back(c, cause, reenable_leaked=reenable_leaked,
                              reenable_old_key=reenable_old_key)
            if not held and _hold_back(c, cause, reenable_leaked=False, reenable_old_key=False):
                consented += 1
            if held:
                changes.append(Change(f"{c.op_id}:undo", c.integration, f"undo-{c.step}",
                                      c.action, c.backend, c.adapter, c.target, c.ref,
                                      reversible=False, status=UNSUPPORTED, inverse_of=c.op_id,
                                      note=held))
                continue
            try:
                inv = rt.adapter(c.backend).inverse(c, res.undo)
            except (UndoUnsupported, AdapterError) as exc:
                inv = Change(f"{c.op_id}:undo", c.integration, f"undo-{c.step}",
                             c.action, c.backend, c.adapter, c.target, c.ref,
                             reversible=False, status=UNSUPPORTED, inverse_of=c.op_id,
                             note=f"cannot be restored: {exc.msg}"
                                  + (f"; {exc.hint}" if exc.hint else ""))
            changes.append(inv)
        steps = []
        for s in reversed(plan.steps):
            dependents = [f"undo-{t.id}" for t in plan.steps if s.id in t.needs]
            steps.append(StepInfo(f"undo-{s.id}", s.action, dependents, "continue", s.timeout))
        if by:
            notes.append(f"run {run_id} was restored before by {', '.join(by)}: "
                         f"{len(undone)} change(s) already undone are left out")
        if not changes:
            notes.append(f"run {run_id} applied no change that could be undone"
                         + (" that is not undone already" if by else ""))
        for integ, lines in Plan(run_id, "", [], [], [], changes).not_restored().items():
            notes.extend(f"{integ}: stays dead: {line}" for line in lines)
        if any(c.action == "evidence.preserve" for c in plan.changes):
            notes.append(f"evidence bundle of run {run_id} kept (nothing to undo)")
        if consented:
            notes.append(f"CONSENT: {consented} credential change(s) bring "
                         + ("a LEAKED key back (--reenable-leaked)" if cause == "leak" else
                            "a retired key back (--reenable-old-key)"))
        leaked = held_back(changes)
        if leaked:
            notes.append(f"run {run_id} was caused by a {cause}" if cause == "leak" else
                         f"run {run_id} rotated keys")
            notes.append(f"{len(leaked)} credential change(s) held back: " + LEAK_ADVICE
                         if cause == "leak" else
                         f"{len(leaked)} credential change(s) held back: {OLD_KEY_ADVICE}")
        return Plan(run_id=new_run_id(), runbook="restore", selectors=[run_id],
                    integrations=sorted({c.integration for c in changes}), steps=steps,
                    changes=changes, notes=notes, restore_of=run_id,
                    config=str(self.config.path))
