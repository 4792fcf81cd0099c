"""Applying a plan: the step DAG per integration, journaled side effects, retries, verify.

Every operation goes: journal ``started`` → read the target → (already as planned: ``noop``;
precondition drifted: ``refused``; else apply) → journal the outcome. Because each attempt
starts with a read, an operation whose outcome is unknown (a timeout, a crash) is checked
before it is retried, and a resumed run never repeats a side effect that already happened.

One exception saves a request per target: the first attempt of a change whose plan was
observed moments ago in this process (before ``fresh_until``) applies straight from that
observation. Any error then sends the operation back to the read-first path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import ERROR, NOOP, OBSERVED, UNSUPPORTED, Change, canonical_json, fingerprint
from adapters.evidence import EVIDENCE_ACTION
from console.engine import evidence
from console.engine.journal import Journal
from console.engine.locks import RunFence
from console.engine.model import OpResult, Plan, RunResult, StepInfo
from console.engine.proof import KeyProof, Proof
from console.engine.rotation import retired_old_key
from console.engine.runtime import Runtime
from console.errors import AdapterError, ConsoleError, LockHeld
from console.vocab import FINAL_OUTCOMES, Outcome, Phase

__all__ = ["Executor", "FINAL_OUTCOMES", "drift_summary", "on_the_way"]


ProgressHook = Callable[[str, OpResult, dict[str, Any]], None]


def on_the_way(before: Any, now: Any, after: Any) -> bool:
    """True when every part of ``now`` is either as planned before or as planned after.

    A change made of several calls (disable three versions) that was interrupted part-way
    leaves such a state; it is progress, not drift, and applying again finishes it.
    """
    if isinstance(before, dict) and isinstance(now, dict) and isinstance(after, dict):
        keys = set(before) | set(now) | set(after)
        return all(on_the_way(before.get(k), now.get(k), after.get(k)) for k in keys)
    return bool(now == before or now == after)


def drift_summary(before: dict[str, Any], now: dict[str, Any]) -> str:
    """Name every field that differs between the planned and the current state."""
    keys = sorted(set(before) | set(now))
    diffs = [f"{k}: {canonical_json(before.get(k))} -> {canonical_json(now.get(k))}"
             for k in keys if before.get(k) != now.get(k)]
    return "; ".join(diffs) or "state changed"


class Executor:
    """Applies plans and verifies them.

    Args:
        rt: Adapters, pool and limits.
        journal: Where events go (before and after every side effect).
        cancel: Set it to stop starting new operations; in-flight ones finish and are recorded.
        progress: Called as ``progress(phase, result, extra)`` on every state change (TUI).
        proof: Proves keys dead at their provider after verify.
        fresh_until: Per op id, the ``time.monotonic()`` deadline before which the plan's
            own observation of the target stands in for the read before the change's first
            attempt (a plan observed moments ago in this process); op ids not in it are
            always read first.
        fence: The run's locks, checked before every side effect (in the worker thread,
            right before the adapter's call): when they were taken over the change is refused,
            recorded, and the run stops with LockHeld (exit 3). None: no locks (a rehearsal).
    """

    def __init__(self, rt: Runtime, journal: Journal, cancel: asyncio.Event | None = None,
                 progress: ProgressHook | None = None, proof: KeyProof | None = None, *,
                 fresh_until: Mapping[str, float] | None = None,
                 fence: RunFence | None = None) -> None:
        self.rt = rt
        self.fence = fence
        self.lost: LockHeld | None = None
        """Set when the fence refused: no operation starts after it."""
        self.fresh_until = dict(fresh_until or {})
        self.journal = journal
        self.cancel = cancel or asyncio.Event()
        self.progress = progress
        self.proof = proof
        self.proofs: dict[str, Proof] = {}
        self.started: set[str] = set()
        self.plan: Plan | None = None
        """The plan being applied (the evidence manifest quotes its cause)."""

    def _emit(self, phase: str, res: OpResult, **extra: Any) -> None:
        if self.progress is not None:
            self.progress(phase, res, extra)

    async def _record(self, change: Change, phase: str, outcome: str, *,
                      durable: bool = True, **detail: Any) -> None:
        """Journal an event of ``change``; ``durable=False`` queues it without waiting until it
        is durable (outcomes and verdicts: a resume re-reads the target, so losing one in a
        crash repeats nothing; the next durable write commits it, a failure surfaces there)."""
        fields = dict(integration=change.integration, step=change.step, op_id=change.op_id,
                      phase=phase, action=change.action, target=change.target,
                      outcome=outcome, detail=detail)
        if durable:
            await self.journal.record(**fields)
        else:
            self.journal.post(**fields)

    # -- one operation ------------------------------------------------------------------
    async def _attempt(self, change: Change, res: OpResult, step: StepInfo | None,
                       maybe_sent: list[bool]) -> bool:
        """One attempt; True when the operation reached a final outcome.

        ``maybe_sent[0]`` is True once an apply may have reached the target (an earlier
        attempt timed out, or a crashed run had started this operation): finding the target
        as planned then means *our* change landed, and it is recorded as applied so that
        ``restore`` undoes it.
        """
        backend, timeout = change.backend, self.rt.timeout(change.backend,
                                                          step.timeout if step else None)
        if change.action == EVIDENCE_ACTION:  # copies into the bundle: no read, no apply
            await self._fenced(change)
            res.undo = await evidence.preserve_op(self, change, timeout)
            res.outcome = Outcome.APPLIED
            return True
        if res.attempts == 1 and not maybe_sent[0] and change.status == OBSERVED \
                and change.precondition \
                and time.monotonic() < self.fresh_until.get(change.op_id, 0.0):
            # observed moments ago by the plan: apply from that observation, no second read
            try:
                res.undo = await self._apply_call(change, change.before, timeout)
            except AdapterError as exc:
                # a surprise: an ambiguous failure may have landed (retries read first); a
                # refusal did not land, and a read tells whether the target had moved
                maybe_sent[0] = exc.retryable
                if exc.retryable or not await self._judged_after_refusal(change, res, timeout):
                    raise
            else:
                res.outcome = Outcome.APPLIED
            return True
        state = await self.rt.call(backend, lambda a: a.read(change), timeout)
        now = fingerprint(state)
        if now == fingerprint(change.after):
            if maybe_sent[0]:
                res.outcome = Outcome.APPLIED
                res.message = "applied: confirmed by reading back before retrying"
            else:
                res.outcome, res.message = Outcome.NOOP, "already as planned"
            return True
        if change.precondition and now != change.precondition and \
                not on_the_way(change.before, state, change.after):
            res.outcome = Outcome.REFUSED
            drift = drift_summary(change.before, state)
            res.message = f"precondition drifted since planning: {drift}"
            return True
        maybe_sent[0] = True
        res.undo = await self._apply_call(change, state, timeout)
        res.outcome = Outcome.APPLIED
        return True

    async def _judged_after_refusal(self, change: Change, res: OpResult,
                                    timeout: float) -> bool:
        """After the provider refused a change applied from the plan's observation: read the
        target; True (and ``res`` set) when it is already as planned (noop: someone else did
        it) or drifted (refused); False when it is as observed and the refusal stands."""
        try:
            state = await self.rt.call(change.backend, lambda a: a.read(change), timeout)
        except AdapterError:
            return False
        now = fingerprint(state)
        if now == fingerprint(change.after):
            res.outcome, res.message = Outcome.NOOP, "already as planned"
            return True
        if now != change.precondition and not on_the_way(change.before, state, change.after):
            res.outcome = Outcome.REFUSED
            drift = drift_summary(change.before, state)
            res.message = f"precondition drifted since planning: {drift}"
            return True
        return False

    async def _apply_call(self, change: Change, state: dict[str, Any],
                          timeout: float) -> dict[str, Any]:
        """The adapter's apply of ``change`` from ``state``; returns its undo data. Every
        adapter side effect (apply, undo, issue, write, retire) goes through here, and the
        fence is checked in the same worker call, just before it."""
        from adapters.notify_common import call_with_chain_head  # (httpx: import lazily)

        head = getattr(self.journal, "head", None)  # notifications quote the chain head
        fence = self.fence
        refused: list[ConsoleError] = []

        def fenced(a: Any) -> Any:
            if fence is not None:
                try:
                    fence.check_sync()
                except ConsoleError as exc:  # not the adapter's error: no retry
                    refused.append(exc)
                    return None
            return call_with_chain_head(head, lambda: a.apply(change, state))

        undo = await self.rt.call(change.backend, fenced, timeout)
        if refused:
            await self._refuse(change, refused[0])
        return dict(undo or {})

    async def _fenced(self, change: Change) -> None:
        """The fence's check from the event loop (before a side effect that is not an
        adapter apply: preserving evidence)."""
        if self.fence is not None:
            try:
                await self.fence.check()
            except ConsoleError as exc:
                await self._refuse(change, exc)

    async def _refuse(self, change: Change, exc: ConsoleError) -> None:
        """The fence refused ``change``: record it and stop the run (re-raises ``exc``)."""
        if isinstance(exc, LockHeld):
            self.lost = exc
            await self.journal.record(
                integration=change.integration, phase=Phase.RUN, action="lock",
                target=change.target, outcome=Outcome.REFUSED,
                detail={"op_id": change.op_id, "change": change.action,
                        "message": f"not applied: {exc.msg}"})
        raise exc

    async def run_op(self, change: Change, step: StepInfo | None,
                     started_before: bool = False) -> OpResult:
        """Apply one change with retries, journaled before and after.

        ``started_before``: a previous (crashed or cancelled) run journaled its start.
        """
        res = OpResult(change.op_id)
        maybe_sent = [started_before]
        if change.status == UNSUPPORTED:
            res.outcome, res.message = Outcome.UNSUPPORTED, change.note
        elif change.status == ERROR:
            res.outcome, res.message = Outcome.FAILED, f"could not be planned: {change.error}"
        elif self.cancel.is_set():
            res.outcome, res.message = Outcome.SKIPPED, "cancelled before it started"
        if res.outcome != Outcome.PENDING:
            await self._record(change, Phase.APPLY, res.outcome, message=res.message)
            self._emit(Phase.APPLY, res)
            return res
        if change.status == NOOP:
            res.outcome, res.message = Outcome.NOOP, change.note or "already as planned"
            await self._record(change, Phase.APPLY, Outcome.NOOP, message=res.message)
            self._emit(Phase.APPLY, res)
            return res
        if self.lost is not None:  # the run lost its locks: start nothing more
            raise self.lost
        started = time.monotonic()
        await self._record(change, Phase.APPLY, Outcome.STARTED)
        self._emit(Phase.APPLY, res, running=True)
        while True:
            res.attempts += 1
            try:
                if await self._attempt(change, res, step, maybe_sent):
                    break
            except AdapterError as exc:
                delay = self.rt.retry.delay(res.attempts, exc)
                if delay is None or self.cancel.is_set():
                    res.outcome, res.message = Outcome.FAILED, str(exc.msg)
                    break
                res.message = f"{exc.msg}; retry {res.attempts + 1} in {delay:.1f}s"
                await self._record(change, Phase.APPLY, Outcome.RETRYING,
                                   attempt=res.attempts,
                                   wait=round(delay, 3), message=str(exc.msg))
                self._emit(Phase.APPLY, res, retrying=True, wait=delay)
                await asyncio.sleep(delay)
        res.duration = time.monotonic() - started
        await self._record(change, Phase.APPLY, res.outcome, durable=False,
                           message=res.message,
                           attempts=res.attempts, undo=res.undo,
                           duration=round(res.duration, 4))
        self._emit(Phase.APPLY, res)
        return res

    # -- the DAG ------------------------------------------------------------------------
    async def _run_step(self, plan: Plan, ops: list[Change], step: StepInfo,
                        tasks: dict[str, asyncio.Task[bool]],
                        results: dict[str, OpResult], done: set[str]) -> bool:
        blocked = []
        for need in step.needs:
            ok = await tasks[need]
            need_step = plan.step(need)
            if not ok and (need_step is None or need_step.on_error == "stop"):
                blocked.append(need)
        pending = [c for c in ops if c.op_id not in done]
        if blocked:
            for change in pending:
                res = OpResult(change.op_id, Outcome.SKIPPED,
                               f"not started: step {', '.join(blocked)} failed")
                await self._record(change, Phase.APPLY, Outcome.SKIPPED, message=res.message)
                results[change.op_id] = res
                self._emit(Phase.APPLY, res)
            return False
        outcomes = await asyncio.gather(*(self.run_op(c, step, c.op_id in self.started)
                                          for c in pending))
        for res in outcomes:
            results[res.op_id] = res
        return all(results[c.op_id].outcome in (Outcome.APPLIED, Outcome.NOOP) for c in ops)

    async def apply(self, plan: Plan, previous: dict[str, OpResult] | None = None) -> RunResult:
        """Apply every change of ``plan`` not already final in ``previous``, then verify.

        Raises:
            AuditError: The journal could not be written; nothing further was changed.
        """
        started = time.monotonic()
        self.plan = plan
        results: dict[str, OpResult] = dict(previous or {})
        done = {op for op, r in results.items() if r.outcome in FINAL_OUTCOMES}
        self.started = {op for op, r in results.items() if r.outcome == Outcome.PENDING}
        by_step: dict[tuple[str, str], list[Change]] = {}
        for c in plan.changes:
            by_step.setdefault((c.integration, c.step), []).append(c)
        flows = []
        for integ in plan.integrations:
            mine = [c for step in plan.steps for c in by_step.get((integ, step.id), [])]
            flows.append(self._integration(plan, integ, by_step, mine, results, done))
        gathered = await asyncio.gather(*flows, return_exceptions=True)
        for item in gathered:
            if isinstance(item, BaseException):
                raise item
        if self.proof is not None:
            self.proof.forget()
        return RunResult(plan.run_id, plan, results, cancelled=self.cancel.is_set(),
                         elapsed=time.monotonic() - started, proofs=dict(self.proofs))

    async def _integration(self, plan: Plan, integ: str,
                           by_step: dict[tuple[str, str], list[Change]], changes: list[Change],
                           results: dict[str, OpResult], done: set[str]) -> None:
        """One integration: capture its key, run its step DAG, verify, prove the key dead."""
        if self.proof is not None:
            await self.proof.capture(integ, [c for c in changes if c.op_id not in done])
        tasks: dict[str, asyncio.Task[bool]] = {}
        for step in plan.steps:  # topological order: needs are created first
            tasks[step.id] = asyncio.ensure_future(self._run_step(
                plan, by_step.get((integ, step.id), []), step, tasks, results, done))
        outcome = await asyncio.gather(*tasks.values(), return_exceptions=True)
        for item in outcome:
            if isinstance(item, BaseException):
                raise item
        await self.verify(changes, results)
        if self.proof is not None and self.proof.wants(integ) \
                and retired_old_key(changes, results):  # rotate: only once the old key died
            await self._prove(integ)

    async def _prove(self, integ: str) -> None:
        assert self.proof is not None

        def update(p: Proof) -> None:
            self.proofs[integ] = p
            self._emit("proof", OpResult(f"{integ}/proof", Outcome.PENDING, p.detail,
                                         verdict=p.state))

        proof = await self.proof.prove(integ, update)
        self.proofs[integ] = proof
        await self.journal.record(
            integration=integ, op_id=f"{integ}/proof", phase=Phase.VERIFY,
            action="credential.proof", target=proof.detail.split(":")[0], outcome=proof.state,
            detail={"message": proof.detail, "checks": proof.checks,
                    "fingerprint": proof.fingerprint})
        self._emit("proof", OpResult(f"{integ}/proof", "done", proof.detail,
                                     verdict=proof.state,
                                     verified=proof.state == "revoked"))

    async def verify(self, changes: list[Change], results: dict[str, OpResult]) -> None:
        """Verify every applied or already-as-planned change, read-only."""
        async def one(change: Change) -> None:
            res = results[change.op_id]
            try:
                verdict = (await evidence.verify_op(self.rt, change, res.undo)
                           if change.action == EVIDENCE_ACTION else
                           await self.rt.read_call(change.backend, lambda a: a.verify(change)))
                res.verified, res.verdict = verdict.ok, verdict.state
                detail = verdict.detail
            except (AdapterError, ConsoleError) as exc:
                res.verified, res.verdict, detail = False, "unknown", f"could not verify: {exc.msg}"
            await self._record(change, Phase.VERIFY,
                               Outcome.OK if res.verified else Outcome.FAILED, durable=False,
                               state=res.verdict, message=detail)
            self._emit(Phase.VERIFY, res, detail=detail)

        targets = [c for c in changes
                   if c.op_id in results
                   and results[c.op_id].outcome in (Outcome.APPLIED, Outcome.NOOP)
                   and c.status != UNSUPPORTED]
        await asyncio.gather(*(one(c) for c in targets))
