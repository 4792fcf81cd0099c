"""Fuzz the parsers of untrusted input: configs, inventories, runbooks and saved plans.

Every case takes a valid file, damages it (random byte flips, deletions, duplicated lines,
type swaps, deep nesting, huge numbers, long dotted keys, invalid UTF-8, a plan replaced by
``[]`` / ``null`` / ``"x"``, plans rehashed after an edit...) and feeds it to the code the
CLI runs on it. A case passes when the input is accepted, or refused with a
:class:`~console.errors.ConsoleError` of exit code 2 whose message names the file. It fails
as a **traceback** when any other exception escapes (or the CLI's last-resort handler, if one
is ever added, prints "internal error"), and as an **unexpected exit** when a refusal has
another exit code, or does not name the file, or the CLI exits with anything but 0-3, or
exits non-zero without a message.

Most cases call the loaders in-process (``load_config``, ``load_runbook``,
``read_plan_file`` + ``Plan.from_dict`` + ``render_plan``, ``Plan.load``, ``select``) and
what the CLI does with what they accept (lint, JSON output, ``when`` conditions); a share
runs ``console.cli.main`` in-process (``inventory lint|list|show``, ``run --plan FILE
--dry-run``, ``run RUNBOOK ID --dry-run``) and ``--subprocess N`` adds cases through the
real ``killswitch`` executable. Nothing is ever applied: only read-only commands run.

    .venv/bin/python benchmarks/fuzz.py [--seed 1] [--cases 10000] [--subprocess 20]

prints ``fuzz: 10000 cases, 0 tracebacks, 0 unexpected exits, 37.2 s`` and, for each
failure, its target, mutations and the end of its traceback (``--show N``). Exit 1 when any
case failed. The same engine runs a few hundred seeded cases in ``tests/unit/test_fuzz.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TARGETS",
    "Case",
    "Outcome",
    "Report",
    "Workspace",
    "cli_outcome",
    "make_case",
    "run_case",
    "run_fuzz",
    "subprocess_outcome",
]

TARGETS: tuple[str, ...] = ("config", "inventory", "runbook", "plan", "selector", "cli")
"""What a case damages or drives; ``cli`` runs ``console.cli.main`` in-process (and
``engine`` cases, only with ``--engine N``, run a dry-run on a damaged config)."""
WEIGHTS: tuple[int, ...] = (30, 10, 20, 30, 4, 6)
"""Relative share of each target."""

# --------------------------------------------------------------------------- the corpus

CONFIG = """\
# fuzz corpus: every field kind a config has
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_targets = 10
default_timeout = 5.0
max_attempts = 2
operator = "fuzzer"
incident = "INC-1"
proof_window = 0.0
proof_interval = 0.5

[settings.keymap]
"inventory.mark" = "x"

[sandbox]
dir = ".sandbox"
openbao_port = 8299
ports = { openai = 8381 }

[backends.sim]
type = "fake"
latency = 0.0
state_file = "fake-state.json"
max_concurrency = 4
rate_per_second = 50.0
timeout = 5

[backends.flags]
type = "flagfile"
path = "flags.json"

[[integrations]]
id = "app-0"
name = "Support assistant"
owner = "team-support"
environment = "prod"
status = "approved"
provider = "openai"
tenants = ["eu", "us"]
region = "eu-west-1"
models = ["gpt-4o"]
endpoint_mode = ["sync", "batch"]
data_classes = ["customer", "personal"]
approval_record = "https://example.test/review/1"
review_due = 2031-01-31
tags = ["tier-1", "chat"]
kill_switch_owner = { name = "Priya N.", role = "lead", how = "slack:#support" }

[[integrations.credentials]]
backend = "sim"
key = "app-0-key"
label = "provider key"

[[integrations.flags]]
backend = "sim"
key = "app-0-flag"

[[integrations.contacts]]
name = "Vendor support"
how = "email:support@example.test"

[[integrations]]
id = "app-1"
name = "Code review bot"
owner = "team-dev"
environment = "staging"
provider = "anthropic"
data_classes = ["source-code"]
tags = ["tier-2"]

[[integrations.credentials]]
backend = "sim"
key = "app-1-key"

[[integrations]]
id = "app-2"
name = "Batch summariser"
owner = "team-data"
environment = "prod"
status = "prototype"
provider = "openai"

[[integrations.flags]]
backend = "sim"
key = "app-2-flag"
"""

INVENTORY_CONFIG = """\
[settings]
audit_db = "audit-inv.db"
runbook_dirs = ["runbooks"]
inventory = "inventory.toml"

[backends.sim]
type = "fake"
state_file = "fake-state.json"
"""

INVENTORY = """\
[[integrations]]
id = "inv-0"
name = "Search assistant"
owner = "team-search"
environment = "dev"
provider = "vertex"
data_classes = ["internal"]
review_due = 2030-06-01
kill_switch_owner = { name = "Sam", how = "phone:+1-555-0100" }

[[integrations.credentials]]
backend = "sim"
key = "inv-0-key"

[[integrations.flags]]
backend = "sim"
key = "inv-0-flag"

[[integrations]]
id = "inv-1"
name = "Translator"
owner = "team-i18n"
environment = "prod"
provider = "anthropic"
tags = ["tier-1"]
"""

RUNBOOK = """\
name = "fuzz"
description = "every step field: needs, when, timeout, on_error, options"

[[steps]]
id = "flags-off"
action = "flag.disable"
timeout = 5
on_error = "continue"

[[steps]]
id = "revoke"
action = "credential.disable"
needs = ["flags-off"]
when = "environment == 'prod' and 'customer' in data_classes or status != 'suspended'"
timeout = 5.5
on_error = "stop"

[steps.options]
comment = "fuzz"
"""

SELECTOR_PARTS: tuple[str, ...] = (
    "app-0", "app-1", "nobody", "", " ", "=", "env=prod", "env=", "env=prod,staging",
    "env=mars", "ENV=PROD", "provider=openai", "provider=openai,anthropic", "tag=tier-1",
    "data_class=customer", "data_class=bogus", "status=approved", "owner=team-dev",
    "id=app-2", "colour=red", "env=prod=dev", "\x00", "é", "a" * 3000, "env=" + "," * 50,
    "tag=\ud800", "provider=" + "x" * 5000,
)


def _valid_plan() -> dict[str, Any]:
    """A plan as ``Plan.to_json`` writes it: steps, changes of every status, notes."""
    from adapters.base import Change
    from console.engine.model import Plan, StepInfo

    def change(n: int, integ: str, step: str, action: str, key: str, **kw: Any) -> Change:
        return Change(f"{integ}/{step}/{n}", integ, step, action, "sim", "fake",
                      f"sim:{key}", {"backend": "sim", "key": key}, {"switch": "on"},
                      {"switch": "off"}, undo={"key": key, "was": "on"}, **kw)

    plan = Plan(
        run_id="r-20250101-000000-abcd", runbook="contain", selectors=["env=prod"],
        integrations=["app-0", "app-2"],
        steps=[StepInfo("flags-off", "flag.disable", [], "continue", 5.0),
               StepInfo("revoke", "credential.disable", ["flags-off"], "stop", None)],
        changes=[change(0, "app-0", "flags-off", "flag.disable", "app-0-flag"),
                 change(0, "app-0", "revoke", "credential.disable", "app-0-key",
                        note="irreversible", reversible=False),
                 change(0, "app-2", "flags-off", "flag.disable", "app-2-flag",
                        status="noop"),
                 change(0, "app-2", "revoke", "credential.disable", "app-2-key",
                        status="error", error="fake: 503\nretry later")],
        notes=["app-2: step revoke skipped (when: env == 'dev')"],
        config="config.toml")
    return json.loads(plan.to_json())  # type: ignore[no-any-return]


CONTAIN = """\
name = "contain"
description = "flags off, then credentials"
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "revoke"
action = "credential.disable"
needs = ["flags-off"]
"""


class Workspace:
    """A folder with valid inputs, and the mutated file of the current case.

    Args:
        root: An empty folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "runbooks").mkdir(parents=True, exist_ok=True)
        self.config = root / "config.toml"
        self.config_text = CONFIG.encode()
        self.config.write_bytes(self.config_text)
        self.inv_config = root / "config-inv.toml"
        self.inv_config.write_text(INVENTORY_CONFIG)
        self.inventory = root / "inventory.toml"
        self.inventory_text = INVENTORY.encode()
        self.inventory.write_bytes(self.inventory_text)
        self.runbook = root / "runbooks" / "fuzz.toml"
        self.runbook_text = RUNBOOK.encode()
        self.runbook.write_bytes(self.runbook_text)
        (root / "runbooks" / "contain.toml").write_text(CONTAIN)
        self.plan = root / "plan.json"
        self.plan_data = _valid_plan()
        self.plan_text = json.dumps(self.plan_data, indent=2, sort_keys=True).encode()
        self.plan.write_bytes(self.plan_text)

    def reset(self) -> None:
        """Put every valid input back."""
        self.config.write_bytes(self.config_text)
        self.inventory.write_bytes(self.inventory_text)
        self.runbook.write_bytes(self.runbook_text)
        self.plan.write_bytes(self.plan_text)

    def path_of(self, target: str) -> Path:
        """The file a target damages."""
        return {"config": self.config, "inventory": self.inventory, "runbook": self.runbook,
                "plan": self.plan}[target]

    def text_of(self, target: str) -> bytes:
        """The valid bytes of a target's file."""
        return {"config": self.config_text, "inventory": self.inventory_text,
                "runbook": self.runbook_text, "plan": self.plan_text}[target]


# --------------------------------------------------------------------------- mutations

Mutator = Callable[[random.Random, bytes], bytes]

INVALID_UTF8: tuple[bytes, ...] = (
    b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80",
    b"\xc0\xaf", b"\x80", b"\xef\xbb\xbf",
)
TOML_VALUES: tuple[str, ...] = (
    '"x"', '""', "0", "-1", "1.5", "true", "false", "[]", '["a", 1]', "{}", "{ a = 1 }",
    "[{ b = 2 }]", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "nan", "inf", "-inf",
    "9" * 5000, "9" * 4300, "9" * 19, "-9" + "9" * 18, "0x" + "f" * 3000, "0b" + "1" * 70,
    "1e999", "-0.0", '"\\u0000"', '"~nosuchuser/x"', '"' + "a" * 5000 + '"', '"/dev/zero"',
    '"."', '"../.."', '"\\ud800"', '"é"', "'''\nmulti\n'''", '"""\nmulti\n"""',
    '"flag.disabel"', '"credential.disable"', '"prod"', '"restore"', '"stop"',
)
JSON_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, 1e308, 10**30, -(10**30), "", "x", "yes", "true", "1",
    [], {}, [1], ["a"], {"a": 1}, [{}], "\u0000", "é", "a" * 5000, "\x1b[2J", "stop",
    "observed", "noop", "credential.disable", "app-0", "flags-off", "revoke",
)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    """Flip one random bit in each of 1-8 random bytes."""
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def delete_span(rng: random.Random, data: bytes) -> bytes:
    """Delete 1-40 bytes somewhere."""
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 40):]


def delete_line(rng: random.Random, data: bytes) -> bytes:
    """Delete one line."""
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(rng: random.Random, data: bytes) -> bytes:
    """Repeat one line (duplicate keys, duplicate tables)."""
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\n".join(lines)


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    """Exchange two lines."""
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def truncate(rng: random.Random, data: bytes) -> bytes:
    """Cut the file short."""
    return data[: rng.randrange(len(data) + 1)]


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    """Insert random bytes (control characters and high bytes included)."""
    i = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    return data[:i] + junk + data[i:]


def invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    """Insert a byte sequence that is not UTF-8 (or cut a multi-byte character)."""
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(INVALID_UTF8) + data[i:]


def _value_lines(data: bytes) -> list[int]:
    return [n for n, line in enumerate(_lines(data))
            if b"=" in line and not line.lstrip().startswith((b"#", b"["))]


def toml_type_swap(rng: random.Random, data: bytes) -> bytes:
    """Replace the value of a ``key = value`` line by a value of another type."""
    lines = _lines(data)
    candidates = _value_lines(data)
    if not candidates:
        return data
    n = rng.choice(candidates)
    key = lines[n].split(b"=", 1)[0]
    lines[n] = key + b"= " + rng.choice(TOML_VALUES).encode()
    return b"\n".join(lines)


def toml_deep_nest(rng: random.Random, data: bytes) -> bytes:
    """Nest inline arrays or tables 31 to 5,000 levels deep, as a new key or a value."""
    depth = rng.choice((31, 33, 100, 399, 400, 401, 1000, 5000))
    opener, closer = rng.choice((("[", "]"), ("{a=", "}"), ("[{a=", "}]")))
    value = opener * depth + ("1" if "=" in opener else "") + closer * depth
    if "{" in opener and "[" in opener:
        value = opener * depth + "1" + closer * depth
    lines = _lines(data)
    candidates = _value_lines(data)
    if candidates and rng.random() < 0.5:
        n = rng.choice(candidates)
        lines[n] = lines[n].split(b"=", 1)[0] + b"= " + value.encode()
    else:
        lines.insert(rng.randrange(len(lines) + 1), f"deep = {value}".encode())
    return b"\n".join(lines)


def toml_dotted_key(rng: random.Random, data: bytes) -> bytes:
    """Add a dotted key (or table header) of 2 to 3,000 parts."""
    parts = rng.choice((2, 31, 33, 400, 999, 1000, 1001, 3000))
    key = ".".join(rng.choice(("k", "settings", "integrations", '"q"')) for _ in range(parts))
    line = f"[{key}]" if rng.random() < 0.3 else f"{key} = 1"
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), line.encode())
    return b"\n".join(lines)


def toml_huge_number(rng: random.Random, data: bytes) -> bytes:
    """Replace a value by a number no config holds."""
    lines = _lines(data)
    candidates = _value_lines(data)
    if not candidates:
        return data
    n = rng.choice(candidates)
    value = rng.choice(("9" * 5000, "-" + "9" * 4400, "1" + "_000" * 2000, "9" * 19,
                        "0x" + "f" * 5000, "0o" + "7" * 3000, "1e999", "-1e999", "1e-999",
                        "9" * 4300, "9" * 4301))
    lines[n] = lines[n].split(b"=", 1)[0] + b"= " + value.encode()
    return b"\n".join(lines)


def toml_header_swap(rng: random.Random, data: bytes) -> bytes:
    """Turn an array-of-tables header into a table header, or the other way round."""
    lines = _lines(data)
    headers = [n for n, line in enumerate(lines) if line.startswith(b"[")]
    if not headers:
        return data
    n = rng.choice(headers)
    line = lines[n]
    lines[n] = line[1:-1] if line.startswith(b"[[") else b"[" + line + b"]"
    return b"\n".join(lines)


WHEN_TOKENS: tuple[str, ...] = (
    "env", "environment", "status", "tags", "data_classes", "id", "name", "models", "foo",
    "__import__", "'prod'", "'dev'", "'x'", "'customer'", "'mars'", '"q"', "['a', 'b']", "[]",
    "==", "!=", "in", "not in", "not", "and", "or", "is", "<", "+", "(", ")", "[", "]", ",",
    "lambda", ":", "if", "else", "f'{env}'", "1", "None", "...", "*", "**", ":=", ";", "\\",
    "b'x'", "env.name", "env[0]", "len(tags)",
)


def when_soup(rng: random.Random, data: bytes) -> bytes:
    """Replace a ``when`` condition by a random token sequence (or add one to a step)."""
    expr = " ".join(rng.choice(WHEN_TOKENS) for _ in range(rng.randint(1, 25)))
    if rng.random() < 0.1:
        expr = "not " * rng.randint(50, 200) + "env == 'prod'"
    line = b"when = " + json.dumps(expr).encode()
    lines = _lines(data)
    whens = [n for n, text in enumerate(lines) if text.startswith(b"when")]
    if whens:
        lines[rng.choice(whens)] = line
    else:
        steps = [n for n, text in enumerate(lines) if text.startswith(b"[[steps]]")]
        if not steps:
            return data
        lines.insert(rng.choice(steps) + 1, line)
    return b"\n".join(lines)


TEXT_MUTATORS: tuple[Mutator, ...] = (
    flip_bits, delete_span, delete_line, duplicate_line, swap_lines, truncate, insert_bytes,
    invalid_utf8,
)
TOML_MUTATORS: tuple[Mutator, ...] = (
    toml_type_swap, toml_type_swap, toml_deep_nest, toml_dotted_key, toml_huge_number,
    toml_header_swap, when_soup,
)


# -- plans (JSON): structural edits on the parsed plan, then rehashed or not


def _paths(node: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield loc
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*loc, i))


def _set(doc: Any, loc: tuple[Any, ...], value: Any) -> Any:
    if not loc:
        return value
    parent = doc
    for part in loc[:-1]:
        parent = parent[part]
    parent[loc[-1]] = value
    return doc


def _rehash(doc: Any) -> None:
    from console.engine.model import Plan

    if isinstance(doc, dict):
        body = {k: v for k, v in doc.items() if k not in ("hash", "signature")}
        doc["hash"] = Plan.hash_of(body)


DEEP = "__FUZZ_DEEP__"


def json_edit(rng: random.Random, doc: Any) -> Any:
    """One structural edit: swap a value's type, delete, add or duplicate a field."""
    locs = [loc for loc in _paths(doc) if loc]
    if not locs:
        return rng.choice(JSON_VALUES)
    loc = rng.choice(locs)
    roll = rng.random()
    if roll < 0.55:
        return _set(doc, loc, copy.deepcopy(rng.choice(JSON_VALUES)))
    parent = doc
    for part in loc[:-1]:
        parent = parent[part]
    if roll < 0.7:
        del parent[loc[-1]]
    elif roll < 0.8 and isinstance(parent, dict):
        parent[rng.choice(("extra", "signature", "hash", "kind", "id"))] = rng.choice(
            JSON_VALUES)
    elif isinstance(parent, list):
        parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(parent[loc[-1]]))
    else:
        parent[loc[-1]] = DEEP
    return doc


def plan_semantic(rng: random.Random, doc: dict[str, Any]) -> str:
    """An edit that keeps every type right but breaks what the executor relies on."""
    steps, changes = doc["steps"], doc["changes"]
    kind = rng.choice(("steps-reversed", "needs-self", "needs-unknown", "dup-integration",
                       "dup-step", "dup-change", "change-step", "change-integration",
                       "version", "runbook-path", "status"))
    if kind == "steps-reversed":
        steps.reverse()
    elif kind == "needs-self":
        steps[-1]["needs"] = [steps[-1]["id"]]
    elif kind == "needs-unknown":
        steps[-1]["needs"] = ["nope"]
    elif kind == "dup-integration":
        doc["integrations"].append(doc["integrations"][0])
    elif kind == "dup-step":
        steps.append(copy.deepcopy(steps[0]))
    elif kind == "dup-change":
        changes.append(copy.deepcopy(changes[0]))
    elif kind == "change-step":
        rng.choice(changes)["step"] = "nope"
    elif kind == "change-integration":
        rng.choice(changes)["integration"] = "nobody"
    elif kind == "version":
        doc["version"] = rng.choice((0, 2, 99, -1))
    elif kind == "runbook-path":
        doc["runbook"] = rng.choice(("../../etc/passwd.toml", "/tmp/x.toml", "a\nb", ""))
    else:
        rng.choice(changes)["status"] = rng.choice(("applied", "OBSERVED", "", "noop "))
    return kind


def plan_mutation(rng: random.Random, ws: Workspace) -> tuple[bytes, list[str]]:
    """A damaged plan file and the names of what was done to it."""
    roll = rng.random()
    if roll < 0.1:
        whole = rng.choice((b"[]", b"null", b'"x"', b"1", b"true", b"{}", b"", b"  ",
                            b"\xef\xbb\xbf{}", b"{", b'{"version": 1}', b"[" * 100000))
        return whole, ["whole-file"]
    doc: Any = copy.deepcopy(ws.plan_data)
    names: list[str] = []
    if rng.random() < 0.2:
        names.append(plan_semantic(rng, doc))
    else:
        for _ in range(rng.randint(1, 3)):
            doc = json_edit(rng, doc)
            names.append("json-edit")
    if rng.random() < 0.8:
        _rehash(doc)
        names.append("rehashed")
    text = json.dumps(doc, indent=2, sort_keys=True)
    if DEEP in text or rng.random() < 0.15:
        depth = rng.choice((30, 63, 64, 65, 100, 999, 1001, 5000, 100000))
        deep = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + \
            "}" * depth
        if DEEP not in text:
            text = text.replace('"switch": "on"', f'"switch": "{DEEP}"', 1)
        text = text.replace(f'"{DEEP}"', deep)
        names.append(f"deep-{depth}")
    if rng.random() < 0.1:
        number = rng.choice(("9" * 5000, "1e999", "-1e999", "9" * 4300, "NaN", "Infinity"))
        text = text.replace('"version": 1', f'"version": {number}', 1) if rng.random() < 0.5 \
            else text.replace('"switch": "on"', f'"switch": {number}', 1)
        names.append("huge-number")
    data = text.encode()
    if rng.random() < 0.25:
        mut = rng.choice(TEXT_MUTATORS)
        data = mut(rng, data)
        names.append(mut.__name__)
    return data, names


def file_mutation(rng: random.Random, valid: bytes) -> tuple[bytes, list[str]]:
    """A damaged TOML file: 1-3 mutations, text-level or TOML-aware."""
    data, names = valid, []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        mut = rng.choice(TOML_MUTATORS if rng.random() < 0.55 else TEXT_MUTATORS)
        data = mut(rng, data)
        names.append(mut.__name__)
    return data, names


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One fuzz case.

    Attributes:
        index: Its number in the run (the run's seed and this number reproduce it).
        target: What it damages or drives (see :data:`TARGETS`).
        mutations: What was done to the input.
        data: The damaged file's bytes (file targets and ``cli``).
        file_target: The file ``data`` replaces (``cli``: the one its command reads).
        argv: The command (``cli``) or the selectors (``selector``).
    """

    index: int
    target: str
    mutations: list[str]
    data: bytes = b""
    file_target: str = ""
    argv: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: number, target, mutations, command."""
        what = f"#{self.index} {self.target}"
        if self.file_target and self.file_target != self.target:
            what += f"({self.file_target})"
        return f"{what} [{', '.join(self.mutations)}]" + (
            f" argv={self.argv!r}"[:200] if self.argv else "")


@dataclass
class Outcome:
    """What a case did.

    Attributes:
        case: The case.
        status: ``accepted``, ``refused`` (exit 2, file named), ``traceback`` or
            ``unexpected``.
        detail: The message, the exit code, or the end of the traceback.
    """

    case: Case
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        """A traceback or an unexpected exit."""
        return self.status in ("traceback", "unexpected")


CLI_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("config", ("inventory", "lint")),
    ("config", ("inventory", "list", "--json")),
    ("config", ("inventory", "show", "app-0")),
    ("inventory", ("inventory", "lint")),
    ("runbook", ("run", "fuzz", "app-0", "--dry-run")),
    ("plan", ("run", "--plan", "{plan}", "--dry-run")),
    ("selector", ("inventory", "show", "{selector}")),
)


def make_case(rng: random.Random, index: int, ws: Workspace, target: str | None = None) -> Case:
    """Draw one case (``target`` forces what it damages)."""
    target = target or rng.choices(TARGETS, WEIGHTS)[0]
    if target == "selector":
        sels = [rng.choice(SELECTOR_PARTS) for _ in range(rng.randint(1, 3))]
        return Case(index, target, ["selectors"], argv=sels)
    if target == "cli":
        file_target, command = rng.choice(CLI_COMMANDS)
        argv = [a.replace("{plan}", str(ws.plan)) for a in command]
        if file_target == "selector":
            argv = [a.replace("{selector}", rng.choice(SELECTOR_PARTS)) for a in argv]
            return Case(index, target, ["selector"], file_target="config", argv=argv)
        data, names = (plan_mutation(rng, ws) if file_target == "plan"
                       else file_mutation(rng, ws.text_of(file_target)))
        return Case(index, target, names, data, file_target, argv)
    data, names = (plan_mutation(rng, ws) if target == "plan"
                   else file_mutation(rng, ws.text_of(target)))
    return Case(index, target, names, data, target)


# --------------------------------------------------------------------------- running


def _tail(exc: BaseException) -> str:
    lines = traceback.format_exception(exc)
    return "".join(lines[-6:])[-1500:]


def _refusal(case: Case, exc: BaseException, names: Sequence[str]) -> Outcome:
    """Judge a ConsoleError raised in-process: exit 2 naming the file."""
    from console.errors import ConsoleError

    assert isinstance(exc, ConsoleError)
    text = str(exc)
    if exc.exit_code != 2:
        return Outcome(case, "unexpected", f"exit code {exc.exit_code}: {text[:500]}")
    if names and not any(n in text for n in names):
        return Outcome(case, "unexpected", f"message names no file ({names}): {text[:500]}")
    return Outcome(case, "refused", text[:300])


def _consume_config(ws: Workspace, config_path: Path) -> None:
    """Load a config and do with it what the read-only commands do."""
    from console.config import load_config
    from console.inventory import lint, select

    config = load_config(config_path)
    lint(config)
    json.dumps([i.model_dump(mode="json") for i in config.integrations])
    for sel in (["env=prod"], ["provider=openai,anthropic"], ["tag=tier-1"]):
        select(config.integrations, sel)
    for integ in config.integrations:
        config.locate(("integrations", 0, "id"))
        integ.kill_point_lists()
        integ.all_contacts()


def _consume_runbook(ws: Workspace) -> None:
    from console.config import load_config
    from console.runbook import load_runbook

    config = load_config(ws.config)
    book = load_runbook("fuzz", config)
    for step in book.steps:
        for integ in config.integrations:
            step.applies_to(integ)


def _consume_plan(ws: Workspace) -> None:
    from console.engine.model import Plan
    from console.engine.planfile import read_plan_file
    from console.render import render_plan

    data = read_plan_file(ws.plan)
    plan = Plan.from_dict(data)
    render_plan(plan)
    render_plan(plan, dry_run=True)
    plan.to_json()
    Plan.load(ws.plan)  # what `run --plan` calls: hash (and signature) on top


def _consume_selectors(ws: Workspace, selectors: list[str]) -> None:
    from console.config import load_config
    from console.inventory import select, select_one

    integrations = load_config(ws.config).integrations
    select(integrations, selectors)
    select_one(integrations, selectors[0])  # what `inventory show` does


def run_case(ws: Workspace, case: Case) -> Outcome:
    """Run one case in-process (``cli`` cases through ``console.cli.main``)."""
    from console.errors import ConsoleError

    ws.reset()
    if case.target == "cli":
        if case.data:
            ws.path_of(case.file_target).write_bytes(case.data)
        config = ws.inv_config if case.file_target == "inventory" else ws.config
        return cli_outcome(case, *_run_main(["--config", str(config), *case.argv]))
    if case.target == "selector":
        names: list[str] = []
        action: Callable[[], None] = lambda: _consume_selectors(ws, case.argv)  # noqa: E731
    else:
        path = ws.path_of(case.target)
        path.write_bytes(case.data)
        names = [path.name]
        if case.target == "config":
            action = lambda: _consume_config(ws, ws.config)  # noqa: E731
        elif case.target == "inventory":
            names = [path.name, ws.inv_config.name]
            action = lambda: _consume_config(ws, ws.inv_config)  # noqa: E731
        elif case.target == "runbook":
            action = lambda: _consume_runbook(ws)  # noqa: E731
        else:
            action = lambda: _consume_plan(ws)  # noqa: E731
    try:
        action()
    except ConsoleError as exc:
        return _refusal(case, exc, names)
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer is looking for
        return Outcome(case, "traceback", _tail(exc))
    return Outcome(case, "accepted")


def _run_main(argv: list[str]) -> tuple[int | None, str, str]:
    """``console.cli.main(argv)`` in-process: exit code, stdout, stderr.

    An exception escaping ``main`` is what a process would print as a traceback: the code is
    None and the traceback is appended to stderr.
    """
    from console.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a traceback, as the process would print it
            code = None
            err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


def cli_outcome(case: Case, code: int | None, stdout: str, stderr: str) -> Outcome:
    """Judge a CLI run: no traceback, exit 0-3, and a message when not 0.

    The message is on stderr (``error: where: what`` + hint), except for ``inventory lint``,
    whose findings are its output.
    """
    if code is None or "Traceback (most recent call last)" in stderr:
        return Outcome(case, "traceback", stderr[-1500:])
    if "internal error" in stderr.lower():  # a last-resort handler was hit: still a bug
        return Outcome(case, "traceback", f"last-resort handler: {stderr[-1500:]}")
    if code not in (0, 1, 2, 3):
        return Outcome(case, "unexpected", f"exit code {code}: {stderr[-500:]}")
    if code != 0 and not stderr.strip() and not stdout.strip():  # lint reports on stdout
        return Outcome(case, "unexpected", f"exit code {code} without a message")
    return Outcome(case, "refused" if code else "accepted", f"exit {code}: {stderr[:300]}")


ENGINE_COMMAND: tuple[str, ...] = ("run", "contain", "app-0", "app-2", "--dry-run")
"""What ``--engine`` cases run on a damaged config: observe every target, change nothing."""


def killswitch_argv() -> list[str]:
    """The real entry point: the ``killswitch`` script next to this interpreter."""
    script = Path(sys.executable).with_name("killswitch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "console"]


def subprocess_outcome(ws: Workspace, case: Case, timeout: float = 120) -> Outcome:
    """Run a ``cli`` (or ``engine``) case through the real ``killswitch`` executable.

    A run that does not finish within ``timeout`` seconds is an unexpected exit (a hang).
    """
    ws.reset()
    if case.data:
        ws.path_of(case.file_target).write_bytes(case.data)
    config = ws.inv_config if case.file_target == "inventory" else ws.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}
    env["KILLSWITCH_OPERATOR"] = "fuzzer"
    # an argument holding a lone surrogate reaches the process as the bytes it encodes to;
    # no process can receive a NUL in an argument, so it is dropped
    argv = [a.encode("utf-8", "surrogatepass").replace(b"\0", b"")
            for a in (*killswitch_argv(), "--config", str(config), *case.argv)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, cwd=ws.root, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(case, "unexpected", f"still running after {timeout:g} s")
    return cli_outcome(case, proc.returncode, proc.stdout, proc.stderr)


def engine_case(rng: random.Random, index: int, ws: Workspace) -> Case:
    """A damaged config, then a dry-run that constructs adapters and observes targets."""
    data, names = file_mutation(rng, ws.config_text)
    return Case(index, "engine", names, data, "config", list(ENGINE_COMMAND))


@dataclass
class Report:
    """The result of a fuzz run."""

    seed: int
    outcomes: list[Outcome]
    elapsed: float

    @property
    def tracebacks(self) -> list[Outcome]:
        """Cases where an exception escaped."""
        return [o for o in self.outcomes if o.status == "traceback"]

    @property
    def unexpected(self) -> list[Outcome]:
        """Cases refused with the wrong exit code, no file named, or a silent failure."""
        return [o for o in self.outcomes if o.status == "unexpected"]

    def summary(self) -> str:
        """``fuzz: N cases, T tracebacks, U unexpected exits, S s``."""
        return (f"fuzz: {len(self.outcomes)} cases, {len(self.tracebacks)} tracebacks, "
                f"{len(self.unexpected)} unexpected exits, {self.elapsed:.1f} s")

    def breakdown(self) -> str:
        """Counts by target and status."""
        counts = Counter((o.case.target, o.status) for o in self.outcomes)
        rows = []
        for target in (*TARGETS, "engine"):
            cells = [f"{s} {counts[(target, s)]}" for s in
                     ("accepted", "refused", "traceback", "unexpected") if counts[(target, s)]]
            if cells:
                rows.append(f"  {target:9} " + ", ".join(cells))
        return "\n".join(rows)

    def failures(self, limit: int = 10) -> str:
        """The first ``limit`` failures, with the end of their tracebacks."""
        out = []
        for o in [*self.tracebacks, *self.unexpected][:limit]:
            out.append(f"--- {o.status}: {o.case.describe()}\n{o.detail.rstrip()}")
        return "\n".join(out)


@contextlib.contextmanager
def _no_audit_key() -> Iterator[None]:
    """No audit key from the caller's environment (it would make every plan unsigned)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k == "KILLSWITCH_AUDIT_KEY"}
    try:
        yield
    finally:
        os.environ.update(saved)


def run_fuzz(seed: int, cases: int, *, subprocesses: int = 0, engine: int = 0,
             root: Path | None = None,
             progress: Callable[[int], None] | None = None) -> Report:
    """Run ``cases`` seeded in-process cases and ``subprocesses`` through the executable.

    Args:
        seed: Reproduces the run exactly.
        cases: In-process cases.
        subprocesses: ``cli`` cases run through the real ``killswitch`` (slower).
        engine: ``engine`` cases: a damaged config, then ``run ... --dry-run`` through the
            real executable (adapters constructed with the damaged options; 60 s timeout).
        root: Work folder (default: a temporary one, removed after).
        progress: Called with the number of cases done, every 500.
    """
    rng = random.Random(seed)
    own = root is None
    folder = Path(tempfile.mkdtemp(prefix="ks-fuzz-")) if root is None else root
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        with _no_audit_key():
            ws = Workspace(folder)
            for i in range(cases):
                outcomes.append(run_case(ws, make_case(rng, i, ws)))
                if progress and (i + 1) % 500 == 0:
                    progress(i + 1)
            for j in range(subprocesses):
                outcomes.append(subprocess_outcome(ws, make_case(rng, cases + j, ws, "cli")))
            for k in range(engine):
                case = engine_case(rng, cases + subprocesses + k, ws)
                outcomes.append(subprocess_outcome(ws, case, timeout=60))
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    return Report(seed, outcomes, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run, print the summary, the breakdown and the first failures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="reproduces a run (default 1)")
    parser.add_argument("--cases", type=int, default=10000, help="in-process cases")
    parser.add_argument("--subprocess", type=int, default=0, dest="subprocesses",
                        help="extra cases through the real killswitch executable")
    parser.add_argument("--engine", type=int, default=0,
                        help="extra cases: a damaged config, then run ... --dry-run through "
                        "the real executable (adapters built from damaged options)")
    parser.add_argument("--show", type=int, default=10, help="failures to print")
    args = parser.parse_args(argv)
    report = run_fuzz(args.seed, args.cases, subprocesses=args.subprocesses,
                      engine=args.engine,
                      progress=lambda n: print(f"  {n} cases...", file=sys.stderr))
    print(report.summary())
    print(report.breakdown())
    if report.tracebacks or report.unexpected:
        print(report.failures(args.show))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
