"""The live view of the other commanders: their runs, their locks, the approvals waiting.

One :class:`LiveView` per console (``app.live_view``) reads the store's change feed
(:class:`console.store.watch.Watcher`) in a task on the event loop, folds every new trail
event into a :class:`TeamRun` per run, keeps the lock table and the pending approvals, and
publishes :class:`LiveChanged` on :attr:`LiveView.changed`. The Team view, the inventory's
lock marks and the banner's approvals count all read it here; nothing in the screens talks
to the store.

Reading the trail is incremental (``events_after(seq, limit)``, pages of :data:`PAGE`), in a
thread, one read at a time: announcements that arrive during a read are coalesced into the
next one. When the store goes away the last state stays on screen and :attr:`LiveView.state`
says ``reconnecting`` (with why) until it answers again.

A run is *this console's own* when its operator and host are this console's (the name on the
banner, on this host): those rows are marked ``you``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual.signal import Signal

from console.identity import host_name
from console.vocab import FINAL_OUTCOMES, Mode, Outcome, Phase

if TYPE_CHECKING:
    from console.store.watch import Change
    from console.tui.app import KillswitchApp

__all__ = ["PAGE", "LiveChanged", "LiveView", "TeamRun", "fold", "lock_text"]

PAGE = 2000
"""Events read per call while catching up."""
WINDOW = 20000
"""At start, at most this many of the newest events are read (older runs are not shown)."""


def _epoch(ts: str) -> float:
    """Unix time of a trail timestamp (``2025-01-01T00:00:00.000Z``); 0 when unreadable."""
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0


@dataclass
class TeamRun:
    """One run as the Team view shows it, folded from its trail events."""

    run_id: str
    operator: str = ""
    host: str = ""
    mode: str = ""
    """``live``, ``exercise``, ``dry-run``, ``rehearsal``; ``plan`` while only planned."""
    runbook: str = ""
    incident: str = ""
    integrations: list[str] = field(default_factory=list)
    total: int = 0
    """Operations planned (0: unknown, e.g. the run began before the events read)."""
    done: set[str] = field(default_factory=set)
    """Operations that reached a final outcome (applied, noop, failed, refused, unsupported)."""
    failed: set[str] = field(default_factory=set)
    """Operations that failed or were refused."""
    outcome: str = ""
    """The newest run-level outcome: ``planned``, ``started``, ``resumed``, ``finished``,
    ``cancelled``, ``refused``."""
    exit_code: int | None = None
    restore_of: str = ""
    first_ts: str = ""
    last_ts: str = ""

    @property
    def who(self) -> str:
        """``operator@host``."""
        return f"{self.operator or '?'}@{self.host or '?'}"

    @property
    def progress(self) -> str:
        """``3/6`` operations done (``3/?`` when the plan is unknown, ``-`` before any)."""
        if not self.total and not self.done:
            return "-"
        return f"{len(self.done)}/{self.total or '?'}"

    @property
    def running(self) -> bool:
        """Started (or resumed) and not finished, cancelled or refused."""
        return self.outcome in (Outcome.STARTED, Outcome.RESUMED)

    def status(self, locked: bool = False, lease: float = 60.0,
               now: float | None = None) -> str:
        """The run's state in a word or two.

        A started run whose last event is older than the lease and that holds no lock is
        ``interrupted`` (its console is gone); ``finished, 1 failed`` / ``finished (exit
        4)`` say how it ended.
        """
        if self.running:
            quiet = (now if now is not None else time.time()) - _epoch(self.last_ts)
            if not locked and quiet > lease:
                return "interrupted"
            return "resumed" if self.outcome == Outcome.RESUMED else "running"
        if self.outcome in (Outcome.FINISHED, Outcome.CANCELLED):
            word = str(self.outcome)
            if self.failed:
                return f"{word}, {len(self.failed)} failed"
            if self.exit_code:
                return f"{word} (exit {self.exit_code})"
            return word
        if self.outcome == Outcome.REFUSED:
            return "refused"
        return "plan only"

    def what(self) -> str:
        """``runbook on a, b``."""
        on = ", ".join(self.integrations) or "-"
        return f"{self.runbook or '?'} on {on}"


def fold(runs: dict[str, TeamRun], event: dict[str, Any]) -> str | None:
    """Add one trail event to its run's summary; the run id it touched (None: no run)."""
    run_id = event.get("run_id")
    if not run_id:
        return None
    run = runs.get(run_id)
    if run is None:
        run = runs[run_id] = TeamRun(run_id)
    ts = str(event.get("ts") or "")
    run.first_ts = run.first_ts or ts
    run.last_ts = ts or run.last_ts
    run.operator = run.operator or str(event.get("operator") or "")
    run.host = run.host or str(event.get("host") or "")
    run.incident = run.incident or str(event.get("incident") or "")
    mode = str(event.get("mode") or "")
    if mode and (mode != Mode.PLAN or not run.mode):
        run.mode = mode
    phase, outcome = event.get("phase"), str(event.get("outcome") or "")
    detail = event.get("detail") or {}
    integ = event.get("integration")
    if integ and integ not in run.integrations:
        run.integrations.append(str(integ))
    if phase in (Phase.PLAN, Phase.RUN) and not integ and not event.get("op_id"):
        if event.get("action") and event.get("action") != "lock":
            run.runbook = str(event["action"])
        if outcome == Outcome.PLANNED:
            run.integrations = [str(i) for i in detail.get("integrations") or []] \
                or run.integrations
            run.total = run.total or int(detail.get("changes") or 0)
        elif outcome in (Outcome.STARTED, Outcome.RESUMED, Outcome.FINISHED,
                         Outcome.CANCELLED, Outcome.REFUSED):
            run.outcome = outcome
            plan = detail.get("plan") if isinstance(detail, dict) else None
            if isinstance(plan, dict):
                run.total = len(plan.get("changes") or []) or run.total
                run.integrations = [str(i) for i in plan.get("integrations") or []] \
                    or run.integrations
                run.restore_of = str(plan.get("restore_of") or "")
            if "exit_code" in detail:
                with contextlib.suppress(TypeError, ValueError):
                    run.exit_code = int(detail["exit_code"])
        elif outcome and not run.outcome:
            run.outcome = Outcome.PLANNED
    elif phase == Phase.APPLY and event.get("op_id") and outcome in FINAL_OUTCOMES:
        op = str(event["op_id"])
        run.done.add(op)
        if outcome in (Outcome.FAILED, Outcome.REFUSED):
            run.failed.add(op)
        else:
            run.failed.discard(op)  # a resumed run applied what had failed
    return str(run_id)


def lock_text(lock: Any) -> str:
    """``alice@laptop-b (run r-…) since 2025-01-01 00:00:00 UTC``."""
    since = str(getattr(lock, "since", "") or "")[:19].replace("T", " ")
    return (f"{getattr(lock, 'operator', '?')}@{getattr(lock, 'host', '?')} "
            f"(run {getattr(lock, 'run_id', '?')}) since {since} UTC")


@dataclass(frozen=True)
class LiveChanged:
    """What :attr:`LiveView.changed` publishes."""

    runs: frozenset[str] = frozenset()
    """Runs whose summary changed."""
    locks: frozenset[str] = frozenset()
    """Integrations whose lock changed (taken, released, taken over)."""
    approvals: bool = False
    """The pending approvals changed."""
    state: bool = False
    """How the store is watched changed (live, polling, reconnecting)."""


class LiveView:
    """Other commanders' runs, locks and pending approvals, kept current from the store.

    Args:
        app: The console (its config, operator and event loop).
    """

    poll = 1.0
    """Seconds between trail head reads when polling (SQLite)."""
    slow = 3.0
    """Seconds between lock and approval reads."""

    def __init__(self, app: KillswitchApp) -> None:
        self.app = app
        self.changed: Signal[LiveChanged] = Signal(app, "live-view-changed")
        self.runs: dict[str, TeamRun] = {}
        """Every run read so far, by id."""
        self.locks: list[Any] = []
        """Every lock held now (this console's included)."""
        self.approvals: list[Any] = []
        """Pending approvals and co-signatures."""
        self.state = "starting"
        """``starting``, ``live``, ``polling``, ``reconnecting`` or ``off``."""
        self.detail = ""
        """Why (or how) the store is watched as it is."""
        self.read_seq = 0
        """The newest trail event folded in."""
        self.read_error = ""
        """Why the last read of the trail failed ("" when it did not)."""
        self._head = 0
        self._reading = False
        self._trail: Any = None
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self._host = host_name()
        self._pid = os.getpid()

    # -- what the screens ask ------------------------------------------------------------
    def is_own(self, run: TeamRun) -> bool:
        """The run is this console's operator's, on this host."""
        return run.operator == self.app.operator and run.host == self._host

    def is_foreign(self, lock: Any) -> bool:
        """The lock is held by another process than this console (another run, host or
        console)."""
        return not (getattr(lock, "host", None) == self._host
                    and getattr(lock, "pid", None) == self._pid)

    def foreign_lock(self, integration: str) -> Any | None:
        """The lock someone else holds on ``integration`` (None: free, or this console's)."""
        return next((lk for lk in self.locks if lk.integration == integration
                     and self.is_foreign(lk)), None)

    def foreign_locks(self) -> list[Any]:
        """Every lock held by someone else."""
        return [lk for lk in self.locks if self.is_foreign(lk)]

    def holds_lock(self, run_id: str) -> bool:
        """A lock is held for run ``run_id``."""
        return any(lk.run_id == run_id for lk in self.locks)

    def awaiting(self, run_id: str) -> Any | None:
        """The pending approval of run ``run_id``: the request whose plan becomes that run,
        or the co-signature a break-glass run still needs (None: none)."""
        return next((a for a in self.approvals
                     if run_id in (getattr(a, "plan_run_id", ""), getattr(a, "run_id", ""))),
                    None)

    def status(self, run: TeamRun) -> str:
        """The run's status word, with its locks, the configured lease and the approvals."""
        lease = float(getattr(self.app.config.settings, "lock_lease", 60.0) or 60.0)
        word = run.status(self.holds_lock(run.run_id), lease)
        waiting = self.awaiting(run.run_id)
        if waiting is None:
            return word
        if getattr(waiting, "kind", "") == "cosign":
            return f"{word}, co-sign pending"
        return "awaiting approval" if word == "plan only" else word

    def ordered(self) -> list[TeamRun]:
        """Running runs first, then the newest first."""
        runs = list(self.runs.values())
        runs.sort(key=lambda r: r.last_ts or r.first_ts, reverse=True)
        runs.sort(key=lambda r: not r.running)
        return runs

    def state_text(self) -> str:
        """``live view: LISTEN`` / ``polling 1 s`` / ``reconnecting (why)``."""
        if self.state == "live":
            text = "live view: LISTEN"
        elif self.state == "polling":
            text = f"live view: polling {self.poll:g} s"
        elif self.state == "reconnecting":
            text = "live view: reconnecting" + (f" ({self.detail})" if self.detail else "")
        elif self.state == "off":
            text = "live view: off" + (f" ({self.detail})" if self.detail else "")
        else:
            text = "live view: starting"
        if self.read_error and self.state != "reconnecting":
            text += f"; cannot read the trail: {self.read_error}"
        return text

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching (once); a task on the app's event loop, never a worker (it runs
        for the whole session and must not hold up ``workers.wait_for_complete``)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(),
                                                                name="live-view")

    def stop(self) -> None:
        """Stop watching and close what is open."""
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
        self._task = self._reader = None
        if self._watcher is not None:
            self._watcher.close()
        trail, self._trail = self._trail, None
        if trail is not None:
            with contextlib.suppress(Exception):
                trail.close()

    async def _watch(self) -> None:
        from console.store.watch import Watcher

        self._watcher = Watcher(self.app.config, poll=self.poll, slow=self.slow)
        while True:
            try:
                await self._watcher.run(self._on_change)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the view says so and watches on
                self.state, self.detail = "reconnecting", f"{type(exc).__name__}: {exc}"
                self._publish(LiveChanged(state=True))
                await asyncio.sleep(self.slow)

    def _on_change(self, change: Change) -> None:
        if change.kind == "trail":
            self._head = change.seq
            if change.seq < self.read_seq:  # a new trail (the old one was replaced)
                self.runs, self.read_seq = {}, 0
                self._publish(LiveChanged(runs=frozenset(), state=True))
            self._read_soon()
        elif change.kind == "locks":
            from console.store.watch import lock_key

            before = {lock_key(lk): lk for lk in self.locks}
            after = {lock_key(lk): lk for lk in change.locks}
            moved = [lk for k, lk in {**before, **after}.items()
                     if (k in before) != (k in after)]
            self.locks = list(change.locks)
            self._publish(LiveChanged(
                locks=frozenset(str(lk.integration) for lk in moved) or frozenset({""}),
                runs=frozenset(str(lk.run_id) for lk in moved)))
        elif change.kind == "approvals":
            self.approvals = list(change.approvals)
            if hasattr(self.app, "approvals_pending"):
                self.app.approvals_pending = len(self.approvals)
            self._publish(LiveChanged(approvals=True, runs=frozenset(
                str(getattr(a, "plan_run_id", "") or "") for a in self.approvals)))
        else:
            was, self.state, self.detail = self.state, change.state, change.detail
            if change.state in ("live", "polling"):
                if was == "reconnecting":
                    self._drop_trail()  # its connection went with the store
                self._read_soon()  # catch up with what was missed
            self._publish(LiveChanged(state=True))

    def _read_soon(self) -> None:
        if not self._reading and self._head > self.read_seq and self._task is not None:
            self._reading = True
            self._reader = asyncio.get_running_loop().create_task(self._read(),
                                                                  name="live-view-read")

    async def _read(self) -> None:
        """Fold every event up to the announced head; one read at a time."""
        try:
            while self._head > self.read_seq:
                start = self.read_seq or max(self._head - WINDOW, 0)
                events = await asyncio.to_thread(self._events_after, start)
                if not events:
                    self.read_seq = max(self.read_seq, start)
                    break
                touched: set[str] = set()
                for event in events:
                    run_id = fold(self.runs, event)
                    if run_id:
                        touched.add(run_id)
                self.read_seq = int(events[-1]["seq"])
                self.read_error = ""
                self._publish(LiveChanged(runs=frozenset(touched)))
        except Exception as exc:  # noqa: BLE001 - said on screen, and read again soon
            self._drop_trail()
            self.read_error = getattr(exc, "msg", "") or str(exc) or type(exc).__name__
            self._publish(LiveChanged(state=True))
            failed = True
        else:
            failed = False
        finally:
            self._reading = False
        if failed:
            await asyncio.sleep(self.slow)
            self._read_soon()

    def _events_after(self, seq: int) -> list[dict[str, Any]]:
        """Up to :data:`PAGE` events after ``seq`` (blocking: in a thread)."""
        if self._trail is None:
            from console.store import open_audit

            self._trail = open_audit(self.app.config, readonly=True)
        trail = self._trail
        after = getattr(trail, "events_after", None)
        if after is not None:
            return list(after(seq, PAGE))
        return [e for e in trail.events() if int(e["seq"]) > seq][:PAGE]

    def _drop_trail(self) -> None:
        trail, self._trail = self._trail, None
        if trail is not None:
            with contextlib.suppress(Exception):
                trail.close()

    def _publish(self, change: LiveChanged) -> None:
        with contextlib.suppress(Exception):  # the app is closing
            self.changed.publish(change)
