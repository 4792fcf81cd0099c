"""Rehearsal: a whole run played against a simulated copy of what a plan observed.

``killswitch run RUNBOOK SELECTOR --rehearse`` observes the real targets read-only, exactly as
a plan does (the plan is recorded with mode ``rehearsal``), then hands the plan to the real
:class:`~console.engine.executor.Executor` with a :class:`RehearsalRuntime` in place of the
session's runtime. That runtime never opens or calls a real adapter: every ``read`` /
``apply`` / ``verify`` the executor makes goes to a :class:`SimulatedAdapter` over a
:class:`SimulatedWorld` that starts as a copy of the observed state:

* ``read`` returns the simulated state of the change's target (initially ``change.before``;
  ``change.after`` for a change the plan found already done);
* ``apply`` sets it to ``change.after``;
* ``verify`` is ok when it equals ``change.after``;
* ``preserve`` (``evidence.preserve``) fetches and writes nothing: no evidence bundle is
  opened, the call only waits its latency and rolls its fault.

Each simulated call waits the backend's modelled latency: the median duration of that
backend's calls while the plan observed it (measured, per backend), else the ``latency``
given by the caller, else :data:`DEFAULT_LATENCY`. Concurrency caps and rate limits are the
backends' own, in limits separate from the real ones (a rehearsal never competes with a real
run for a backend's slots).

Faults (:class:`BackendFaults`, per backend) are injected into the simulated calls from dice
seeded by the rehearsal's seed, the target and the count of its calls (so a rehearsal with a
seed replays identically, whatever order concurrent operations run in): throttling
raises :class:`~console.errors.RateLimited` with its Retry-After, 5xx and a backend that is down
raise :class:`~console.errors.Unavailable`, a timeout raises :class:`~console.errors.Timeout`
after ``hang`` seconds (the call reached the backend and its answer was lost: an apply landed,
and the executor's read-before-retry finds it). Retries, failures and skipped steps are the
executor's own, unchanged.

Proof of death is simulated (:class:`SimulatedProof`): no key value is read and no key is
tested; an integration whose key a live run would prove is reported ``revoked`` when its
credential changes at the provider are in effect in the simulation, ``STILL LIVE`` when not,
``unknown`` when the provider is down; every detail says it was simulated.

Everything is marked: the trail's mode is ``rehearsal``, the run's start event carries
``rehearsal: true`` with the latency model and the faults, and :class:`RehearsalResult`
(what :meth:`console.engine.service.Session.rehearse` returns) renders under a REHEARSAL
header (:func:`render_rehearsal`, :func:`rehearsal_json`). No lock is taken on the real
integrations: a rehearsal neither waits for nor blocks a real response. A rehearsal run is
never resumed or restored (there is nothing to finish or undo).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from adapters.base import NOOP, Adapter, Change, PlanContext, Verdict, canonical_json, fingerprint
from adapters.evidence import EvidenceSink
from console.engine.model import Plan, RunResult
from console.engine.proof import KeyProof, Proof
from console.engine.runtime import Runtime
from console.errors import (
    AdapterError,
    ConfigError,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    UsageError,
)

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["DEFAULT_LATENCY", "FAULT_FIELDS", "BackendFaults", "RehearsalResult",
           "RehearsalRuntime", "SimulatedAdapter", "SimulatedProof", "SimulatedWorld",
           "TimedRuntime", "latency_model", "parse_fault_option", "parse_faults",
           "render_rehearsal", "rehearsal_json", "scenario_faults"]

T = TypeVar("T")

DEFAULT_LATENCY = 0.05
"""Seconds per simulated call for a backend whose latency was not measured (a plan that was
not observed in a rehearsing session, e.g. handed over from elsewhere) nor given."""

FAULT_FIELDS: dict[str, str] = {
    "latency": "extra seconds added to every call (on top of the modelled latency)",
    "throttle_rate": "share of calls throttled (429, RateLimited with Retry-After)",
    "retry_after": "seconds the throttled answers ask to wait (default 1)",
    "error_rate": "share of calls answering a 5xx (Unavailable)",
    "error_status": "the 5xx status of those answers (default 503)",
    "timeout_rate": "share of calls that hang until they time out (Timeout)",
    "hang": "seconds a hanging call takes to time out (default: the operation's timeout)",
    "down": "true: every call fails as connection refused (Unavailable)",
    "clear": "true: no faults (a scenario's way of ending earlier ones)",
}
"""Every fault field a backend's fault spec may set, with what it does (help text, errors)."""

_VERDICT_WORDS = {"credential": "dead", "flag": "off", "egress": "blocked", "batch": "cancelled",
                  "notify": "sent"}


# -- faults ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendFaults:
    """The faults injected into one backend's simulated calls.

    Rates are shares of calls in [0, 1], rolled independently per call in the order down,
    timeout, throttle, error (one roll each, from the rehearsal's seeded generator).
    """

    latency: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    error_rate: float = 0.0
    error_status: int = 503
    timeout_rate: float = 0.0
    hang: float | None = None
    down: bool = False

    @classmethod
    def parse(cls, backend: str, settings: Mapping[str, Any], where: str = "") -> BackendFaults:
        """Validate one backend's fault settings (see :data:`FAULT_FIELDS`).

        Raises:
            UsageError: An unknown field or a value out of range, naming both and the fix.
        """
        where = where or f"faults of backend {backend!r}"
        unknown = sorted(set(settings) - set(FAULT_FIELDS))
        if unknown:
            raise UsageError(f"unknown fault field(s) {', '.join(unknown)} for backend "
                             f"{backend!r}", where=where,
                             hint="fault fields are " + ", ".join(FAULT_FIELDS))
        if settings.get("clear"):
            return cls()
        values: dict[str, Any] = {}
        for name in ("latency", "retry_after", "hang"):
            if name in settings:
                values[name] = _number(backend, name, settings[name], where, low=0.0)
        for name in ("throttle_rate", "error_rate", "timeout_rate"):
            if name in settings:
                values[name] = _number(backend, name, settings[name], where, low=0.0, high=1.0)
        if "error_status" in settings:
            status = settings["error_status"]
            if isinstance(status, bool) or not isinstance(status, int) \
                    or not 500 <= status <= 599:
                raise UsageError(f"fault error_status = {status!r} for backend {backend!r} "
                                 "is not a 5xx status", where=where,
                                 hint="use an integer from 500 to 599, e.g. 503")
            values["error_status"] = status
        if "down" in settings:
            if not isinstance(settings["down"], bool):
                raise UsageError(f"fault down = {settings['down']!r} for backend {backend!r} "
                                 "is not true or false", where=where,
                                 hint="write down = true (or leave it out)")
            values["down"] = settings["down"]
        return cls(**values)

    @property
    def active(self) -> bool:
        """True when any fault is set."""
        return self != BackendFaults()

    def describe(self) -> dict[str, Any]:
        """The fields that differ from no fault, for the trail and the header."""
        none = BackendFaults()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(none, f.name)}


def _number(backend: str, name: str, value: Any, where: str, *, low: float,
            high: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
        raise UsageError(f"fault {name} = {value!r} for backend {backend!r} is not a number "
                         f"{span}", where=where, hint=f"give {name} a number {span}")
    return float(value)


def parse_faults(spec: Mapping[str, Mapping[str, Any]] | None,
                 config: Config) -> dict[str, BackendFaults]:
    """Validate a fault spec ``{backend: {field: value}}`` against the config's backends.

    Raises:
        UsageError: An unknown backend or fault field, or a value out of range.
    """
    out: dict[str, BackendFaults] = {}
    for backend, settings in (spec or {}).items():
        if backend not in config.backends:
            raise UsageError(f"fault for backend {backend!r}, which the config does not define",
                             where=str(config.path),
                             hint="name one of: " + ", ".join(sorted(config.backends)))
        if not isinstance(settings, Mapping):
            raise UsageError(f"the faults of backend {backend!r} are not a table of fields",
                             hint="e.g. {'throttle_rate': 0.3, 'retry_after': 1}")
        out[backend] = BackendFaults.parse(backend, settings)
    return {b: f for b, f in out.items() if f.active}


def _scalar(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(low)
    except ValueError:
        pass
    try:
        return float(low)
    except ValueError:
        return text.strip()


def parse_fault_option(text: str) -> tuple[str, dict[str, Any]]:
    """``BACKEND:field=value,field=value`` (the CLI's ``--fault``) as ``(backend, settings)``;
    a bare ``BACKEND:down`` means ``down=true``.

    Raises:
        UsageError: Not in that shape.
    """
    backend, sep, rest = text.partition(":")
    hint = ("write --fault BACKEND:field=value,...  e.g. "
            "--fault vault:throttle_rate=0.3,retry_after=1")
    if not sep or not backend.strip() or not rest.strip():
        raise UsageError(f"--fault {text!r} is not BACKEND:field=value,...", hint=hint)
    settings: dict[str, Any] = {}
    for part in rest.split(","):
        name, eq, value = part.partition("=")
        if not name.strip():
            raise UsageError(f"--fault {text!r}: an empty field", hint=hint)
        settings[name.strip()] = _scalar(value) if eq else True
    return backend.strip(), settings


def scenario_faults(scenario: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The backend faults of an exercise scenario (``console.exercise.scenario.Scenario``), all
    active from the start of the rehearsal (its timeline is compressed), later injects of a
    backend overriding earlier ones and ``clear`` ending them; plus notes on the faults a
    rehearsal cannot play (locks, unlisted copies: they need a sandbox)."""
    out: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for inject in getattr(scenario, "injects", ()):
        fault = getattr(inject, "fault", None)
        if fault is None:
            continue
        kind = getattr(fault, "kind", "backend")
        if kind != "backend":
            notes.append(f"scenario fault {kind!r} at T+{getattr(inject, 'at', 0):g}s is not "
                         "played in a rehearsal (it needs a sandbox)")
            continue
        settings = dict(getattr(fault, "settings", {}) or {})
        if settings.get("clear"):
            out.pop(fault.backend, None)
            continue
        out.setdefault(fault.backend, {}).update(
            {k: v for k, v in settings.items() if k in FAULT_FIELDS})
    return out, notes


# -- latency -----------------------------------------------------------------------------------
class TimedRuntime(Runtime):
    """A view of a runtime that records how long each adapter call takes, per backend (the
    time inside the adapter, not the wait for a slot): the rehearsal's latency model."""

    samples: dict[str, list[float]]

    @classmethod
    def of(cls, rt: Runtime, samples: dict[str, list[float]]) -> TimedRuntime:
        """``rt`` (a fresh view, changed in place) timing its calls into ``samples``."""
        rt.__class__ = cls
        assert isinstance(rt, TimedRuntime)
        rt.samples = samples
        return rt

    async def call(self, backend: str, fn: Callable[[Adapter], T],
                   timeout: float | None = None) -> T:
        """:meth:`Runtime.call`, timed."""
        found = self.samples.setdefault(backend, [])

        def timed(adapter: Adapter) -> T:
            began = time.perf_counter()
            try:
                return fn(adapter)
            finally:
                found.append(time.perf_counter() - began)

        return await super().call(backend, timed, timeout)


def latency_model(samples: Mapping[str, list[float]] | None,
                  given: Mapping[str, float] | None, backends: set[str]) -> dict[str, float]:
    """Seconds per simulated call for each of ``backends``: ``given`` first, else the median
    of the measured ``samples``, else :data:`DEFAULT_LATENCY`."""
    out: dict[str, float] = {}
    for backend in sorted(backends):
        if given and backend in given:
            out[backend] = max(0.0, float(given[backend]))
        elif samples and samples.get(backend):
            out[backend] = statistics.median(samples[backend])
        else:
            out[backend] = DEFAULT_LATENCY
    return out


# -- the simulated world -----------------------------------------------------------------------
class SimulatedWorld:
    """The rehearsal's copy of the observed state, its latency model and its faults.

    Args:
        plan: The plan observed from the real targets.
        latency: Seconds per call, per backend.
        faults: Injected faults, per backend.
        seed: Seed of the generator that rolls the faults.
    """

    def __init__(self, plan: Plan, latency: Mapping[str, float],
                 faults: Mapping[str, BackendFaults] | None = None, seed: int = 0) -> None:
        self.latency = dict(latency)
        self.faults = dict(faults or {})
        self.seed = seed
        self._rolled: dict[tuple[str, str], int] = {}
        self.limit = 0.0
        """The timeout of the call in progress (set by the runtime around each call)."""
        self.hang: float | None = None
        """Set by a call that landed and must time out after that many seconds."""
        self.states: dict[str, dict[str, Any]] = {
            c.op_id: copy.deepcopy(dict(c.after if c.status == NOOP else c.before))
            for c in plan.changes}
        self.applied: list[str] = []
        """Op ids the simulation applied, in order (repeats when applied again)."""
        self.calls: dict[str, int] = {}
        """Simulated calls per backend."""
        self.injected: list[dict[str, Any]] = []
        """Every fault injected: backend, kind, monotonic time."""

    def roll(self, backend: str, key: str,
             timeout: float) -> tuple[AdapterError | None, float | None]:
        """The fault of one call about target ``key``: (error to raise before the call lands,
        or None; seconds after which a call that landed times out, or None). The dice are
        seeded by the seed, backend, key and how many calls the key had: independent of the
        order in which concurrent operations happen to run."""
        f = self.faults.get(backend)
        if f is None:
            return None, None
        n = self._rolled.get((backend, key), 0)
        self._rolled[(backend, key)] = n + 1
        rng = random.Random(f"{self.seed}/{backend}/{key}/{n}")
        kind = ""
        err: AdapterError | None = None
        hang: float | None = None
        if f.down:
            kind = "down"
            err = Unavailable("connection refused (rehearsal fault: backend down)",
                              where=backend)
        elif f.timeout_rate and rng.random() < f.timeout_rate:
            kind, hang = "timeout", f.hang if f.hang is not None else timeout
        elif f.throttle_rate and rng.random() < f.throttle_rate:
            kind = "throttle"
            err = RateLimited(f"429 Too Many Requests (rehearsal fault); Retry-After "
                              f"{f.retry_after:g}s", retry_after=f.retry_after, status=429,
                              where=backend)
        elif f.error_rate and rng.random() < f.error_rate:
            kind = "error"
            err = Unavailable(f"{f.error_status} (rehearsal fault)", status=f.error_status,
                              where=backend)
        if kind:
            self.injected.append({"backend": backend, "kind": kind, "at": time.monotonic()})
        return err, hang

    def state(self, change: Change) -> dict[str, Any]:
        """The simulated state of ``change``'s target (a copy)."""
        try:
            return copy.deepcopy(self.states[change.op_id])
        except KeyError:
            raise NotFound(f"{change.target} is not in the rehearsed plan",
                           where=change.target) from None

    def done(self, change: Change) -> bool:
        """True when ``change`` is in effect in the simulation."""
        return change.op_id in self.states and \
            fingerprint(self.states[change.op_id]) == fingerprint(change.after)

    def fault_counts(self) -> dict[str, dict[str, int]]:
        """Injected faults per backend and kind."""
        out: dict[str, dict[str, int]] = {}
        for item in self.injected:
            per = out.setdefault(item["backend"], {})
            per[item["kind"]] = per.get(item["kind"], 0) + 1
        return out


class SimulatedAdapter(Adapter):
    """Stands in for one backend's adapter in a rehearsal: reads, applies and verifies the
    :class:`SimulatedWorld`, never the backend. ``plan``, ``reveal``, ``probe`` and
    ``inverse`` refuse (a rehearsal never plans, reveals, probes or restores through it)."""

    name: ClassVar[str] = "simulated"

    def __init__(self, backend: str, world: SimulatedWorld) -> None:  # noqa: D107
        self.backend = backend
        self.world = world
        self.options = {}

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Never: a rehearsal plans against the real adapter, read-only."""
        raise AdapterError("a rehearsal's simulated adapter does not plan", where=self.backend)

    def _fault(self, change: Change) -> None:
        """Roll this call's fault: raise it, or note a hang for the runtime."""
        err, hang = self.world.roll(self.backend, change.op_id, self.world.limit)
        if err is not None:
            raise err
        self.world.hang = hang

    def read(self, change: Change) -> dict[str, Any]:
        """The simulated state of the target."""
        self._fault(change)
        return self.world.state(change)

    def apply(self, change: Change, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Set the simulated state to ``change.after``; nothing to undo."""
        self._fault(change)
        self.world.states[change.op_id] = copy.deepcopy(dict(change.after))
        self.world.applied.append(change.op_id)
        return {}

    def verify(self, change: Change) -> Verdict:
        """Ok when the simulated state equals ``change.after``."""
        self._fault(change)
        state = self.world.state(change)
        if fingerprint(state) == fingerprint(change.after):
            word = _VERDICT_WORDS.get(change.action.split(".")[0], "done")
            return Verdict(True, word, "simulated: read back matches the plan (rehearsal)")
        return Verdict(False, "live", f"simulated: state is {canonical_json(state)} (rehearsal)")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Never: a rehearsal is not restored."""
        raise AdapterError("a rehearsal changed nothing and is not restored", where=change.target)

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence, simulated: the call's fault is rolled; nothing is fetched or written
        (the engine hands a rehearsal a sink that writes nothing)."""
        err, hang = self.world.roll(self.backend, "evidence:" + canonical_json(dict(ref)),
                                    self.world.limit)
        if err is not None:
            raise err
        self.world.hang = hang


@functools.cache
def _simulated_class(name: str, probe: bool, reveal: bool) -> type[SimulatedAdapter]:
    """:class:`SimulatedAdapter` with the real adapter's name and capabilities (what the
    engine asks a backend's adapter: may it prove a key dead, does it hold key copies)."""
    made: type[SimulatedAdapter] = type(
        "SimulatedAdapter", (SimulatedAdapter,),
        {"name": name, "CAN_PROBE": probe, "CAN_REVEAL": reveal, "__module__": __name__})
    return made


class RehearsalRuntime(Runtime):
    """A runtime whose adapters are :class:`SimulatedAdapter` s over one world.

    It shares the real runtime's config, thread pool and retry policy, never its adapters
    (no real adapter is opened or called through it), and keeps its own per-backend limits
    (the backends' caps and rates, modelled apart from the real ones). Simulated calls run in
    the event loop, after an ``asyncio.sleep`` of the backend's latency and any fault.

    Args:
        base: The session's runtime (real adapters: only their capabilities are asked).
        world: The simulated state, latency and faults.
    """

    world: SimulatedWorld
    real: Runtime
    writes_evidence: ClassVar[bool] = False
    """A rehearsal writes no evidence bundle (:mod:`console.engine.evidence`)."""

    def __init__(self, base: Runtime, world: SimulatedWorld) -> None:  # noqa: D107
        self.__dict__.update(base.__dict__)
        self.parent = base  # closing this runtime closes nothing
        self.real = base
        self.world = world
        self._adapters = {}
        self._opened = set()
        self._limits = {}
        self._backend_locks = {}

    def view(self, *, run_id: str = "", max_attempts: int | None = None,
             default_timeout: float | None = None) -> Runtime:
        """A view (own run id, retries and timeout cap) that is a rehearsal runtime too."""
        view = super().view(run_id=run_id, max_attempts=max_attempts,
                            default_timeout=default_timeout)
        view.__class__ = RehearsalRuntime
        return view

    def warm(self) -> None:
        """Nothing to build."""

    def adapter(self, backend: str) -> Adapter:
        """The simulated adapter of ``backend``, with the real adapter's capabilities."""
        found = self._adapters.get(backend)
        if found is not None:
            return found
        if backend not in self.config.backends:
            raise ConfigError(f"backend {backend!r} is not defined", where=str(self.config.path),
                              hint=f"define [backends.{backend}] or fix the reference")
        real = type(self.real.adapter(backend))  # constructed by the plan; never called here
        cls = _simulated_class(real.name, bool(real.CAN_PROBE), bool(real.CAN_REVEAL))
        return self._adapters.setdefault(backend, cls(backend, self.world))

    def _opened_adapter(self, backend: str) -> Adapter:
        return self.adapter(backend)

    async def call(self, backend: str, fn: Callable[[Adapter], T],
                   timeout: float | None = None) -> T:
        """``fn`` on the simulated adapter, after the modelled latency, with the backend's
        faults; under the backend's (rehearsal) limits and the operation's timeout.

        Raises:
            AdapterError: An injected fault (RateLimited, Unavailable, Timeout).
        """
        limit = timeout or self.timeout(backend)
        adapter = self.adapter(backend)
        world = self.world
        async with self.limits(backend):
            world.calls[backend] = world.calls.get(backend, 0) + 1
            f = world.faults.get(backend)
            wait = world.latency.get(backend, DEFAULT_LATENCY) + (f.latency if f else 0.0)
            hang: float | None = None
            try:
                async with asyncio.timeout(limit):
                    await asyncio.sleep(wait)
                    # synchronous, in the loop: no other call runs between these lines
                    world.limit, world.hang = limit, None
                    result = fn(adapter)  # raises an injected error before it lands
                    hang, world.hang = world.hang, None
                    if hang is not None:  # it landed; the answer never comes back
                        await asyncio.sleep(hang)
                        raise TimeoutError
                    return result
            except TimeoutError as exc:
                waited = limit if hang is None else min(limit, hang)
                why = "rehearsal fault" if hang is not None else "rehearsal"
                raise Timeout(f"no answer within {waited:g}s; outcome unknown ({why})",
                              where=backend) from exc

    def close(self) -> None:
        """Nothing to close (the real runtime's clients are not this runtime's)."""


# -- proof -------------------------------------------------------------------------------------
class SimulatedProof(KeyProof):
    """Proof of death, simulated: wanted where a live run would prove (a provider that can
    test keys and a store copy of the key), decided from the simulated state; no key value is
    read, no provider is called."""

    def __init__(self, rt: RehearsalRuntime) -> None:  # noqa: D107
        super().__init__(rt, 0.0, 0.0)
        self.world = rt.world
        self._provider_changes: dict[str, tuple[str, list[Change]]] = {}

    async def capture(self, integration: str, changes: list[Change]) -> None:
        """Note what a live run would test for ``integration`` (reads nothing)."""
        creds = [c for c in changes if c.action.startswith("credential.")]
        providers = [c for c in creds if self._backend_can(c.backend, "CAN_PROBE")]
        stores = [c for c in creds if self._backend_can(c.backend, "CAN_REVEAL")]
        if providers and stores:
            first = providers[0].backend
            self._provider_changes[integration] = (
                first, [c for c in providers if c.backend == first])

    def wants(self, integration: str) -> bool:
        """True when a live run would prove this integration's key."""
        return integration in self._provider_changes

    async def prove(self, integration: str,
                    update: Callable[[Proof], None] | None = None) -> Proof:
        """``revoked`` when the provider's credential changes are in effect in the
        simulation, else ``STILL LIVE``; ``unknown`` when the provider is down."""
        if integration not in self._provider_changes:
            return Proof(integration, "unknown", "not captured (rehearsal)")
        provider, changes = self._provider_changes[integration]
        f = self.world.faults.get(provider)
        await asyncio.sleep(self.world.latency.get(provider, DEFAULT_LATENCY))
        if f is not None and f.down:
            return Proof(integration, "unknown",
                         f"{provider}: no answer (rehearsal fault: backend down); simulated")
        if all(self.world.done(c) for c in changes):
            return Proof(integration, "revoked", f"{provider}: would reject the key "
                         "(simulated in a rehearsal: no key was tested)")
        return Proof(integration, "STILL LIVE", f"{provider}: would still accept the key: its "
                     "revocation did not take effect (simulated in a rehearsal)")

    def forget(self) -> None:
        """Nothing was captured."""
        self._provider_changes.clear()


# -- the result --------------------------------------------------------------------------------
@dataclass
class RehearsalResult(RunResult):
    """A :class:`RunResult` from a rehearsal: what a live run would have done, simulated.

    Attributes:
        latency: Seconds per simulated call, per backend (the model used).
        measured: Backends whose latency was measured while planning.
        faults: The faults injected, per backend (their settings).
        fault_counts: Faults that actually happened, per backend and kind.
        seed: The seed of the fault generator (rehearse again with it to replay).
        simulated_applies: Simulated applies (no real adapter's apply was called).
        notes: What a live run would need or meet (consent, blast radius, scenario faults
            that need a sandbox).
    """

    rehearsal: bool = True
    latency: dict[str, float] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seed: int = 0
    simulated_applies: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, result: RunResult, world: SimulatedWorld, *, measured: list[str],
           notes: list[str]) -> RehearsalResult:
        """Wrap a run's result with the rehearsal's model and what was injected."""
        base = {f.name: getattr(result, f.name) for f in fields(RunResult)}
        return cls(**base, latency=dict(world.latency), measured=sorted(measured),
                   faults={b: f.describe() for b, f in world.faults.items()},
                   fault_counts=world.fault_counts(), seed=world.seed,
                   simulated_applies=len(world.applied), notes=list(notes))


HEADER = "REHEARSAL — nothing was changed"
"""The first line of a rehearsal's text output."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def render_rehearsal(result: RehearsalResult) -> str:
    """The run's text (:func:`console.render.render_result`) under the REHEARSAL header, with
    the latency model, the faults and the notes; the proof section marked simulated."""
    from console.render import render_result

    lines = [HEADER,
             "the real targets were observed read-only; the run was played against a "
             "simulated copy of that state (no adapter's apply was called)"]
    if result.latency:
        lines.append("modelled latency per call: " + ", ".join(
            f"{b} {_ms(s)}{'' if b in result.measured else ' (default)'}"
            for b, s in result.latency.items()))
    if result.faults:
        lines.append(f"faults (seed {result.seed}): " + "; ".join(
            f"{b}: " + ", ".join(f"{k}={v}" for k, v in spec.items())
            for b, spec in result.faults.items()))
        happened = ", ".join(f"{b} {k} x{n}" for b, per in result.fault_counts.items()
                             for k, n in per.items())
        lines.append(f"faults injected: {happened or 'none'}")
    lines.extend(f"note: {n}" for n in result.notes)
    lines.append("")
    body = render_result(result).replace(
        "proof of death (the key tested at its provider, as an application would):",
        "proof of death (SIMULATED: no key was tested):")
    lines.append(body.replace(f"run {result.run_id} ", f"rehearsal {result.run_id} ", 1))
    lines.append(f"REHEARSAL: nothing was changed; a live run would have exited "
                 f"{result.exit_code()}")
    return "\n".join(lines)


def rehearsal_json(result: RehearsalResult) -> str:
    """Machine output of a rehearsal: :func:`console.render.result_json` plus ``mode``
    (``rehearsal``) and a ``rehearsal`` object (latency, faults, seed, notes)."""
    from console.render import result_json

    data = json.loads(result_json(result))
    data["mode"] = "rehearsal"
    data["rehearsal"] = {"changed_nothing": True, "latency": result.latency,
                         "measured": result.measured, "faults": result.faults,
                         "fault_counts": result.fault_counts, "seed": result.seed,
                         "simulated_applies": result.simulated_applies,
                         "notes": result.notes}
    return json.dumps(data, indent=2)
