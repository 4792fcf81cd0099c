"""Saved plan files are untrusted input: read, decode, parse and validate them before use.

``killswitch plan ... --out FILE`` writes :meth:`console.engine.model.Plan.to_json`; anything
may have happened to the file since (a truncated copy, an editor saving Latin-1, a hand edit
that was then rehashed). :func:`read_plan_file` turns every way a file can be wrong into one
:class:`~console.errors.UsageError` (exit 2) that says what is wrong and where — ``file:line``
for bytes and JSON syntax, the field path (``changes[3].reversible``) for shape and types —
so that :meth:`Plan.from_dict <console.engine.model.Plan.from_dict>`, the executor and
:func:`console.render.render_plan` only ever see the types ``Plan.to_json`` writes::

    data = read_plan_file(path)          # UsageError on anything that is not a plan
    plan = Plan.from_dict(data)          # cannot fail on a dict read_plan_file returned

The returned dict is the parsed JSON itself (not a re-serialised model), so the plan's hash
is computed over exactly what was saved. The hash and signature are checked by
``Plan.load``, not here.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from console.errors import UsageError

__all__ = ["HINT", "MAX_DEPTH", "MAX_PLAN_BYTES", "canonical_plan_bytes", "plan_text",
           "read_plan_file", "validate_plan_data"]

HINT = "save a fresh plan with `killswitch plan ... --out FILE`"
"""How to fix any plan file this module refuses."""
MAX_PLAN_BYTES = 256 * 1024 * 1024
"""Largest plan file read (a 500-integration kill-switch plan is a few MB)."""
MAX_DEPTH = 64
"""Deepest nesting of objects and arrays anywhere in a plan (observed states included)."""
MAX_PROBLEMS = 10
"""Most problems listed in one error."""

Loc = tuple[str | int, ...]

_NAME_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------- the shape


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _StepShape(_Strict):
    """``StepInfo`` as written by ``dataclasses.asdict``."""

    id: str = Field(min_length=1)
    action: str = Field(min_length=1)
    needs: list[str] = []
    on_error: Literal["stop", "continue"] = "stop"
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class _ChangeShape(_Strict):
    """``adapters.base.Change`` as written by ``Change.to_dict``."""

    op_id: str = Field(min_length=1)
    integration: str
    step: str
    action: str
    backend: str
    adapter: str
    target: str
    ref: dict[str, Any] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    reversible: bool = True
    undo: dict[str, Any] = {}
    precondition: str = ""
    status: Literal["observed", "simulated", "unsupported", "noop", "error"] = "observed"
    """One of the status constants of ``adapters.base`` (a test keeps them in step)."""
    note: str = ""
    error: str = ""
    inverse_of: str = ""


class _PlanShape(_Strict):
    """``Plan.to_json`` output: the plan body, its hash and (optionally) its signature."""

    version: int = Field(ge=1)
    run_id: str = Field(min_length=1)
    runbook: str = Field(min_length=1)
    selectors: list[str]
    integrations: list[str]
    steps: list[_StepShape]
    changes: list[_ChangeShape]
    notes: list[str] = []
    restore_of: str = ""
    created: str = ""
    config: str = ""
    cause: Literal["leak", "cost", "data", "abuse", "exercise", "other"] = "other"
    """``console.vocab.CAUSES``."""
    hash: str
    signature: str | None = None


# --------------------------------------------------------------------------- writing
#
# A plan of 10,000 integrations has some 40,000 changes and a million JSON values; it is
# hashed (RFC 8785) and written (indented) by the two functions below, which give exactly
# the bytes of the general functions they stand in for, at C speed where they can.

_MAX_SAFE_INT = 2**53 - 1  # adapters.canonical.MAX_SAFE_INT


def _jcs_plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` needs none of :func:`adapters.canonical.canonical_bytes`'s
    normalisation and the C encoder writes its RFC 8785 form: only exact dicts with ``str``
    keys inside the Basic Multilingual Plane, lists, tuples, strings, booleans, None,
    integers in the safe range and non-integral floats that both print alike
    (1e-4 <= |x| < 1e16). Anything else (a subclass, an integral or huge float, a big
    integer, another object, nesting deeper than any plan) answers False: the caller
    normalises it the general way. Lone surrogates are found when encoding."""
    if depth > 2 * MAX_DEPTH:
        return False
    for v in value.values() if type(value) is dict else value:
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is dict:
            for k in v:
                if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                    return False
            if not _jcs_plain(v, depth + 1):
                return False
        elif t is list or t is tuple:
            if not _jcs_plain(v, depth + 1):
                return False
        elif t is int:
            if not -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT:
                return False
        elif t is float:
            if v.is_integer() or not 1e-4 <= abs(v) < 1e16:
                return False
        else:
            return False
    return True


def canonical_plan_bytes(body: dict[str, Any]) -> bytes:
    """``adapters.canonical.canonical_bytes(body)``, the bytes a version-2 plan's hash and
    signature cover, byte for byte, without copying the plan first when it is plain JSON
    data already (every plan the planner makes): one type check, then the C encoder."""
    from adapters.canonical import canonical_bytes

    if type(body) is dict and all(type(k) is str and k.isascii() for k in body) \
            and _jcs_plain(body):
        try:
            return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError, ValueError):
            pass  # a lone surrogate (escaped by the normalisation), or a cycle
    return canonical_bytes(body)


class _NotPlain(Exception):
    """A value :func:`plan_text` leaves to ``json.dumps``."""


_INDENT = "  "


def plan_text(data: dict[str, Any]) -> str:
    """``json.dumps(data, indent=2, sort_keys=True)``, character for character, in about a
    tenth of the time and memory: ``json`` indents in pure Python, one small string per
    token (millions for a big plan); here each change is built as one string, flat
    objects and arrays by the C encoder. Anything but plain JSON data (``str`` keys,
    exact types) is left to ``json.dumps``."""
    try:
        out: list[str] = []
        _emit(data, 0, out)
        return "".join(out)
    except (_NotPlain, RecursionError):
        return json.dumps(data, indent=2, sort_keys=True)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encode_str = json.encoder.encode_basestring_ascii
_CONSTANTS = {True: "true", False: "false", None: "null"}


def _scalar(value: Any) -> str:
    """A scalar as ``json.dumps`` writes it (ASCII escapes; NaN and infinities allowed)."""
    t = type(value)
    if t is str:
        return str(_encode_str(value))
    if t is bool or value is None:
        return _CONSTANTS[value]
    if t is int:
        return int.__repr__(value)
    if value != value:  # noqa: PLR0124 - NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _flat(value: dict[str, Any] | list[Any]) -> bool:
    items = value.values() if type(value) is dict else value
    return all(type(v) in _SCALARS for v in items)


def _emit(value: Any, level: int, out: list[str]) -> None:
    """Append the indented JSON of ``value`` (a dict or list) at nesting ``level``."""
    if level > 2 * MAX_DEPTH:
        raise _NotPlain
    inner = "\n" + _INDENT * (level + 1)
    t = type(value)
    if t is dict:
        if not value:
            out.append("{}")
            return
        if any(type(k) is not str for k in value):
            raise _NotPlain
        if _flat(value):  # the C encoder, with the line break and indent as separator
            out.append("{" + inner + json.dumps(value, sort_keys=True, separators=(
                "," + inner, ": "))[1:-1] + "\n" + _INDENT * level + "}")
            return
        out.append("{")
        first = True
        for k in sorted(value):
            out.append(inner if first else "," + inner)
            first = False
            out.append(_encode_key(k))
            _emit_value(value[k], level + 1, out)
        out.append("\n" + _INDENT * level + "}")
    elif t is list or t is tuple:
        if not value:
            out.append("[]")
            return
        if _flat(value):
            out.append("[" + inner + json.dumps(value, separators=("," + inner, ": "))[1:-1]
                       + "\n" + _INDENT * level + "]")
            return
        out.append("[")
        first = True
        for v in value:
            out.append(inner if first else "," + inner)
            first = False
            _emit_value(v, level + 1, out)
        out.append("\n" + _INDENT * level + "]")
    else:
        raise _NotPlain


def _encode_key(key: str) -> str:
    return f"{_encode_str(key)}: "


def _emit_value(value: Any, level: int, out: list[str]) -> None:
    t = type(value)
    if t in _SCALARS:
        out.append(_scalar(value))
    elif t is dict or t is list or t is tuple:
        if level == 2 and t is dict:  # each change: built apart, appended as one string
            part: list[str] = []
            _emit(value, level, part)
            out.append("".join(part))
        else:
            _emit(value, level, out)
    else:
        raise _NotPlain


# --------------------------------------------------------------------------- reading


def read_plan_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a saved plan file.

    Args:
        path: The plan file (as given by the operator; messages quote it as given).

    Returns:
        The parsed plan data, shape and types checked: ``Plan.from_dict`` accepts it.

    Raises:
        UsageError: The file is missing, not a regular file, too large, not UTF-8, not
            JSON, or not a plan; ``where`` is ``file:line`` (bytes, JSON syntax) or the file
            with the field path in the message (shape and types).
    """
    p = Path(path)
    return validate_plan_data(_parse(p, _decode(p, _read_bytes(p))), str(p))


def _fail(where: str, msg: str, hint: str = HINT) -> UsageError:
    return UsageError(msg, where=where, hint=hint, title="Invalid plan file")


def _read_bytes(p: Path) -> bytes:
    """The file's bytes; only regular files up to :data:`MAX_PLAN_BYTES`."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise _fail(str(p), f"plan file {p} does not exist",
                    "save one with `killswitch plan ... --out FILE`") from exc
    except (OSError, ValueError) as exc:  # permission, name too long, NUL in the name
        raise _fail(str(p), f"cannot open plan file {p}: {_os_reason(exc)}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(str(p), f"plan file {p} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(str(p), f"plan file {p} is not a regular file")
        if info.st_size > MAX_PLAN_BYTES:
            raise _fail(str(p), f"plan file is {info.st_size} bytes; a plan is at most "
                        f"{MAX_PLAN_BYTES} bytes")
        with open(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise _fail(str(p), f"cannot read plan file {p}: {_os_reason(exc)}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_PLAN_BYTES:
        raise _fail(str(p), f"plan file is larger than {MAX_PLAN_BYTES} bytes")
    return raw


def _os_reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _decode(p: Path, raw: bytes) -> str:
    """UTF-8 text; an invalid byte is reported with its offset, line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(f"{p}:{line}",
                    f"not valid UTF-8 at byte offset {exc.start} (line {line}, column "
                    f"{column}: {exc.reason})") from exc


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: an object naming a key twice is refused (JSON keeps the last,
    a person reading the file may see the first)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _parse(p: Path, text: str) -> Any:
    """JSON, with ``file:line`` on every syntax problem."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise _fail(str(p), f"not a plan: an object names the key {_short(exc.key)} twice") \
            from exc
    except json.JSONDecodeError as exc:
        raise _fail(f"{p}:{exc.lineno}",
                    f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        line = _deep_line(text, MAX_DEPTH)
        raise _fail(f"{p}:{line}" if line else str(p),
                    f"not a plan: JSON nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        line = _long_number_line(text)
        raise _fail(f"{p}:{line}" if line else str(p),
                    f"not a plan: an integer with more than {sys.get_int_max_str_digits()} "
                    "digits") from exc
    except MemoryError as exc:  # pragma: no cover - depends on the machine
        raise _fail(str(p), "not a plan: too large to parse in memory") from exc


def _deep_line(text: str, limit: int) -> int | None:
    """Line where array/object nesting first exceeds ``limit`` (strings skipped)."""
    depth, line, in_str, escaped = 0, 1, False, False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line
        elif ch in "]}":
            depth -= 1
    return None


def _long_number_line(text: str) -> int | None:
    """Line of the longest run of digits."""
    best = max(re.finditer(r"\d+", text), key=lambda m: m.end() - m.start(), default=None)
    return text.count("\n", 0, best.start()) + 1 if best else None


# --------------------------------------------------------------------------- validating


def validate_plan_data(data: Any, where: str) -> dict[str, Any]:
    """Check that parsed JSON is a plan ``Plan.from_dict`` and the engine can use.

    Checks the shape and types of every field (pydantic, strict: ``"true"`` is not a
    boolean), nesting and characters inside the free-form states, and that the plan is
    internally consistent: unique step ids, ``needs`` naming earlier steps (the executor
    runs steps in file order), unique op ids and integrations, and every change on one of
    the plan's steps and integrations.

    Args:
        data: Parsed JSON.
        where: The file, for messages.

    Returns:
        ``data`` itself, now known to be a plan.

    Raises:
        UsageError: Naming the field path of every problem found (up to
            :data:`MAX_PROBLEMS`).
    """
    if not isinstance(data, dict):
        raise _fail(where, f"not a plan: expected a JSON object, got {_json_kind(data)}")
    deep = _walk(data)
    if deep is not None:
        loc, msg = deep
        raise _fail(where, f"{field_path(loc)}: {msg}")
    try:
        _PlanShape.model_validate(data)
    except ValidationError as exc:
        _raise([(tuple(e["loc"]), _message(e)) for e in exc.errors()], where)
    _raise(_consistency(data), where)
    return data


def _raise(problems: Sequence[tuple[Loc, str]], where: str) -> None:
    if not problems:
        return
    if len(problems) == 1:
        loc, msg = problems[0]
        raise _fail(where, f"{field_path(loc)}: {msg}")
    lines = [f"not a plan: {len(problems)} problems:"]
    lines += [f"  {field_path(loc)}: {msg}" for loc, msg in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS} more")
    raise _fail(where, "\n".join(lines))


def _walk(data: Any) -> tuple[Loc, str] | None:
    """The first place nested too deeply or holding a lone surrogate (unprintable)."""
    stack: list[tuple[Any, Loc]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if len(loc) >= MAX_DEPTH:
            return loc, f"nested more than {MAX_DEPTH} levels deep"
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                return (*loc, key), "a key holds an invalid character (a lone surrogate)"
            if isinstance(value, dict | list):
                stack.append((value, (*loc, key)))
            elif isinstance(value, str) and _SURROGATE.search(value):
                return (*loc, key), "holds an invalid character (a lone surrogate)"
    return None


def _consistency(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Cross-field rules the executor relies on (the shape is already valid)."""
    problems: list[tuple[Loc, str]] = []
    version = data["version"]
    from console.engine.model import PLAN_VERSION  # the model imports this module

    if version > PLAN_VERSION:
        problems.append((("version",), f"plan version {version} is newer than this "
                         f"Killswitch reads (up to {PLAN_VERSION}); upgrade, or plan again"))
    if _NAME_FORBIDDEN.search(data["runbook"]):
        problems.append((("runbook",), f"{_short(data['runbook'])} is not a runbook name"))
    seen_steps: dict[str, int] = {}
    for i, step in enumerate(data["steps"]):
        for j, need in enumerate(step.get("needs", [])):
            if need not in seen_steps:
                problems.append((("steps", i, "needs", j),
                                 f"{_short(need)} is not an earlier step of the plan"))
        if step["id"] in seen_steps:
            problems.append((("steps", i, "id"), f"duplicate step id {_short(step['id'])} "
                             f"(also steps[{seen_steps[step['id']]}])"))
        else:
            seen_steps[step["id"]] = i
    seen_integrations: dict[str, int] = {}
    for i, integ in enumerate(data["integrations"]):
        if integ in seen_integrations:
            problems.append((("integrations", i), f"duplicate integration {_short(integ)}"))
        seen_integrations.setdefault(integ, i)
    seen_ops: dict[str, int] = {}
    for i, change in enumerate(data["changes"]):
        if change["step"] not in seen_steps:
            problems.append((("changes", i, "step"),
                             f"{_short(change['step'])} is not one of the plan's steps"))
        # a change outside the plan's integrations is not a malformed file but a refused
        # plan (exit 3, named with the others): Session.rederive checks that
        op_id = change["op_id"]
        if op_id in seen_ops:
            problems.append((("changes", i, "op_id"), f"duplicate op id {_short(op_id)} "
                             f"(also changes[{seen_ops[op_id]}])"))
        seen_ops.setdefault(op_id, i)
    return problems


# --------------------------------------------------------------------------- messages

_EXPECTED = {
    "bool_type": "expected a boolean (true or false)",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected a string",
    "list_type": "expected an array",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "missing": "missing (a saved plan always has it)",
}


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return _EXPECTED[kind]
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_json_kind(got)}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        return f"must be one of {', '.join(allowed)}, got {_short(got)}"
    if kind in ("greater_than", "greater_than_equal"):
        bound = (err.get("ctx") or {}).get("gt", (err.get("ctx") or {}).get("ge"))
        op = ">" if kind == "greater_than" else ">="
        return f"must be {op} {bound}, got {_short(got)}"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{err['msg']}, got {_short(got)}"


def _json_kind(value: Any) -> str:
    """How JSON would call the type of ``value``, with the value when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"a string {_short(value)}"
    if isinstance(value, int | float):
        return f"a number {_short(value)}"
    return type(value).__name__  # pragma: no cover - JSON has no other types


def _short(value: Any, limit: int = 40) -> str:
    """A short repr (never fails: huge integers and deep values are summarised)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # pragma: no cover - guarded above
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def field_path(loc: Sequence[str | int], limit: int = 12) -> str:
    """``changes[3].before.enabled`` for a location; long paths keep both ends.

    Keys that are not plain words are quoted (``before['a.b']``).
    """
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _IDENT.fullmatch(part):
            parts.append(f".{part}" if parts else part)
        else:
            parts.append(f"[{_short(part)}]")
    if len(parts) > limit:
        keep = limit // 2
        parts = [*parts[:keep], f"...({len(parts) - 2 * keep} more)...", *parts[-keep:]]
    return "".join(parts) or "plan"
