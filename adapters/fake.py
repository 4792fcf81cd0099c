"""An in-process fake backend that satisfies the adapter contract.

Used by engine tests, the engine benchmark and tabletop exercises: every target is a switch
that is ``on`` (live) or ``off`` (killed). Latency and faults are injected from options, and the
state can live in a JSON file so that several processes (a run, a crash, a resume) share it.

Backend options::

    [backends.sim]
    type = "fake"
    latency = 0.02          # seconds per call
    apply_latency = 0.0     # extra seconds spent inside apply, after the switch flipped
    fail_rate = 0.0         # share of calls answering 503 (retryable)
    throttle_rate = 0.0     # share of calls answering 429 with Retry-After
    retry_after = 0.05      # seconds, for throttled calls
    state_file = ""         # JSON file shared across processes; empty = in memory
    gate_file = ""          # tests: apply waits (before flipping) until this file exists, and
                            # creates "<gate_file>.entered" first, so a test can act while an
                            # apply is provably in flight, then open the gate
    simulate = false        # plan without reading (reports "simulated")
    probe = ""              # act as a key provider for proof of death: "switch" (the key is
                            # refused once its switch is off), "live", "revoked", "unknown"
    reveal = false          # act as a secret store: a copy's value is derived from its key
    evidence = ""           # preserve: "" writes the switch's metadata and a usage file;
                            # "fail-source": the usage source fails (in the manifest);
                            # "raise": preserve itself fails with a 403

Inventory reference: ``{backend = "sim", key = "support-bot-key"}``.

Example runbook step::

    [[steps]]
    id = "revoke"
    action = "credential.disable"

Evidence (``CAN_PRESERVE``): ``preserve`` writes the switch's metadata (``switch`` source,
``<key>-switch.json``) and a small usage file (``usage`` source, ``usage.jsonl``, one line of
which carries the key's fake value under ``api_key``: the bundle must scrub it).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import (
    NOOP,
    OBSERVED,
    SIMULATED,
    ActionSpec,
    Adapter,
    Change,
    PlanContext,
    Verdict,
)
from adapters.common import plan_context
from adapters.evidence import EvidenceSink
from adapters.specs.fake import FAKE, FakeOptions
from console.errors import (
    AdapterError,
    ConfigError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UndoUnsupported,
)

__all__ = ["FakeAdapter"]

_INVERSE = {kind: spec.inverse for kind, spec in FAKE.actions.items() if spec.inverse}
_TURNS_OFF = {"credential.disable", "credential.destroy", "flag.disable", "batch.cancel",
              "egress.block"}


class FakeAdapter(Adapter):
    """Switches that can be turned off and on again, with injectable latency and faults."""

    name: ClassVar[str] = "fake"
    Options: ClassVar[type[FakeOptions]] = FakeOptions
    OPTIONS: ClassVar[Mapping[str, str]] = FakeOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = FAKE.actions  # adapters/specs/fake.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    _memory: ClassVar[dict[str, dict[str, Any]]] = {}
    _memory_lock: ClassVar[threading.Lock] = threading.Lock()
    total_calls: ClassVar[int] = 0
    """Calls made by every instance in this process (benchmarks)."""

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.latency = float(options.get("latency", 0.0))
        self.apply_latency = float(options.get("apply_latency", 0.0))
        self.fail_rate = float(options.get("fail_rate", 0.0))
        self.throttle_rate = float(options.get("throttle_rate", 0.0))
        self.retry_after = float(options.get("retry_after", 0.05))
        self.simulate = bool(options.get("simulate", False))
        state_file = str(options.get("state_file", "") or "")
        self.state_file = Path(state_file) if state_file else None
        gate_file = str(options.get("gate_file", "") or "")
        self.gate_file = Path(gate_file) if gate_file else None
        self.calls = 0
        self.probe_mode = str(options.get("probe", "") or "")
        self.evidence_mode = str(options.get("evidence", "") or "")
        if self.probe_mode not in ("", "switch", "live", "revoked", "unknown"):
            raise ConfigError(f"fake: probe = {self.probe_mode!r} is not one of switch, live, "
                              "revoked, unknown", where=f"backends.{backend}.probe")
        can = (bool(self.probe_mode), bool(options.get("reveal", False)))
        if can != (self.CAN_PROBE, self.CAN_REVEAL):  # capabilities are class attributes
            self.__class__ = _with_capabilities(*can)

    # -- state -------------------------------------------------------------------------
    @contextmanager
    def _state(self, write: bool = False) -> Iterator[dict[str, Any]]:
        if self.state_file is None:
            with self._memory_lock:
                yield self._memory.setdefault(self.backend, {"switches": {}, "applied": []})
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.state_file}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = (json.loads(self.state_file.read_text())
                        if self.state_file.exists() else {"switches": {}, "applied": []})
                yield data
                if write:
                    tmp = self.state_file.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data, indent=1))
                    os.replace(tmp, self.state_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _call(self) -> None:
        self.calls += 1
        with self._memory_lock:
            FakeAdapter.total_calls += 1
        if self.latency:
            time.sleep(self.latency)
        roll = random.random()
        if roll < self.throttle_rate:
            raise RateLimited("fake: 429 Too Many Requests", retry_after=self.retry_after,
                              status=429)
        if roll < self.throttle_rate + self.fail_rate:
            raise Unavailable("fake: 503 Service Unavailable", status=503)

    GATE_TIMEOUT: ClassVar[float] = 120.0
    """Seconds an apply waits for ``gate_file`` before failing (a test that never opens it)."""

    def _wait_for_gate(self) -> None:
        if self.gate_file is None:
            return
        self.gate_file.with_name(f"{self.gate_file.name}.entered").touch()
        deadline = time.monotonic() + self.GATE_TIMEOUT
        while not self.gate_file.exists():
            if time.monotonic() > deadline:
                raise AdapterError(f"fake: gate {self.gate_file} never opened",
                                   where=self.backend)
            time.sleep(0.01)

    def _switch(self, key: str) -> str:
        with self._state() as data:
            return str(data["switches"].get(key, "on"))

    # -- contract ----------------------------------------------------------------------
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the switch named by ``ref["key"]`` and plan ``action`` on it."""
        key = str(ref.get("key") or "")
        if not key:
            raise NotFound("fake reference has no 'key'", where=self.backend)
        spec = self.ACTIONS.get(action)
        if spec is None:
            raise AdapterError(f"the fake adapter does not offer {action}", where=self.backend)
        after = {"switch": "off" if action in _TURNS_OFF else "on"}
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{key}"
        if self.simulate:
            return [ctx.change(target, {"switch": "on"}, after, status=SIMULATED,
                               note="simulated: state not read")]
        self._call()
        before = {"switch": self._switch(key)}
        noop = before == after
        note = f"already {after['switch']}" if noop else ""
        if not spec.reversible:
            note = note or "irreversible"
        return [ctx.change(target, before, after, undo={"key": key, "was": before["switch"]},
                           status=NOOP if noop else OBSERVED, note=note)]

    def read(self, change: Change) -> dict[str, Any]:
        """Current position of the switch."""
        self._call()
        return {"switch": self._switch(str(change.ref["key"]))}

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Flip the switch and log the side effect (for exactly-once checks)."""
        self._call()
        self._wait_for_gate()
        key = str(change.ref["key"])
        with self._state(write=True) as data:
            data["switches"][key] = change.after["switch"]
            data["applied"].append({"op": change.op_id, "key": key, "action": change.action})
        if self.apply_latency:
            time.sleep(self.apply_latency)
        return {"applied_at": time.time()}

    def verify(self, change: Change) -> Verdict:
        """Read the switch back."""
        state = self.read(change)
        ok = state == change.after
        word = ("dead" if state["switch"] == "off" else "live") if ok else "STILL LIVE"
        if ok and state["switch"] == "on":
            word = "restored"
        return Verdict(ok, word, f"switch is {state['switch']}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Turn the switch back to where it was."""
        if not change.reversible or change.action not in _INVERSE:
            raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone",
                                  where=change.target)
        return Change(op_id=f"{change.op_id}:undo", integration=change.integration,
                      step=f"undo-{change.step}", action=_INVERSE[change.action],
                      backend=change.backend, adapter=self.name, target=change.target,
                      ref=dict(change.ref), before=dict(change.after),
                      after=dict(change.before), reversible=True, inverse_of=change.op_id)

    # -- proof of death (only with the probe / reveal options) -------------------
    @staticmethod
    def secret_of(key: str) -> str:
        """The value every copy of the fake key ``key`` holds (tests and exercises)."""
        return f"fake-secret-{key.removesuffix('-copy')}"

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """The value of a stored copy while its switch is on (a disabled copy reads nothing)."""
        key = str(ref.get("key") or "")
        self._call()
        return self.secret_of(key) if self.CAN_REVEAL and self._switch(key) == "on" else None

    def probe(self, value: str) -> Verdict:
        """Answer as configured; ``switch``: refused once the key's switch is off."""
        self._call()
        mode = self.probe_mode
        if mode == "switch":
            key = value.removeprefix("fake-secret-")
            mode = "revoked" if self._switch(key) == "off" else "live"
        if mode == "revoked":
            return Verdict(True, "revoked", "fake provider refuses the key (401)")
        if mode == "live":
            return Verdict(False, "live", "fake provider accepts the key (200)")
        return Verdict(False, "unknown", "fake provider answered 500")

    # -- evidence ------------------------------------------------------------------------
    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """The switch's metadata and the side effects it saw; a usage file (see the module
        docstring); the ``evidence`` option makes the usage source or the call fail."""
        self._call()
        if self.evidence_mode == "raise":
            raise PermissionDenied("fake: 403 the console may not read this backend's "
                                   "evidence", where=self.backend, status=403)
        key = str(ref.get("key") or "")
        if not key:
            raise NotFound("fake reference has no 'key'", where=self.backend)
        with self._state() as data:
            seen = [dict(a) for a in data["applied"] if a.get("key") == key]
            switch = str(data["switches"].get(key, "on"))
        sink.json(f"{key}-switch", {"backend": self.backend, "key": key, "switch": switch,
                                    "side_effects": seen}, source="switch")
        if self.evidence_mode == "fail-source":
            sink.failed("usage", "fake: 503 usage report unavailable")
            return
        lines = [json.dumps({"key": key, "requests": 3, "hour": h}) for h in range(2)]
        lines.append(json.dumps({"key": key, "api_key": self.secret_of(key)}))
        sink.file("usage.jsonl", (f"{line}\n".encode() for line in lines), source="usage")

    @classmethod
    def reset(cls) -> None:
        """Forget every in-memory switch (tests and benchmarks)."""
        with cls._memory_lock:
            cls._memory.clear()


@functools.cache
def _with_capabilities(probe: bool, reveal: bool) -> type[FakeAdapter]:
    """The fake with ``CAN_PROBE`` / ``CAN_REVEAL`` as its ``probe`` / ``reveal`` options say
    (the contract declares capabilities per class; the fake's depend on its options)."""
    return type("FakeAdapter", (FakeAdapter,), {"CAN_PROBE": probe, "CAN_REVEAL": reveal,
                                                "__module__": __name__})
