"""One contract test over every registered adapter (built-ins register like third parties).

Metadata: every action is a known kind on the right kill point, declares permissions and a
schema, and reversible actions name an inverse the adapter offers.

Lifecycle, for every registered adapter on its real backend or stand-in (one case each in
``tests/contract/cases.py``), each step checked against the backend's state as the test reads
it without the adapter:

1. plan makes no write (state unchanged; an HTTP stand-in received only GETs);
2. apply, then verify passes, and the kill is visible in the backend;
3. a second plan is a no-op and a re-apply changes nothing;
4. the inverse restores the exact prior state, or raises UndoUnsupported when the action is
   irreversible (notifications: the inverse sends the all-clear);
5. faults (stand-in 503 and 429 + Retry-After, connection refused, a missing backend) raise
   only AdapterError subclasses, retryable exactly when a retry can help, and leave nothing
   half-applied: once the fault is gone the same change converges;
6. no secret (key value, token, webhook URL, routing key) appears in any Change, Verdict,
   error or undo data.

Apply goes through :func:`call_apply`, which also serves the coming contract where apply takes
the state read just before it.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.base import (
    KILL_POINTS,
    NOOP,
    Adapter,
    Change,
    adapter_names,
    load_adapter_class,
)
from console.errors import AdapterError, UndoUnsupported
from tests.contract.cases import BUILDERS, UNDO_EXACT, UNDO_NONE, UNDO_NOTIFY, Case, build

REPO = Path(__file__).resolve().parents[2]


def test_builtin_adapters_are_registered() -> None:
    assert {"vault", "flagfile", "fake"} <= set(adapter_names())


@pytest.mark.parametrize("name", adapter_names())
def test_adapter_metadata(name: str) -> None:
    cls = load_adapter_class(name)
    assert cls.name == name
    assert cls.ACTIONS, f"{name} offers no action"
    for kind, spec in cls.ACTIONS.items():
        assert spec.kind == kind
        assert kind in KILL_POINTS, f"{name}: {kind} is not an action kind runbooks know"
        assert spec.kill_point == KILL_POINTS[kind]
        assert spec.permissions, f"{name}: {kind} declares no permissions"
        assert "properties" in spec.schema, f"{name}: {kind} has no reference schema"
        if spec.reversible and spec.inverse:
            assert spec.inverse in cls.ACTIONS, f"{name}: inverse {spec.inverse} not offered"
    assert cls.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("name", adapter_names())
def test_constructor_does_no_io(name: str) -> None:
    # a backend that does not exist and no credentials: constructing must still succeed
    cls = load_adapter_class(name)
    adapter = cls("nowhere", {"url": "http://127.0.0.1:9", "path": "/nonexistent/flags.json",
                              "token_env": "KS_CONTRACT_NO_SUCH_VAR", "unknown_option": 1})
    assert adapter.backend == "nowhere"


def test_adapters_import_only_the_contract_from_console() -> None:
    allowed = {"console.errors"}
    for path in (REPO / "adapters").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("console"):
                assert node.module in allowed, f"{path.name} imports {node.module}"




# -- lifecycle over every adapter -----------------------------------------------------------

def call_apply(adapter: Adapter, change: Change) -> dict[str, Any]:
    """``apply(change)``, or ``apply(change, read(change))`` once apply takes the current state."""
    if len(inspect.signature(adapter.apply).parameters) == 2:
        return adapter.apply(change, adapter.read(change))  # type: ignore[call-arg]
    return adapter.apply(change)


class Seen:
    """Everything an adapter said during a test, checked for secrets at the end."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]
        self.texts: list[str] = []

    def add(self, *items: Any) -> None:
        for item in items:
            if isinstance(item, Change):
                self.texts.append(json.dumps(item.to_dict(), default=str))
            elif isinstance(item, BaseException):
                self.texts.append(f"{item!s} {item!r} {getattr(item, 'hint', '')} "
                                  f"{getattr(item, 'where', '')} {getattr(item, 'title', '')}")
            elif is_dataclass(item) and not isinstance(item, type):
                self.texts.append(json.dumps(asdict(item), default=str))
            elif isinstance(item, list | tuple):
                self.add(*item)
            else:
                self.texts.append(json.dumps(item, default=str))

    def check(self) -> None:
        joined = "\n".join(self.texts)
        for secret in self.secrets:
            assert secret not in joined, (
                f"a secret ({secret[:4]}…, {len(secret)} chars) appears in adapter output: "
                + next(t for t in self.texts if secret in t)[:300].replace(secret, "<SECRET>"))


@pytest.fixture(params=adapter_names())
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> Iterator[Case]:
    """The registered adapter's case on its backend (fails for an adapter without one)."""
    name = request.param
    assert name in BUILDERS, f"adapter {name!r} has no contract case in tests/contract/cases.py"
    yield from build(name, request, monkeypatch, tmp_path)


def test_every_registered_adapter_has_a_case() -> None:
    assert set(adapter_names()) <= set(BUILDERS)


def _kill_writes(case: Case) -> list[str]:
    return case.writes() if case.writes else []


def test_lifecycle(case: Case) -> None:
    a, seen = case.adapter, Seen(case.secrets)
    original = case.observe()
    assert not case.killed(original), "the target must start live"

    # 1. plan is read-only
    changes = a.plan(case.action, case.ref, case.ctx)
    seen.add(changes)
    assert changes and all(c.status == "observed" for c in changes), \
        [(c.status, c.note) for c in changes]
    assert all(c.adapter == a.name and c.backend == a.backend and c.action == case.action
               for c in changes)
    assert case.observe() == original, "plan must not change anything"
    assert _kill_writes(case) == [], "plan must send only reads"
    if case.undo == UNDO_NONE:
        assert not any(c.reversible for c in changes), "an irreversible action says so"

    # 2. apply, verify, and the backend shows it
    applied = [call_apply(a, c) for c in changes]
    seen.add(applied)
    for c in changes:
        verdict = a.verify(c)
        seen.add(verdict)
        assert verdict.ok, verdict
        if case.readback:
            assert a.read(c) == c.after
    killed = case.observe()
    assert case.killed(killed), f"the backend does not show the kill: {killed}"

    # 3. a second plan is a no-op; a re-apply is harmless
    again = a.plan(case.action, case.ref, case.ctx)
    seen.add(again)
    if case.replan_noop:
        assert all(c.status == NOOP for c in again), [(c.status, c.note) for c in again]
    seen.add([call_apply(a, c) for c in changes])
    for c in changes:
        assert a.verify(c).ok
    if case.reapply_same:
        assert case.observe() == killed, "a re-apply must change nothing"

    # 4. undo
    if case.undo == UNDO_NONE:
        for c, data in zip(changes, applied, strict=True):
            with pytest.raises(UndoUnsupported) as err:
                a.inverse(c, data)
            seen.add(err.value)
        assert case.killed(case.observe())
    elif case.undo == UNDO_EXACT:
        inverses = []
        for c, data in zip(changes, applied, strict=True):
            inv = a.inverse(c, data)
            inverses.append(inv)
            seen.add(inv)
            assert inv.before == c.after and inv.after == c.before
            assert inv.inverse_of == c.op_id
            seen.add(call_apply(a, inv))
            verdict = a.verify(inv)
            seen.add(verdict)
            assert verdict.ok, verdict
            assert a.read(c) == c.before
        assert case.observe() == original, "undo must restore the exact prior state"
        for inv in inverses:  # undo is idempotent too
            seen.add(call_apply(a, inv))
        assert case.observe() == original, "a second undo must change nothing"
    else:  # UNDO_NOTIFY: the all-clear / resolve goes out, and cannot itself be undone
        assert case.undo == UNDO_NOTIFY
        for c, data in zip(changes, applied, strict=True):
            inv = a.inverse(c, data)
            seen.add(inv)
            assert inv.inverse_of == c.op_id and inv.action == c.action
            seen.add(call_apply(a, inv))
            verdict = a.verify(inv)
            seen.add(verdict)
            assert verdict.ok, verdict
            with pytest.raises(UndoUnsupported) as err:
                a.inverse(inv, {})
            seen.add(err.value)
        assert case.cleared is not None
        after = case.observe()
        assert case.cleared(after), f"the all-clear did not arrive: {after}"
    seen.check()


def _call(phase: str, adapter: Adapter, case: Case, change: Change) -> Any:
    if phase == "plan":
        return adapter.plan(case.action, case.ref, case.ctx)
    if phase == "apply":
        return call_apply(adapter, change)
    return adapter.read(change)


def test_faults_raise_typed_errors_and_converge(case: Case) -> None:
    a, seen = case.adapter, Seen(case.secrets)
    assert case.faults, "every case injects at least one fault"
    original = case.observe()
    changes = [c for c in a.plan(case.action, case.ref, case.ctx) if c.actionable]
    assert changes
    for fault in case.faults:
        broken = fault.adapter()
        fault.on()
        try:
            for phase in fault.calls:
                with pytest.raises(AdapterError) as err:
                    _call(phase, broken, case, changes[0])
                exc = err.value
                seen.add(exc)
                what = f"{fault.label}, {phase}: {type(exc).__name__}: {exc}"
                assert exc.retryable is fault.retryable, what
                if fault.status is not None:
                    assert exc.status == fault.status, what
                if fault.retry_after is not None:
                    assert exc.retry_after == fault.retry_after, what
        finally:
            fault.off()
            if broken is not a:
                broken.close()
        assert case.observe() == original, f"{fault.label}: nothing may be half-applied"
    # the fault is gone: the very same change converges
    for c in changes:
        seen.add(call_apply(a, c))
        verdict = a.verify(c)
        seen.add(verdict)
        assert verdict.ok, verdict
    assert case.killed(case.observe())
    seen.check()


def test_only_adapter_errors_escape(case: Case) -> None:
    a, seen = case.adapter, Seen(case.secrets)
    foreign = sorted(set(KILL_POINTS) - set(a.ACTIONS))
    if foreign:  # an action the adapter does not offer
        with pytest.raises(AdapterError) as err:
            a.plan(foreign[0], case.ref, case.ctx)
        seen.add(err.value)
    if case.bad_ref is not None:  # a missing or malformed target
        with pytest.raises(AdapterError) as err:
            a.plan(case.action, case.bad_ref, case.ctx)
        seen.add(err.value)
    assert foreign or case.bad_ref is not None
    seen.check()
