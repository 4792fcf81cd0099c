"""Playing a scenario: the clock, the injects and their faults, the scripted response, the end.

One :class:`Exercise` serves the headless ``killswitch exercise run --auto`` and the console
(both on one asyncio loop)::

    ex = Exercise(config, scenario, speed=4)
    await ex.start()                      # refuses a non-sandbox config; records exercise.start
    await asyncio.gather(ex.run_injects(), ex.play_response())   # --auto; the console runs
                                          # run_injects() only and the players act
    card = await ex.finish()              # end checks, objectives, exercise.end, faults off

Time: T+0 is :meth:`Exercise.start`. Scenario times are divided by ``speed`` to get real
waiting times (``asyncio.sleep`` on the remaining time: this is the exercise's scheduler).
What is measured comes from the trail (:func:`console.exercise.score.score`), in real
seconds; deadlines are compared in scenario seconds (real seconds * speed).

Trail: every event of an exercise has mode ``exercise`` and incident = the exercise id
(``EX-<scenario>-<UTC yyyymmddThhmmss>``). The exercise's own events have run_id = the
exercise id, phase ``exercise``, ``"scenario": name`` in their detail, and action
``exercise.start`` (started), ``inject`` (shown), ``fault`` (applied / failed),
``fault.clear`` (applied / failed), :data:`console.exercise.score.CHECK_COPIES` (ok /
incomplete: the end-of-exercise credentials scan of a ``no-live-copy`` objective's
integration, ``detail`` ``{"integration", "live_copies": N, "copies": [targets],
"complete", "problems"}``), ``response`` (refused / failed: a scripted step that never
became a run), ``objective`` (met / missed) and ``exercise.end`` (finished).
Runs of the scripted response are normal runs of a
``Session(mode="exercise", incident=<exercise id>)``; their plans are recorded with mode
``exercise`` too.

Scripted response: steps run one after the other, each at its time (or when the step
before it is done, if later). A step is planned and applied with the exercise session. A
step refused because another commander holds a lock (:class:`~console.errors.LockHeld`) is
recorded (phase ``run``, outcome ``refused``, under the refused plan's run id) and retried
once, re-planned from scratch, as soon as the lock is released or its lease has run out
(at most :data:`LOCK_WAIT_MAX` real seconds later): what a drilled team does once the
other commander hands over. Any other refusal (irreversible changes without consent, blast
radius) is recorded and not retried: it would be refused again. A step that fails (a
backend down while planning, say) is recorded as failed. No step ever stops the exercise
or raises.

Faults go through :mod:`console.sandbox.faults`; a fault that cannot be applied is recorded
as ``failed`` with the message and the exercise goes on. Every fault and lock the exercise
set is cleared by :meth:`Exercise.finish` (also when the exercise ends early).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError, LockHeld, Refused, UsageError
from console.vocab import Mode, Outcome

if TYPE_CHECKING:
    from console.config import Config
    from console.engine.runtime import Runtime
    from console.engine.service import Session
    from console.exercise.scenario import Fault, Inject, ResponseStep, Scenario
    from console.exercise.score import Scorecard

__all__ = ["EXERCISE_PHASE", "LOCK_WAIT_MAX", "Exercise", "EventHook", "exercise_id",
           "fault_detail"]

EXERCISE_PHASE = "exercise"
"""The phase of the exercise's own events."""

LOCK_WAIT_MAX = 120.0
"""Most real seconds a refused step waits for a held lock before its one retry."""

_POLL = 0.2
"""Real seconds between looks at the lock table while a refused step waits."""

EventHook = Callable[[str, dict[str, Any]], None]
"""``on_event(kind, payload)``: kind is the event's action (``exercise.start``, ``inject``,
``fault``, ``fault.clear``, ``response``, ``scan``, ``objective``, ``exercise.end``)."""


def exercise_id(scenario_name: str, now: datetime | None = None) -> str:
    """``EX-<scenario>-<UTC yyyymmddThhmmss>``."""
    return f"EX-{scenario_name}-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S')}"


def fault_detail(fault: Fault) -> dict[str, Any]:
    """A fault as recorded in the trail and shown to the facilitator (empty fields left out)."""
    out: dict[str, Any] = {"kind": fault.kind}
    for name in ("backend", "integration", "holder", "path"):
        value = getattr(fault, name)
        if value:
            out[name] = value
    if fault.settings:
        out["settings"] = dict(fault.settings)
    if fault.duration is not None:
        out["for_s"] = fault.duration
    return out


class Exercise:
    """One play of a scenario against the sandbox.

    Args:
        config: The loaded config; every backend must be a sandbox backend.
        scenario: The scenario (:func:`console.exercise.scenario.load_scenario`).
        speed: Scenario seconds per real second (> 0): 4 plays a 10-minute scenario in 2.5.
        operator: Who plays (default: :func:`console.engine.service.default_operator`).
        on_event: Called with ``(kind, payload)`` for everything the exercise does (the
            console shows injects as notices). An exception it raises is ignored.
        runtime: A runtime to share (the console's); None: the session builds its own.
    """

    def __init__(self, config: Config, scenario: Scenario, *, speed: float = 1.0,
                 operator: str | None = None, on_event: EventHook | None = None,
                 runtime: Runtime | None = None) -> None:
        from console.engine.service import default_operator

        if not speed > 0:
            raise UsageError(f"speed must be more than 0, not {speed}",
                             hint="e.g. --speed 4 plays four scenario seconds per second")
        self.config = config
        self.scenario = scenario
        self.speed = float(speed)
        self.operator = operator or default_operator(config)
        self.on_event = on_event
        self.id = exercise_id(scenario.name)
        """``EX-<scenario>-<UTC yyyymmddThhmmss>``: the incident of every event."""
        self._runtime = runtime
        self._session: Session | None = None
        self._t0: float | None = None
        self._fired: list[tuple[Inject, float]] = []
        self._pending: list[Inject] = list(scenario.injects)
        self._faulted: set[str] = set()
        """Backends this exercise put a fault on."""
        self._locked: set[str] = set()
        """Integrations whose lock this exercise holds for another commander."""
        self._set: dict[tuple[str, str], Fault] = {}
        """(kind, backend or integration) -> the fault last set there."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fp_key = secrets.token_bytes(32)
        """This exercise's fingerprint key (start and end scans compare under it)."""
        self._key_fps: dict[str, set[str]] = {}
        """no-live-copy integration -> fingerprints of its key, taken at start."""
        self._fp_problems: dict[str, list[str]] = {}
        self.started = False
        self.finished = False
        self._stop = asyncio.Event()
        self.response_runs: list[str] = []
        """Run ids of the scripted response, in order."""
        self.scorecard: Scorecard | None = None

    # -- clock ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Scenario seconds since T+0 (real seconds * speed); 0 before :meth:`start`."""
        if self._t0 is None:
            return 0.0
        return (time.monotonic() - self._t0) * self.speed

    def upcoming(self) -> list[Inject]:
        """Injects not fired yet, in time order."""
        return list(self._pending)

    def fired(self) -> list[tuple[Inject, float]]:
        """Injects fired so far with the scenario time at which each was."""
        return list(self._fired)

    async def _until(self, at: float) -> None:
        """Sleep until scenario time ``at`` (the scheduler, not a test wait), or until
        :meth:`finish` is called."""
        remaining = (at - self.elapsed()) / self.speed
        if remaining > 0 and not self.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), remaining)

    # -- plumbing -------------------------------------------------------------------------
    def session(self) -> Session:
        """The exercise's session: mode ``exercise``, incident = the exercise id."""
        if self._session is None:
            from console.engine.service import Session

            self._session = Session(self.config, mode=Mode.EXERCISE, incident=self.id,
                                    operator=self.operator, runtime=self._runtime,
                                    cause="exercise")
        return self._session

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        with contextlib.suppress(Exception):  # the console's notice must not stop the play
            self.on_event(kind, payload)

    def _record(self, action: str, outcome: str, detail: dict[str, Any], *,
                target: str | None = None, integration: str | None = None,
                emit: bool = True) -> dict[str, Any]:
        """Append one of the exercise's own events (durable before this returns)."""
        full = {"scenario": self.scenario.name, **detail}
        event: dict[str, Any] = {
            "run_id": self.id, "incident": self.id, "operator": self.operator,
            "mode": Mode.EXERCISE, "phase": EXERCISE_PHASE, "action": action,
            "outcome": outcome, "target": target, "integration": integration, "detail": full}
        stored = self.session().audit.append_many([event])
        if emit:
            self._emit(action, {"outcome": outcome, "target": target,
                                "integration": integration, "elapsed": self.elapsed(), **full})
        return stored[0] if stored else event

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- start ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check the config and the scenario, then start the clock (T+0).

        Raises:
            UsageError: The config has a backend not marked ``sandbox = true`` (exit 2;
                nothing was recorded or touched), or the exercise already started.
            ScenarioError: The scenario does not fit the config (exit 2; nothing recorded).
        """
        from console.exercise.scenario import check_against
        from console.exercise.score import start_detail

        if self.started:
            raise UsageError(f"exercise {self.id} already started")
        real = list(self.config.real_backends)
        if real:
            raise UsageError(
                "an exercise plays only on sandbox backends, and these are not: "
                f"{', '.join(real)}; nothing was recorded or changed", where=str(self.config.path),
                hint="mark each sandbox backend `sandbox = true`, or use a sandbox config "
                     "(config.example.toml)")
        check_against(self.scenario, self.config)
        await self._fingerprint_keys()
        base, n = self.id, 1
        while self.session().audit.events(incident=self.id):  # same scenario, same second
            n += 1
            self.id = f"{base}-{n}"
            self.session().incident = self.id
        self.started = True
        self._record("exercise.start", Outcome.STARTED, {
            **start_detail(self.scenario, self.config, speed=self.speed),
            "injects": len(self.scenario.injects),
            "objectives": [o.id for o in self.scenario.objectives],
            "scripted_response": len(self.scenario.response),
            "path": str(self.scenario.path)})
        self._t0 = time.monotonic()  # T+0: the start event is in the trail

    async def _fingerprint_keys(self) -> None:
        """Fingerprint the key of every no-live-copy integration while its copies are live
        (after a kill no listed copy can be read to fingerprint it): the values of its
        listed store copies and the sandbox's seeded provider key, keyed with this
        exercise's own fingerprint key (the process default changes when the trail opens).
        Only fingerprints are kept."""
        from console.engine.proof import revealer
        from console.engine.runtime import Runtime
        from console.sandbox.seedkeys import integration_key_value
        from console.scrub import fingerprint_secret

        wanted = sorted({o.integration for o in self.scenario.objectives
                         if o.kind == "no-live-copy" and o.integration})
        if not wanted:
            return
        rt = Runtime(self.config)
        try:
            for iid in wanted:
                integ = self.config.integration(iid)
                if integ is None:
                    continue
                fps: set[str] = set()
                problems: list[str] = []
                value = integration_key_value(self.config, iid)
                if value:
                    fps.add(fingerprint_secret(value, self._fp_key))
                for ref in integ.credentials:
                    fields = ref.fields()
                    try:
                        if not rt.adapter(ref.backend).CAN_REVEAL:
                            continue
                        found = await rt.read_call(ref.backend, revealer(fields))
                    except ConsoleError as exc:
                        problems.append(f"could not read {_ref_target(fields)}: {exc.msg}")
                        continue
                    if found:
                        fps.add(fingerprint_secret(found, self._fp_key))
                self._key_fps[iid] = fps
                self._fp_problems[iid] = problems
        finally:
            rt.close()

    # -- injects --------------------------------------------------------------------------
    async def run_injects(self) -> None:
        """Fire every inject at its time: record it, apply its fault, tell ``on_event``.

        Returns after the last inject fired; the clears of faults with a ``for`` run on
        in the background (:meth:`finish` clears whatever is left).
        """
        if not self.started:
            raise UsageError("start the exercise before its injects")
        while self._pending and not self.finished:
            inject = self._pending[0]
            await self._until(inject.at)
            if self.finished:
                return
            self._pending.pop(0)
            await self.fire(inject)

    async def fire(self, inject: Inject) -> None:
        """Fire one inject now (the facilitator may also fire one early)."""
        from console.exercise.scenario import format_clock

        if inject in self._pending:
            self._pending.remove(inject)
        now = self.elapsed()
        self._fired.append((inject, now))
        fault = fault_detail(inject.fault) if inject.fault is not None else None
        self._record("inject", "shown", {
            "at": inject.at, "clock": format_clock(inject.at), "message": inject.message,
            "fault": fault, "fired_at": round(now, 3)},
            target=(inject.fault.backend or inject.fault.integration) if inject.fault else None)
        if inject.fault is not None:
            await self._apply_fault(inject.fault)

    async def _apply_fault(self, fault: Fault) -> None:
        from console.sandbox import faults as sf

        detail = fault_detail(fault)
        target = fault.backend or fault.integration
        real_for = fault.duration / self.speed if fault.duration is not None else None
        try:
            if fault.kind == "lock":
                hold = real_for if real_for is not None else 24 * 3600.0
                message = await asyncio.to_thread(sf.hold_lock, self.config, fault.integration,
                                                  fault.holder or "another commander", hold)
                self._locked.add(fault.integration)
                self._set[("lock", fault.integration)] = fault
            elif fault.kind == "unlisted-copy":
                message = await asyncio.to_thread(sf.plant_copy, self.config,
                                                  fault.integration, fault.backend, fault.path)
            elif fault.settings.get("clear"):
                message = await asyncio.to_thread(sf.clear_faults, self.config, fault.backend)
                self._faulted.discard(fault.backend)
            else:
                settings = {k: v for k, v in fault.settings.items() if k != "clear"}
                message = await asyncio.to_thread(sf.apply_fault, self.config, fault.backend,
                                                  settings)
                self._faulted.add(fault.backend)
                self._set[("backend", fault.backend)] = fault
        except Exception as exc:  # noqa: BLE001 - a fault that fails never stops the play
            self._record("fault", Outcome.FAILED,
                         {"fault": detail, "message": getattr(exc, "msg", None) or str(exc)
                          or type(exc).__name__}, target=target,
                         integration=fault.integration or None)
            return
        self._record("fault", Outcome.APPLIED, {"fault": detail, "message": str(message or "")},
                     target=target, integration=fault.integration or None)
        if real_for is not None and fault.kind in ("lock", "backend"):
            self._spawn(self._clear_later(fault, real_for))

    async def _clear_later(self, fault: Fault, seconds: float) -> None:
        await asyncio.sleep(seconds)
        key = ("lock", fault.integration) if fault.kind == "lock" else ("backend", fault.backend)
        if not self.finished and self._set.get(key) is fault:  # not replaced by a later one
            await self._clear(fault, why="for")

    async def _clear(self, fault: Fault, why: str) -> None:
        """Clear a backend's faults or release a lock, recording it (``fault.clear``)."""
        from console.sandbox import faults as sf

        lock = fault.kind == "lock"
        name = fault.integration if lock else fault.backend
        if name not in (self._locked if lock else self._faulted):
            return  # cleared already (a later `clear = true` inject, or the end)
        try:
            if lock:
                message = await asyncio.to_thread(sf.release_lock, self.config, name)
                self._locked.discard(name)
            else:
                message = await asyncio.to_thread(sf.clear_faults, self.config, name)
                self._faulted.discard(name)
        except Exception as exc:  # noqa: BLE001 - recorded; the play goes on
            self._record("fault.clear", Outcome.FAILED,
                         {"fault": fault_detail(fault), "kind": fault.kind, "why": why,
                          "message": getattr(exc, "msg", None) or str(exc)},
                         target=name, integration=fault.integration or None)
            return
        self._record("fault.clear", Outcome.APPLIED,
                     {"fault": fault_detail(fault), "kind": fault.kind, "why": why,
                      "message": str(message or "")},
                     target=name, integration=fault.integration or None)

    # -- the scripted response ------------------------------------------------------------
    async def play_response(self) -> None:
        """Play the scenario's scripted response (see the module docstring). Never raises
        for a step: refusals and failures are recorded and the next step plays."""
        if not self.started:
            raise UsageError("start the exercise before its response")
        for n, step in enumerate(self.scenario.response, 1):
            await self._until(step.at)
            if self.finished:
                return
            await self._play_step(n, step)

    async def _play_step(self, n: int, step: ResponseStep) -> None:
        run_id, outcome, message = await self._attempt(n, step)
        if outcome == "lock-held":
            await self._wait_for_locks(step)
            if self.finished:
                return
            run_id, outcome, message = await self._attempt(n, step, retry=True)
        self._emit("response", {"step": n, "runbook": step.runbook,
                                "selectors": list(step.selectors), "run_id": run_id,
                                "outcome": outcome, "message": message,
                                "elapsed": self.elapsed()})

    async def _attempt(self, n: int, step: ResponseStep,
                       retry: bool = False) -> tuple[str, str, str]:
        """Plan and apply one step; ``(run id, outcome, message)``, outcome ``finished``,
        ``failed``, ``lock-held`` or ``refused``."""
        from console.engine.model import new_run_id

        session = self.session()
        session.cancel_requested = False
        self._emit("response", {"step": n, "runbook": step.runbook,
                                "selectors": list(step.selectors), "outcome": "started",
                                "retry": retry, "elapsed": self.elapsed()})
        plan = None
        try:
            plan = await session.plan(step.runbook, list(step.selectors),
                                      record_mode=Mode.EXERCISE,
                                      include_unlisted=step.include_unlisted)
            self.response_runs.append(plan.run_id)
            result = await session.apply(
                plan, reason=step.reason or f"exercise {self.id}: scripted step {n}",
                allow_irreversible=step.allow_irreversible)
        except ConsoleError as exc:
            run_id = plan.run_id if plan is not None else new_run_id()
            refused = isinstance(exc, Refused)
            await self._record_step_error(run_id, step, n, exc, refused=refused, retry=retry)
            if isinstance(exc, LockHeld):
                return run_id, "lock-held", exc.msg
            return run_id, Outcome.REFUSED if refused else Outcome.FAILED, exc.msg
        except Exception as exc:  # noqa: BLE001 - never a traceback out of the play
            run_id = plan.run_id if plan is not None else new_run_id()
            await self._record_step_error(run_id, step, n, exc, refused=False, retry=retry)
            return run_id, Outcome.FAILED, str(exc) or type(exc).__name__
        outcome = Outcome.FINISHED if result.exit_code() == 0 else Outcome.FAILED
        return result.run_id, outcome, f"exit code {result.exit_code()}"

    async def _record_step_error(self, run_id: str, step: ResponseStep, n: int,
                                 exc: BaseException, *, refused: bool, retry: bool) -> None:
        """A step that never ran (refused before the engine recorded a run, or planning
        failed): a ``response`` event of the exercise, ``refused`` or ``failed``."""
        msg = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        where = getattr(exc, "where", "") or None
        self._record("response", Outcome.REFUSED if refused else Outcome.FAILED,
                     {"runbook": step.runbook, "selectors": list(step.selectors),
                      "message": msg, "error": type(exc).__name__, "step": n,
                      "retry": retry, "plan_run_id": run_id},
                     target=where, emit=False)

    async def _wait_for_locks(self, step: ResponseStep) -> None:
        """Wait until no live holder keeps a lock of the step's integrations (released, or
        its lease over), at most :data:`LOCK_WAIT_MAX` real seconds."""
        from console.inventory import select

        try:
            ids = {i.id for i in select(self.config.integrations, list(step.selectors))}
        except ConsoleError:
            return
        table = self.session().locks
        deadline = time.monotonic() + LOCK_WAIT_MAX
        while time.monotonic() < deadline and not self.finished:
            held = [lock for lock in await asyncio.to_thread(table.held)
                    if lock.integration in ids]
            if not held or all(table.holder_gone(lock) for lock in held):
                return
            await asyncio.sleep(_POLL)

    # -- the end --------------------------------------------------------------------------
    async def finish(self) -> Scorecard:
        """End the exercise: stop what is scheduled, clear every fault and lock it set,
        run the end checks, score it from the trail and record the objectives and the end.

        Returns:
            The scorecard (also kept as :attr:`scorecard`).
        """
        from console.exercise.score import objective_records, score

        if not self.started:
            raise UsageError("the exercise has not started")
        if self.finished and self.scorecard is not None:
            return self.scorecard
        self.finished = True
        self._stop.set()
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for (kind, name), fault in sorted(self._set.items()):
            if name in (self._locked if kind == "lock" else self._faulted):
                await self._clear(fault, why="end")
        await self._end_scans()
        events = await asyncio.to_thread(self.session().audit.events, None, self.id)
        card = score(events, self.scenario, self.id)
        base = {"run_id": self.id, "incident": self.id, "operator": self.operator,
                "mode": Mode.EXERCISE}
        records = [{**base, **r} for r in objective_records(card)]
        await asyncio.to_thread(self.session().audit.append_many, records)
        for r in records:
            self._emit("objective", {"outcome": r["outcome"], "target": r["target"],
                                     "integration": r["integration"], **r["detail"]})
        self._record("exercise.end", Outcome.FINISHED, {
            "elapsed_s": round(self.elapsed() / self.speed, 3),
            "scenario_elapsed_s": round(self.elapsed(), 3),
            "all_objectives_met": card.all_objectives_met,
            "response_runs": list(self.response_runs)})
        events = await asyncio.to_thread(self.session().audit.events, None, self.id)
        self.scorecard = score(events, self.scenario, self.id)
        self.session().close()
        return self.scorecard

    async def _end_scans(self) -> None:
        """For each no-live-copy objective: look in every store for the integration's key
        (by the fingerprint taken at start: after a kill no listed copy can be read to
        fingerprint it again) and record what is still readable (:data:`CHECK_COPIES`)."""
        from console.exercise.score import CHECK_COPIES

        for iid in sorted({o.integration for o in self.scenario.objectives
                           if o.kind == "no-live-copy" and o.integration}):
            live, problems = await self._live_copies(iid)
            self._record(CHECK_COPIES, "ok" if not problems else "incomplete",
                         {"integration": iid, "live_copies": len(live), "copies": live,
                          "complete": not problems, "problems": problems},
                         target=iid, integration=iid)

    async def _live_copies(self, iid: str) -> tuple[list[str], list[str]]:
        """Targets in the stores whose value is the integration's key, and what could not be
        looked at."""
        from adapters.base import load_adapter_class
        from console.engine.runtime import Runtime
        from console.scrub import fingerprint_secret

        fps = self._key_fps.get(iid) or set()
        key = self._fp_key
        if not fps:
            return [], [f"could not scan for {iid}'s key: it could not be fingerprinted at "
                        "the start of the exercise"] + self._fp_problems.get(iid, [])
        rt = Runtime(self.config)
        live: list[str] = []
        problems: list[str] = []
        try:
            for name, spec in self.config.backends.items():
                try:
                    if not (load_adapter_class(spec.type).CAN_REVEAL
                            and rt.adapter(name).CAN_REVEAL):
                        continue

                    def run(adapter: Any) -> list[tuple[dict[str, Any], str]]:
                        return [(ref, fingerprint_secret(v, key)) for ref, v in adapter.scan()]

                    found = await rt.read_call(name, run, timeout=120)
                except (ConsoleError, ImportError) as exc:
                    problems.append(f"could not scan {name}: {getattr(exc, 'msg', None) or exc}")
                    continue
                live += [_ref_target(ref) for ref, fp in found if fp in fps]
        finally:
            rt.close()
        return sorted(live), problems


def _ref_target(ref: dict[str, Any]) -> str:
    """``backend:path`` of a stored copy's reference (as ``credentials scan`` names it)."""
    parts = [str(v) for k, v in ref.items()
             if k not in ("backend", "label", "field", "method", "kind") and v]
    field = f"#{ref['field']}" if ref.get("field") else ""
    return f"{ref.get('backend', '')}:{'/'.join(parts)}{field}"
