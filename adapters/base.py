"""The adapter contract: the one small interface every external system is reached through.

An adapter serves one kind of backend (``vault``, ``flagfile``, ...). The engine drives it in
four phases, each a plain blocking method that the engine runs in a bounded thread pool:

1. ``plan(action, ref, ctx)`` — read-only. Observes the target named by one inventory
   reference and returns the :class:`Change` objects that would carry out ``action`` on it:
   state before, state after, reversibility, and what undo needs.
2. ``read(change)`` — read-only. The target's current state, in the same shape as
   ``change.before`` / ``change.after``. The engine fingerprints it to detect drift (before)
   and to recognise an already-applied change (after), so adapters need no drift logic.
3. ``apply(change)`` — the side effect, exactly as planned. Returns extra undo data (for
   example version ids created by the change). Must be idempotent.
4. ``verify(change)`` — read-only. Proves the change took effect the way an application
   would notice (a read that now fails, a flag that now evaluates off).

``inverse(change, applied)`` builds the undo change (a normal :class:`Change` the engine plans
and applies like any other) or raises :class:`~console.errors.UndoUnsupported`.

Rules: constructors validate options and do no I/O; ``open()`` / ``close()`` own clients; only
:class:`~console.errors.AdapterError` subclasses escape (use :func:`map_errors`); adapters never
write the audit trail and never put secret values into a Change.
"""

from __future__ import annotations

import contextvars
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from adapters.canonical import canonical_bytes, canonical_json
from adapters.evidence import EvidenceSink
from adapters.options import AdapterOptions
from console.errors import AdapterError, ConfigError, UndoUnsupported

CURRENT_RUN: contextvars.ContextVar[str] = contextvars.ContextVar("killswitch_run", default="")
"""The run of the adapter call in progress (set by the engine's runtime around each call)."""

__all__ = [
    "CURRENT_RUN",
    "ENTRY_POINT_GROUP",
    "KILL_POINTS",
    "ActionSpec",
    "Adapter",
    "Change",
    "PlanContext",
    "Verdict",
    "adapter_names",
    "canonical_json",
    "fingerprint",
    "load_adapter_class",
    "map_errors",
]

ENTRY_POINT_GROUP = "killswitch.adapters"
"""Entry-point group through which built-in and third-party adapters are discovered."""

KILL_POINTS: Mapping[str, str] = {
    "flag.disable": "flags",
    "flag.enable": "flags",
    "batch.cancel": "batches",
    "egress.block": "egress",
    "egress.unblock": "egress",
    "credential.disable": "credentials",
    "credential.enable": "credentials",
    "credential.destroy": "credentials",
    "credential.issue": "credentials",
    "credential.write": "credentials",
    "credential.retire": "credentials",
    "evidence.preserve": "credentials",
    "notify": "contacts",
}
"""Every action kind a runbook may name, and the inventory kill-point list it acts on."""

# Status of a planned change, as reported by plan / dry-run.
OBSERVED = "observed"  # a real read-only call established the state
SIMULATED = "simulated"  # the state could not be read; the change is synthesised
UNSUPPORTED = "unsupported"  # no adapter can carry this out; it will not happen
NOOP = "noop"  # the target is already in the wanted state
ERROR = "error"  # observing the target failed; see `error`


def fingerprint(state: Mapping[str, Any] | None) -> str:
    """SHA-256 of a state mapping in canonical form; the precondition of a change."""
    return hashlib.sha256(canonical_bytes(state or {})).hexdigest()


@dataclass(slots=True)
class Change:
    """One planned operation on one target. Plain data: serialisable, hashed, secret-free.

    Slotted: a plan of 40,000 changes holds no per-change attribute dict.

    Attributes:
        op_id: Stable id inside a plan: ``integration/step/index``.
        integration: Inventory id of the integration.
        step: Runbook step id.
        action: Action kind (``credential.disable``, ``flag.enable``, ...).
        backend: Configured backend name.
        adapter: Adapter name (the backend's type).
        target: Human-readable reference of the target (never a secret).
        ref: The inventory reference the change was planned from.
        before: Observed state before the change.
        after: State the change produces.
        reversible: Whether ``inverse`` can undo it.
        undo: What the inverse needs (filled at plan time, extended by apply).
        precondition: Fingerprint of ``before``.
        status: observed / simulated / unsupported / noop / error.
        note: One line for the operator (why noop, what is irreversible, ...).
        error: Provider message when observing failed.
        inverse_of: For undo changes, the op id in the run being restored.
    """

    op_id: str
    integration: str
    step: str
    action: str
    backend: str
    adapter: str
    target: str
    ref: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    reversible: bool = True
    undo: dict[str, Any] = field(default_factory=dict)
    precondition: str = ""
    status: str = OBSERVED
    note: str = ""
    error: str = ""
    inverse_of: str = ""

    def __post_init__(self) -> None:
        if not self.precondition and self.status in (OBSERVED, NOOP):
            self.precondition = fingerprint(self.before)

    def to_dict(self) -> dict[str, Any]:
        """The change as JSON-ready data (a shallow copy: fields are plain JSON values)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        """Rebuild a change from :meth:`to_dict` output."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def actionable(self) -> bool:
        """True when applying would call the adapter (not noop, unsupported or error)."""
        return self.status in (OBSERVED, SIMULATED)


@dataclass(frozen=True)
class Verdict:
    """The outcome of verify for one change.

    Attributes:
        ok: True when the change is proven in effect.
        state: Short word for the operator: ``dead``, ``off``, ``live``, ``restored``, ...
        detail: One line explaining how it was checked.
    """

    ok: bool
    state: str
    detail: str = ""


@dataclass(frozen=True)
class PlanContext:
    """What an adapter may know while planning.

    Attributes:
        integration: Inventory id.
        step: Runbook step id.
        options: The runbook step's options.
        run_id: The run being planned.
        incident: Incident id, if any.
        operator: Who plans the run.
        runbook: The runbook's name.
        facts: Inventory facts about the integration a notification may quote (name,
            environment, provider, owner, kill_switch_owner, data_classes).
    """

    integration: str
    step: str
    options: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    incident: str = ""
    operator: str = ""
    runbook: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    action: str = ""
    """The action kind being planned."""
    backend: str = ""
    """The configured backend the reference names."""
    adapter: str = ""
    """The adapter's name (the backend's type)."""
    ref: Mapping[str, Any] = field(default_factory=dict)
    """The inventory reference being planned."""
    reversible: bool = True
    """Whether the action can be undone, from the adapter's :class:`ActionSpec`."""
    cause: str = "other"
    """Why the run happens: leak, cost, data, abuse, exercise or other (notifications say it)."""

    def op_id(self, index: int) -> str:
        """The op id of the ``index``-th change planned in this context."""
        return f"{self.integration}/{self.step}/{index}"

    def change(self, target: str, before: Mapping[str, Any], after: Mapping[str, Any], *,
               index: int = 0, undo: Mapping[str, Any] | None = None,
               status: str = OBSERVED, note: str = "", reversible: bool | None = None,
               action: str | None = None) -> Change:
        """A :class:`Change` of this context: op id, integration, step, backend, adapter and
        reference filled in, reversibility from the action's spec unless given.

        Args:
            target: Human-readable reference of the target (never a secret).
            before: Observed state.
            after: State the change produces.
            index: The change's position among those planned for this reference.
            undo: What the inverse needs.
            status: observed / simulated / unsupported / noop / error.
            note: One line for the operator.
            reversible: Overrides the spec (a change that cannot be undone this time).
            action: Overrides the context's action (rarely: an adapter that plans a
                different kind for this reference).
        """
        return Change(
            op_id=self.op_id(index), integration=self.integration, step=self.step,
            action=action or self.action, backend=self.backend, adapter=self.adapter,
            target=target, ref=dict(self.ref), before=dict(before), after=dict(after),
            reversible=self.reversible if reversible is None else reversible,
            undo=dict(undo or {}), status=status, note=note)


@dataclass(frozen=True)
class ActionSpec:
    """An action kind an adapter offers.

    Attributes:
        kind: Action kind, as in runbooks.
        kill_point: Inventory list it acts on: credentials / flags / batches / egress / contacts.
        reversible: Whether the change can be undone.
        inverse: Action kind of the undo, if any.
        permissions: What the console's credentials need (for the operator and the docs);
            the exact grants per reference are the adapter spec's ``grants``
            (``killswitch permissions``).
        schema: JSON Schema of the inventory reference fields this action reads (the
            subset in :mod:`adapters.schema`); every reference is checked against it when
            the config loads, and fields it does not list are refused.
    """

    kind: str
    kill_point: str
    reversible: bool
    inverse: str = ""
    permissions: tuple[str, ...] = ()
    schema: Mapping[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """Base class of every adapter. Subclasses set the class attributes and the methods.

    Class attributes:
        name: Equal to the entry-point name and the backend ``type`` in config.
        Options: The typed options model (:class:`~adapters.options.AdapterOptions`);
            built-ins keep it in :mod:`adapters.specs` so the config loader validates
            backends without importing SDKs.
        OPTIONS: Backend option names with a one-line description each (``Options.help()``).
        ACTIONS: The action kinds offered, by kind.
        SUPPORTS_UNDO: Whether any action is reversible.
        SUPPORTS_NATIVE_DRY_RUN: Whether the provider itself offers a dry-run.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    OPTIONS: ClassVar[Mapping[str, str]] = {}
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = {}
    SUPPORTS_UNDO: ClassVar[bool] = False
    SUPPORTS_NATIVE_DRY_RUN: ClassVar[bool] = False
    CAN_REVEAL: ClassVar[bool] = False
    """Secret stores: can read a stored key value (in memory only) and scan for copies."""
    CAN_PROBE: ClassVar[bool] = False
    """Providers: can test a key value the way an application would (proof of death)."""
    CAN_PRESERVE: ClassVar[bool] = False
    """Can copy what it knows about a reference into an evidence bundle (:meth:`preserve`)."""
    _run_id: str = ""

    @property
    def run_id(self) -> str:
        """The run this adapter acts for; HTTP adapters quote it in their ``User-Agent``.

        One adapter (one set of clients) serves every phase and run of a session: the
        engine sets the run of each call in :data:`CURRENT_RUN` (a context variable, so
        concurrent calls of different runs never see each other's); ``""`` outside a run.
        """
        return CURRENT_RUN.get() or self._run_id

    @run_id.setter
    def run_id(self, value: str) -> None:
        self._run_id = value

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        """Validate the options with ``Options``; no I/O here. Unknown keys are ignored
        (the config loader refuses them).

        ``self.opts`` is the typed model; ``self.options`` the raw options with every set
        option replaced by its typed value (seconds as float, files resolved).

        Raises:
            AdapterError: An option is invalid (backend, option, value, what is allowed).
        """
        self.backend = backend
        self.opts = type(self).Options.parse(backend, options)
        self.options = {**dict(options), **self.opts.to_options()}

    def open(self) -> None:  # noqa: B027 - optional hook
        """Create clients. Called once before the first call; may do I/O."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""

    @abstractmethod
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe one inventory reference and return the changes ``action`` would make.

        Build each change with ``ctx.change(...)``.
        """

    @abstractmethod
    def read(self, change: Change) -> dict[str, Any]:
        """Return the target's current state in the shape of ``change.before``."""

    @abstractmethod
    def apply(self, change: Change, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Carry out ``change``; return extra undo data. Idempotent.

        Args:
            change: The planned change.
            current: The state the engine read just before (``read``), so that apply does
                not read again; None when called outside the engine (the adapter reads).
        """

    @abstractmethod
    def verify(self, change: Change) -> Verdict:
        """Prove the change is in effect, with one read (see :meth:`verify_by_read`)."""

    def verify_by_read(self, change: Change) -> Verdict:
        """One read: the change is in effect when the state equals ``change.after``."""
        state = self.read(change)
        if fingerprint(state) == fingerprint(change.after):
            return Verdict(True, "done", "read back: state matches the plan")
        return Verdict(False, "live", f"read back: state is {canonical_json(state)}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Return the change that undoes ``change`` (with ``applied`` = apply's undo data)."""
        raise UndoUnsupported(
            f"{change.action} on {change.target} cannot be undone",
            where=change.target,
        )

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """Secret stores: the current key value a reference points at, or None if unreadable.

        The value stays in memory: never log it, put it in a Change, an error or a Verdict.
        A JSON secret yields the field named by ``ref["field"]``, else its only string value,
        else the first of ``api_key``, ``key``, ``token``, ``value``.
        """
        raise NotImplementedError

    def scan(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Secret stores: every readable stored value with a reference that finds it again.

        Used by ``credentials scan`` to find copies the inventory does not list; only
        fingerprints of the values leave the process.
        """
        raise NotImplementedError

    def probe(self, value: str) -> Verdict:
        """Providers: one cheap authenticated call with ``value``, as an application would.

        Returns ``Verdict(True, "revoked")`` on 401/403, ``Verdict(False, "live")`` when the
        call succeeds, ``Verdict(False, "unknown", reason)`` otherwise.
        """
        raise NotImplementedError

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: hand everything the backend knows about ``ref`` to ``sink``, read-only
        (see :mod:`adapters.evidence`). Only when :attr:`CAN_PRESERVE` is True.

        Each source (key metadata, batch jobs, usage, version history...) is written or
        reported failed on its own; only a failure before any source (e.g. the client cannot
        be built) may raise :class:`~console.errors.AdapterError`.
        """
        raise NotImplementedError

    def permissions(self, action: str) -> tuple[str, ...]:
        """Permissions the console needs for ``action``."""
        spec = self.ACTIONS.get(action)
        return spec.permissions if spec else ()


@contextmanager
def map_errors(
    target: str, translate: Callable[[BaseException], AdapterError | None]
) -> Iterator[None]:
    """Translate driver exceptions into :class:`AdapterError` at the adapter boundary.

    Args:
        target: The reference named in the error's ``where``.
        translate: Returns the AdapterError for a driver exception, or None to re-raise it
            wrapped as a plain AdapterError.
    """
    try:
        yield
    except AdapterError:
        raise
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        mapped = translate(exc) or AdapterError(f"{type(exc).__name__}: {exc}")
        if not mapped.where:
            mapped.where = target
        raise mapped from exc


def adapter_names() -> list[str]:
    """Names of every registered adapter; imports none of them."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_adapter_class(name: str) -> type[Adapter]:
    """Import and return the adapter class registered as ``name``.

    Raises:
        ConfigError: No adapter of that name is installed.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Adapter)):
                raise ConfigError(f"entry point {ep.value} is not an Adapter subclass")
            return cls
    known = ", ".join(adapter_names()) or "none"
    raise ConfigError(
        f"no adapter named {name!r} is installed",
        hint=f"use one of: {known}, or install the package that provides it",
    )
