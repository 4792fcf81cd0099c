"""The one store of observed kill-point states, shared by every screen (``app.observed``).

Every screen that shows a kill point's state (inventory, detail, the run screen when a run
ends) reads it here and asks for new observations here, so they all show the same one:

    app.observed.refresh(["support-bot"])       # observe again, in the background
    app.observed.state("support-bot", "keys")   # PointState("live") ... or None
    app.observed.changed.subscribe(screen, callback)

One refresh path: :meth:`ObservedStates.refresh` observes through
:func:`console.engine.observe.observe_states` on the app's one runtime (its clients are
reused), in chunks, the rows a screen says are on screen first. A newer refresh of the same
integrations supersedes an older one: the older skips them, and a result it still delivers
for them is dropped (the store never goes back to an older refresh's observation).

Progress (:meth:`ObservedStates.progress`): how many integrations are observed out of how
many were asked for, and which backends calls are waiting on (the planner reports each
target's observation start and finish with its backend).

Cancelling (:meth:`ObservedStates.cancel`, Escape on the screens): the integrations not yet
observed become ``unknown`` ("not observed: refresh cancelled"), with the last observed state
and when it was observed in the why; a stale ``live`` is never shown as if it were current.
Blocking SDK calls already in flight cannot be interrupted: they finish in the runtime's
thread pool (within the observation timeout) and their answers are dropped.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from textual.signal import Signal

if TYPE_CHECKING:
    from console.engine.observe import PointState
    from console.engine.runtime import Runtime
    from console.inventory import Integration
    from console.tui.app import KillswitchApp

__all__ = ["CHUNK", "TIMEOUT", "Observed", "ObservedStates", "Progress", "StatesChanged",
           "age_text"]

T = TypeVar("T")

CHUNK = 100
"""Integrations observed per engine call (states fill in chunk by chunk)."""
TIMEOUT = 5.0
"""Seconds one backend call of an observation may take before its state is ``unknown``."""
PROGRESS_EVERY = 0.1
"""Seconds between progress notifications (the running count, the backends waited on)."""
CANCELLED = "not observed: refresh cancelled"


@dataclass(frozen=True)
class Observed:
    """The last observation of one integration's kill points.

    Attributes:
        states: Column (``keys``, ``flags``, ``batches``, ``egress``) -> state.
        at: ``time.time()`` when it was observed (of the last real observation when
            ``cancelled``; 0 when it never was).
        generation: The refresh that produced it (higher is newer).
        cancelled: The refresh was cancelled before this integration was observed again;
            ``states`` say ``unknown`` and why.
        previous: The last real observation before a cancelled one, if any.
    """

    states: dict[str, PointState]
    at: float
    generation: int
    cancelled: bool = False
    previous: Observed | None = None


@dataclass(frozen=True)
class Progress:
    """What the refreshes under way are doing (one line on the screens).

    Attributes:
        done: Integrations observed since the first of the running refreshes started.
        total: Integrations those refreshes were asked for.
        waiting_on: Backends with calls in flight, most calls first.
    """

    done: int
    total: int
    waiting_on: tuple[str, ...]

    def text(self, *, width: int = 0, hint: str = "Esc cancels", count: bool = True,
             backends: Collection[str] | None = None) -> str:
        """``observing 37/120 \u00b7 waiting on openai, vault (Esc cancels)``.

        Args:
            width: Drop backend names (``+N``) until the line fits (0: no limit).
            hint: How to cancel, in parentheses at the end ("" for none).
            count: Show the running count.
            backends: Name only these backends (a screen about one integration).
        """
        head = f"observing {self.done}/{self.total}" if count else "observing"
        names = [b for b in self.waiting_on if backends is None or b in backends]
        shown = len(names)
        while True:
            waiting = ", ".join(names[:shown]) + (f" +{len(names) - shown}"
                                                  if shown < len(names) else "")
            line = head + (f" \u00b7 waiting on {waiting}" if names else "") + \
                (f" ({hint})" if hint else "")
            if not width or len(line) <= width or shown == 0:
                return line
            shown -= 1


@dataclass(frozen=True)
class StatesChanged:
    """What :attr:`ObservedStates.changed` publishes.

    Attributes:
        ids: Integrations whose states changed (empty: only the progress moved).
        finished: True when the last running refresh ended (finished or cancelled).
    """

    ids: frozenset[str]
    finished: bool = False


@dataclass(eq=False)
class _Refresh:
    generation: int
    ids: list[str]
    pending: set[str]
    in_flight: list[str] = field(default_factory=list)
    """Ids of the chunk being observed."""
    calls: Counter[str] = field(default_factory=Counter)
    """Backend -> calls in flight (orphans of a cancelled refresh count only here)."""
    cursor: int = 0
    """Where the next chunk starts looking in ``ids``."""
    task: Any = None


def age_text(at: float, now: float | None = None) -> str:
    """``just now`` (under a minute), ``3 min ago``, ``2 h ago``, ``5 days ago``."""
    seconds = max(0.0, (now if now is not None else time.time()) - at)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


class ObservedStates:
    """Observed kill-point states of every integration, and the one way to refresh them.

    Args:
        app: The console (its config, its runtime, its workers; owner of :attr:`changed`).
    """

    def __init__(self, app: KillswitchApp) -> None:
        self._app = app
        self._rows: dict[str, Observed] = {}
        self._wanted: dict[str, int] = {}
        self._generation = 0
        self._refreshes: list[_Refresh] = []
        self._batch: set[str] = set()
        self._batch_done: set[str] = set()
        self._built: set[str] = set()
        self._progress_scheduled = False
        self._by_id: dict[str, Integration] | None = None
        self.changed: Signal[StatesChanged] = Signal(app, "observed-states-changed")
        """Published (on the app's loop) when states change or a refresh moves on."""
        self.first: Callable[[], Iterable[str]] | None = None
        """The ids on screen now: observed before the others (set by the inventory)."""
        self.timeout = TIMEOUT
        """Seconds a backend call may take before its state is ``unknown``."""

    # -- reading -------------------------------------------------------------------------
    def get(self, integration_id: str) -> Observed | None:
        """The last observation of ``integration_id`` (None: never observed)."""
        return self._rows.get(integration_id)

    def state(self, integration_id: str, column: str) -> PointState | None:
        """The state of one kill-point column (None: not observed yet)."""
        row = self._rows.get(integration_id)
        return row.states.get(column) if row is not None else None

    def __contains__(self, integration_id: object) -> bool:
        return integration_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def busy(self) -> bool:
        """True while a refresh is under way."""
        return bool(self._refreshes)

    def pending(self, integration_id: str) -> bool:
        """True while a refresh is yet to observe ``integration_id``."""
        return integration_id in self._wanted

    def progress(self) -> Progress | None:
        """What the running refreshes are doing (None when none runs)."""
        if not self._refreshes:
            return None
        calls: Counter[str] = Counter()
        for refresh in self._refreshes:
            calls.update({b: n for b, n in refresh.calls.items() if n > 0})
        waiting = tuple(b for b, _n in sorted(calls.items(),
                                              key=lambda item: (-item[1], item[0])))
        return Progress(len(self._batch_done), len(self._batch), waiting)

    def backends(self, integration_id: str) -> list[str]:
        """The backends holding ``integration_id``'s kill points."""
        integ = self._integrations().get(integration_id)
        if integ is None:
            return []
        from console.engine.observe import KILL_POINT_PROBES

        out: list[str] = []
        for kill_point, _action in KILL_POINT_PROBES.values():
            for ref in integ.refs(kill_point):
                if ref.backend not in out:
                    out.append(ref.backend)
        return out

    # -- refreshing ----------------------------------------------------------------------
    def refresh(self, ids: list[str] | None = None) -> None:
        """Observe ``ids`` again (None: every integration), in the background.

        Supersedes older refreshes for these ids. Unknown ids are ignored.
        """
        known = self._integrations()
        wanted = list(known) if ids is None else list(dict.fromkeys(
            i for i in ids if i in known))
        if not wanted:
            return
        self._generation += 1
        refresh = _Refresh(self._generation, wanted, set(wanted))
        if not self._refreshes:
            self._batch, self._batch_done = set(), set()
        self._batch.update(wanted)
        self._batch_done.difference_update(wanted)
        for i in wanted:
            self._wanted[i] = refresh.generation
        for older in self._refreshes:
            older.pending.difference_update(wanted)
        self._refreshes.append(refresh)
        refresh.task = self._app.run_worker(  # the coroutine is made when the worker starts
            functools.partial(self._run, refresh), name=f"observe #{refresh.generation}",
            group="observe",
            description=f"observe {len(wanted)} integration(s)", exit_on_error=False)
        self._publish(frozenset())

    def cancel(self, ids: Iterable[str] | None = None) -> int:
        """Stop waiting for ``ids`` (None: for everything); returns how many were pending.

        They become ``unknown`` ("not observed: refresh cancelled", with the last state).
        A refresh left with nothing to do is cancelled.
        """
        drop = set(self._wanted) if ids is None else set(ids) & set(self._wanted)
        if not drop:
            return 0
        changed: set[str] = set()
        for refresh in list(self._refreshes):
            mine = {i for i in drop if self._wanted.get(i) == refresh.generation}
            changed |= self._mark_cancelled(refresh.generation, mine)
            refresh.pending.difference_update(drop)
            mine_in_flight = [i for i in refresh.in_flight
                              if self._wanted.get(i) == refresh.generation]
            if not refresh.pending and not mine_in_flight:
                self._end(refresh)
                if refresh.task is not None:
                    refresh.task.cancel()
        self._publish(frozenset(changed))
        return len(drop)

    async def _run(self, refresh: _Refresh) -> None:
        """Observe ``refresh``'s ids chunk by chunk until none is left."""
        try:
            while True:
                chunk = self._next_chunk(refresh)
                if not chunk:
                    break
                refresh.in_flight = [i.id for i in chunk]
                try:
                    states = await self._observe(refresh, chunk)
                except Exception as exc:  # noqa: BLE001 - shown as the why of unknown
                    from console.tui.messages import describe_error

                    _title, msg, _hint = describe_error(exc)
                    states = {i.id: self._unknown_row(i, f"observation failed: {msg}")
                              for i in chunk}
                refresh.pending.difference_update(refresh.in_flight)
                refresh.in_flight = []
                self._accept(refresh.generation, states, time.time())
        except asyncio.CancelledError:
            left = {i for i in refresh.pending | set(refresh.in_flight)
                    if self._wanted.get(i) == refresh.generation}
            changed = self._mark_cancelled(refresh.generation, left)
            self._end(refresh)
            self._publish(frozenset(changed))
            raise
        self._end(refresh)
        self._publish(frozenset())

    def _next_chunk(self, refresh: _Refresh) -> list[Integration]:
        """Up to :data:`CHUNK` of ``refresh``'s pending ids, the ones on screen first.

        Ids a newer refresh took over are no longer pending here (:meth:`refresh`).
        """
        if not refresh.pending:
            return []
        known = self._integrations()
        picked: list[str] = []
        if self.first is not None:
            picked = [i for i in dict.fromkeys(self.first()) if i in refresh.pending][:CHUNK]
        if len(picked) < CHUNK // 4:
            seen = set(picked)
            ids = refresh.ids
            while refresh.cursor < len(ids) and len(picked) < CHUNK:
                i = ids[refresh.cursor]
                refresh.cursor += 1
                if i in refresh.pending and i not in seen:
                    picked.append(i)
        return [known[i] for i in picked]

    async def _observe(self, refresh: _Refresh, chunk: list[Integration]
                       ) -> dict[str, dict[str, PointState]]:
        from console.engine.observe import observe_states

        runtime = self._app.runtime
        new = {b for i in chunk for b in self.backends(i.id)} - self._built
        # build new adapters off the loop: a first build may import an SDK
        await asyncio.gather(*(asyncio.to_thread(self._build, runtime, b) for b in new))
        self._built |= new
        calls = refresh.calls

        def progress(event: str, backend: str) -> None:
            calls[backend] += 1 if event == "started" else -1
            if calls[backend] <= 0:
                del calls[backend]
            self._progress_moved()

        return await observe_states(self._app.config, chunk, timeout=self.timeout,
                                    runtime=runtime, progress=progress)

    @staticmethod
    def _build(runtime: Runtime, backend: str) -> None:
        try:
            runtime.adapter(backend)
        except Exception:  # noqa: BLE001, S110 - the observation reports it as unknown
            pass

    def _accept(self, generation: int, states: dict[str, dict[str, PointState]],
                now: float) -> None:
        """Keep the results no newer refresh owns; publish what changed."""
        changed: set[str] = set()
        for iid, row in states.items():
            if self._wanted.get(iid, 0) > generation:
                continue  # a newer refresh will observe it
            old = self._rows.get(iid)
            if old is not None and old.generation > generation:
                continue  # a newer refresh already did
            self._rows[iid] = Observed(row, now, generation)
            if self._wanted.get(iid) == generation:
                del self._wanted[iid]
            self._batch_done.add(iid)
            changed.add(iid)
        self._publish(frozenset(changed))

    def _mark_cancelled(self, generation: int, ids: set[str]) -> set[str]:
        """``ids`` were not observed by refresh ``generation``: unknown, and why."""
        known = self._integrations()
        out: set[str] = set()
        for iid in ids:
            if self._wanted.get(iid) != generation or iid not in known:
                continue
            del self._wanted[iid]
            old = self._rows.get(iid)
            last = old.previous if old is not None and old.cancelled else old
            row = self._unknown_row(known[iid], CANCELLED, last)
            self._rows[iid] = Observed(row, last.at if last else 0.0, generation,
                                       cancelled=True, previous=last)
            self._batch_done.add(iid)  # not waited for any more
            out.add(iid)
        return out

    @staticmethod
    def _unknown_row(integ: Integration, why: str, last: Observed | None = None
                     ) -> dict[str, PointState]:
        """Every listed kill point ``unknown`` with ``why`` (and the last state seen)."""
        from console.engine.observe import KILL_POINT_PROBES, PointState

        row: dict[str, PointState] = {}
        for column, (kill_point, _action) in KILL_POINT_PROBES.items():
            refs = integ.refs(kill_point)
            if not refs:
                row[column] = PointState("-", "none listed in the inventory")
                continue
            text = why
            before = last.states.get(column) if last is not None else None
            if last is not None and before is not None and before.state != "unknown":
                at = time.strftime("%H:%M:%S", time.localtime(last.at))
                text += f" (last observed {before.state} at {at})"
            row[column] = PointState("unknown", text,
                                     per_ref=[("unknown", why) for _ref in refs])
        return row

    def _end(self, refresh: _Refresh) -> None:
        if refresh in self._refreshes:
            self._refreshes.remove(refresh)

    # -- notifications -------------------------------------------------------------------
    def _publish(self, ids: frozenset[str]) -> None:
        self.changed.publish(StatesChanged(ids, finished=not self._refreshes))

    def _progress_moved(self) -> None:
        """A call started or ended: tell the screens, at most every PROGRESS_EVERY s."""
        if self._progress_scheduled:
            return
        self._progress_scheduled = True

        def flush() -> None:
            self._progress_scheduled = False
            if self._refreshes:
                self._publish(frozenset())

        self._app.set_timer(PROGRESS_EVERY, flush, name="observed-progress")

    def _integrations(self) -> dict[str, Integration]:
        if self._by_id is None:
            self._by_id = {i.id: i for i in self._app.config.integrations}
        return self._by_id
