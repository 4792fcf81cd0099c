"""Seeded fuzzing of configs, inventories, runbooks and saved plans (issue 8, part 5).

The engine is ``benchmarks/fuzz.py`` (which runs 10,000 cases); here a few hundred seeded
cases run in-process through the loaders the CLI uses, and a handful through the real
``killswitch`` executable. A case fails on any traceback, on a refusal whose exit code is
not 2 or whose message does not name the file, and on the CLI exiting outside 0-3 or
without a message. A last-resort "internal error" handler in the CLI, if one is ever added,
counts as a traceback: it would hide exactly the bugs this test is here to find.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from console.errors import RunbookValidationError
from console.when import compile_when

ROOT = Path(__file__).resolve().parents[2]
SEED = 20250805
CASES = 300
"""In-process cases: about 3 s on an idle machine, well under 60 s on a loaded one."""


def _load_engine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ks_fuzz", ROOT / "benchmarks" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ks_fuzz"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


fuzz = _load_engine()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[object]:
    yield fuzz.Workspace(tmp_path)


def test_seeded_fuzz_in_process(tmp_path: Path) -> None:
    report = fuzz.run_fuzz(SEED, CASES, root=tmp_path)
    assert not report.tracebacks and not report.unexpected, (
        f"{report.summary()}\n{report.failures(20)}")
    statuses = {(o.case.target, o.status) for o in report.outcomes}
    for target in fuzz.TARGETS:  # every target was damaged, and refused at least once
        assert (target, "refused") in statuses, report.breakdown()
    refused = sum(o.status == "refused" for o in report.outcomes)
    assert refused > CASES // 2, report.breakdown()  # the mutations do break things


def _cases_refused_in_process(ws: object, per_file: int) -> list[object]:
    """``cli`` cases that exit 2 in-process: a few for each kind of file."""
    rng = random.Random(SEED)
    picked: dict[str, list[object]] = {}
    for i in range(400):
        case = fuzz.make_case(rng, i, ws, "cli")
        if case.file_target == "config" and case.mutations == ["selector"]:
            continue
        bucket = picked.setdefault(case.file_target, [])
        if len(bucket) >= per_file:
            continue
        outcome = fuzz.run_case(ws, case)
        assert not outcome.failed, f"{case.describe()}\n{outcome.detail}"
        if outcome.detail.startswith("exit 2:"):
            bucket.append(case)
        if sum(len(b) for b in picked.values()) >= 4 * per_file:
            break
    return [c for bucket in picked.values() for c in bucket]


def test_seeded_fuzz_through_the_real_executable(ws: object) -> None:
    cases = _cases_refused_in_process(ws, per_file=2)
    assert {c.file_target for c in cases} == {"config", "inventory", "runbook", "plan"}
    for case in cases:
        outcome = fuzz.subprocess_outcome(ws, case)
        assert not outcome.failed, f"{case.describe()}\n{outcome.detail}"
        assert outcome.detail.startswith("exit 2: error:"), (case.describe(), outcome.detail)


def test_the_judge_counts_what_it_must(ws: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash, a last-resort handler and a wrong exit code all fail a case."""
    case = fuzz.Case(0, "cli", ["none"], argv=["inventory", "list"])
    assert fuzz.cli_outcome(case, None, "", "Traceback (most recent call last):\n").failed
    hidden = fuzz.cli_outcome(case, 1, "", "error: internal error (KeyError); see the trail\n")
    assert hidden.status == "traceback"
    assert fuzz.cli_outcome(case, 4, "", "error: x\n").status == "unexpected"
    assert fuzz.cli_outcome(case, 2, "", "").status == "unexpected"
    assert fuzz.cli_outcome(case, 2, "", "error: x\n  hint: y\n").status == "refused"

    def broken(*_args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(fuzz, "_consume_plan", broken)
    plan_case = fuzz.Case(1, "plan", ["none"], ws.plan_text, "plan")
    assert fuzz.run_case(ws, plan_case).status == "traceback"


WHEN_TOKENS = ("env", "status", "tags", "data_classes", "id", "foo", "'prod'", "'x'",
               "['a', 'b']", "==", "!=", "in", "not in", "not", "and", "or", "(", ")", "[",
               "]", ",", "is", "<", "+", "1", "None", "lambda", ":", "f'{env}'", "env.x",
               "len(tags)", "'customer'", "'mars'", "...", "**", ";", "\\", "\x00", "é")


WHEN_LEFT = ("env", "environment", "status", "id", "'customer'", "'prod'", "tags", "foo")
WHEN_OPS = ("==", "!=", "in", "not in", "<", "is")
WHEN_RIGHT = ("'prod'", "'mars'", "'approved'", "data_classes", "tags", "['a', 'b']", "env",
              "[]", "1", "('x',)")
WHEN_JOINS = (" and ", " or ", " and not ")


def test_when_conditions_never_crash() -> None:
    """Random token soup compiles or is refused; what compiles evaluates to a bool."""
    rng = random.Random(SEED)
    facts = {"environment": "prod", "status": "approved", "tags": ["a"], "id": "app-0",
             "data_classes": ["customer"]}
    compiled = 0
    for i in range(2000):
        if i % 2:  # token soup
            expr = " ".join(rng.choice(WHEN_TOKENS) for _ in range(rng.randint(1, 12)))
        else:  # comparisons joined by and / or, mostly well-formed
            expr = rng.choice(WHEN_JOINS).join(
                " ".join((rng.choice(WHEN_LEFT), rng.choice(WHEN_OPS), rng.choice(WHEN_RIGHT)))
                for _ in range(rng.randint(1, 4)))
        try:
            when = compile_when(expr)
        except RunbookValidationError as exc:
            assert exc.exit_code == 2 and "invalid when" in exc.msg
            continue
        compiled += 1
        assert when.evaluate(facts) in (True, False)
    assert compiled > 20
    for deep in ("not " * 240 + "env == 'prod'", "(" * 300 + "env" + ")" * 300):
        try:
            compile_when(deep).evaluate(facts)
        except RunbookValidationError:
            pass
