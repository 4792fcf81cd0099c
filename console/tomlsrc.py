"""TOML source handling shared by the config and runbook loaders: parsing with file:line
errors, locating a key's line, and turning pydantic errors into problems an operator can fix.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
import types
import zlib

try:  # the compiled tomli parses a 10,000-integration inventory about 4x faster
    import tomli as tomllib
except ImportError:  # pragma: no cover - the standard library's pure-Python twin
    import tomllib  # type: ignore[no-redef]
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from console import checkcache
from console.errors import ConfigError

__all__ = ["MAX_DEPTH", "Loc", "Problem", "TomlLocator", "check_document", "parse_toml",
           "raise_problems", "suggest", "validation_problems"]

Loc = tuple[str | int, ...]
"""A location inside a TOML document: keys and array indices."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class TomlLocator:
    """Line numbers of the table headers and keys of a TOML document.

    Walks the source text the way a TOML parser builds its tree, so that a pydantic error
    location such as ``("integrations", 2, "credntials")`` maps to the line of that key under
    the third ``[[integrations]]`` header. Values spanning lines (arrays, multi-line strings)
    are skipped; a location inside one maps to the line of its key.

    Args:
        text: The TOML source.
    """

    def __init__(self, text: str) -> None:
        # kept compressed until first used (a 10,000-integration inventory: 4 MB -> ~0.2 MB),
        # since a loaded config keeps its locators for the errors found later
        self._text: bytes | None = zlib.compress(text.encode("utf-8", "surrogatepass"), 1)
        self.lines: dict[Loc, int] = {}
        self._aot: dict[Loc, int] = {}

    def _ensure(self) -> None:
        """Scan on first use: a valid config never pays for line numbers."""
        if self._text is not None:
            packed, self._text = self._text, None
            self._scan(zlib.decompress(packed).decode("utf-8", "surrogatepass"))

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line (1-based) of ``loc``, or of its longest known prefix; None if nothing matches."""
        self._ensure()
        loc = tuple(loc)
        for n in range(len(loc), 0, -1):
            line = self.lines.get(loc[:n])
            if line is not None:
                return line
        return None

    def where(self, path: Path | str, loc: Sequence[str | int]) -> str:
        """``path:line`` of ``loc`` (just ``path`` when no line is known)."""
        line = self.line_of(loc)
        return f"{path}:{line}" if line else str(path)

    # -- scanning

    def _scan(self, text: str) -> None:
        current: Loc = ()
        depth = 0
        ml: str | None = None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if ml or depth > 0:
                depth, ml = _scan_value(raw, 0, depth, ml)
                continue
            s = raw.strip()
            if not s or s.startswith("#"):
                continue
            try:
                if s.startswith("[["):
                    parts, _ = _parse_key(s, 2)
                    parent = self._resolve(parts[:-1])
                    array = (*parent, parts[-1])
                    self._aot[array] = self._aot.get(array, 0) + 1
                    current = (*array, self._aot[array] - 1)
                    for n in range(1, len(current) + 1):
                        self.lines.setdefault(current[:n], lineno)
                elif s.startswith("["):
                    parts, _ = _parse_key(s, 1)
                    current = self._resolve(parts)
                    for n in range(1, len(current) + 1):
                        self.lines.setdefault(current[:n], lineno)
                else:
                    parts, pos = _parse_key(s, 0)
                    if pos >= len(s) or s[pos] != "=":
                        continue
                    for n in range(1, len(parts) + 1):
                        self.lines.setdefault((*current, *parts[:n]), lineno)
                    depth, ml = _scan_value(s, pos + 1, 0, None)
            except ValueError:
                continue

    def _resolve(self, parts: Sequence[str]) -> Loc:
        resolved: Loc = ()
        for part in parts:
            resolved = (*resolved, part)
            if resolved in self._aot:
                resolved = (*resolved, self._aot[resolved] - 1)
        return resolved


def _parse_key(s: str, pos: int) -> tuple[list[str], int]:
    """Parse a (dotted, possibly quoted) key at ``s[pos:]``; return its parts and end."""
    parts: list[str] = []
    while True:
        while pos < len(s) and s[pos] in " \t":
            pos += 1
        if pos >= len(s):
            raise ValueError("no key")
        if s[pos] == '"':
            end = pos + 1
            while end < len(s) and s[end] != '"':
                end += 2 if s[end] == "\\" else 1
            parts.append(s[pos + 1 : end].encode().decode("unicode_escape"))
            pos = end + 1
        elif s[pos] == "'":
            end = s.find("'", pos + 1)
            if end < 0:
                raise ValueError("unterminated key")
            parts.append(s[pos + 1 : end])
            pos = end + 1
        else:
            m = _BARE_KEY.match(s, pos)
            if not m:
                raise ValueError("no key")
            parts.append(m.group())
            pos = m.end()
        while pos < len(s) and s[pos] in " \t":
            pos += 1
        if pos < len(s) and s[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _scan_value(s: str, i: int, depth: int, ml: str | None) -> tuple[int, str | None]:
    """Track bracket depth and multi-line strings through one line of a value."""
    while i < len(s):
        if ml:
            end = s.find(ml, i)
            if end < 0:
                return depth, ml
            i, ml = end + 3, None
            continue
        c = s[i]
        if c == "#":
            break
        if s.startswith('"""', i) or s.startswith("'''", i):
            ml, i = s[i : i + 3], i + 3
        elif c == '"':
            i += 1
            while i < len(s) and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            i += 1
        elif c == "'":
            end = s.find("'", i + 1)
            i = len(s) if end < 0 else end + 1
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            i += 1
    return depth, ml


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, inventory or runbook file.

    Attributes:
        where: ``file:line``.
        msg: What is wrong.
        hint: How to fix it.
    """

    where: str
    msg: str
    hint: str = ""


def raise_problems(
    problems: Sequence[Problem], error: type[ConfigError] = ConfigError, title: str = ""
) -> None:
    """Raise one ``error`` listing every problem (sorted by file and line).

    ``where`` is the first problem's; with one problem ``hint`` is its hint, with several the
    hints are inline in the message.

    Does nothing when ``problems`` is empty.
    """
    if not problems:
        return
    problems = sorted(problems, key=_problem_order)
    first = problems[0]
    if len(problems) == 1:
        raise error(first.msg, where=first.where, hint=first.hint, title=title)
    lines = [f"{len(problems)} problems:"]
    for p in problems:
        lines.append(f"  {p.where}: {p.msg}")
        if p.hint:
            lines.append(f"    hint: {p.hint}")
    raise error("\n".join(lines), where=first.where, title=title)


MAX_SOURCE_BYTES = 256 * 1024 * 1024
"""Largest config, inventory or runbook file read (a 10,000-integration inventory is ~5 MB)."""
MAX_DEPTH = 32
"""Deepest nesting of tables and arrays accepted in a config, inventory or runbook."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""TOML integers are 64-bit signed (the spec asks parsers to reject the others)."""


def parse_toml(path: Path, error: type[ConfigError] = ConfigError, *,
               cache: bool = False) -> tuple[dict[str, Any], str]:
    """Read and parse a TOML file; return the document and its text.

    Bad input of every kind becomes one ``error`` naming the file (and the line when it can
    be known) with a hint: a missing or unreadable file, one that is not a regular file or
    is huge, bytes that are not UTF-8, invalid TOML, nesting or dotted keys deeper than the
    parser allows (which would otherwise surface as ``RecursionError``), integers too long
    to convert (``ValueError``) or outside TOML's 64-bit range, and documents nested more
    than :data:`MAX_DEPTH` levels.

    With ``cache``, the document checks (depth, integer range) are skipped for a text that
    passed them before (:mod:`console.checkcache`; the caller records a success).

    Raises:
        ConfigError: (or ``error``) the file cannot be read or is not valid TOML; ``where``
            carries the line when one is known.
    """
    text = _decode_source(path, _read_source(path, error), error)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            where = f"{path}:{m.group(1)}"
            detail = f"{msg[: m.start()].strip()} (column {m.group(2)})"
        else:
            lineno = text.count("\n") + 1
            where = f"{path}:{lineno}"
            detail = re.sub(r"\s*\(at end of document\)", " at end of file", msg)
        raise error(
            f"invalid TOML: {detail}",
            where=where,
            hint="check quoting, brackets and '=' on that line (https://toml.io)",
        ) from exc
    except RecursionError as exc:  # tomli: > 400 nested inline arrays/tables, > 1000 key parts
        line = _nesting_line(text)
        raise error(
            f"invalid TOML: {_recursion_detail(exc)}",
            where=f"{path}:{line}" if line else str(path),
            hint=f"a config or runbook is never nested more than {MAX_DEPTH} levels: "
            "check the brackets and dots on that line",
        ) from exc
    except ValueError as exc:  # int("9" * 5000): the interpreter's integer digit limit
        line = _long_number_line(text)
        raise error(
            f"invalid TOML: an integer with more than {sys.get_int_max_str_digits()} digits",
            where=f"{path}:{line}" if line else str(path),
            hint=f"TOML integers range from {INT_MIN} to {INT_MAX}",
        ) from exc
    except MemoryError as exc:  # pragma: no cover - depends on the machine
        raise error(f"{path} is too large to parse in memory", where=str(path)) from exc
    if not (cache and checkcache.vouched(checkcache.digest("document", text))):
        check_document(doc, path, text, error)
    return doc, text


def _read_source(path: Path, error: type[ConfigError]) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_SOURCE_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise error(f"file not found: {path}", where=str(path)) from exc
    except (OSError, ValueError) as exc:  # permissions, a name too long, NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"cannot read {path}: {reason}", where=str(path)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise error(f"cannot read {path}: it is {what}", where=str(path),
                        hint="name a TOML file")
        if info.st_size > MAX_SOURCE_BYTES:
            raise error(f"{path} is {info.st_size} bytes; the limit is {MAX_SOURCE_BYTES}",
                        where=str(path), hint="is this the right file?")
        with open(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}", where=str(path)) from exc
    finally:
        os.close(fd)


def _decode_source(path: Path, raw: bytes, error: type[ConfigError]) -> str:
    """UTF-8 text with universal newlines; a bad byte is reported with its line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"not valid UTF-8 at byte offset {exc.start} (line {line}, column {column}: "
            f"{exc.reason})",
            where=f"{path}:{line}",
            hint="TOML files are UTF-8: re-save the file as UTF-8 or remove that character",
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _recursion_detail(exc: RecursionError) -> str:
    msg = str(exc)
    if "TOML" in msg:
        return msg.removeprefix("TOML ")
    return "nested too deeply to parse"


def _nesting_line(text: str) -> int | None:
    """The line with the deepest inline nesting or the longest dotted key (strings skipped)."""
    best, best_line = 0, None
    depth = 0
    ml: str | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        peak, parts, i = depth, 1, 0
        key_part = depth == 0 and ml is None
        while i < len(line):
            if ml:
                end = line.find(ml, i)
                if end < 0:
                    break
                i, ml = end + 3, None
                continue
            c = line[i]
            if c == "#":
                break
            if line.startswith(('"""', "'''"), i):
                ml, i = line[i : i + 3], i + 3
                continue
            if c in "\"'":
                end = i + 1
                while end < len(line) and line[end] != c:
                    end += 2 if c == '"' and line[end] == "\\" else 1
                i = end + 1
                continue
            if c == "=" and depth == 0:
                key_part = False
            elif c == "." and key_part:
                parts += 1
            elif c in "[{":
                depth += 1
                peak = max(peak, depth)
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
        score = max(peak, parts)
        if score > best:
            best, best_line = score, lineno
    return best_line


def _long_number_line(text: str) -> int | None:
    """The line of the longest run of digits (underscores allowed, as in ``1_000``)."""
    best = max(re.finditer(r"[0-9][0-9_]*", text), key=lambda m: m.end() - m.start(),
               default=None)
    return text.count("\n", 0, best.start()) + 1 if best else None


def check_document(
    doc: dict[str, Any], path: Path, text: str, error: type[ConfigError] = ConfigError
) -> None:
    """Refuse what no config needs and what breaks the code downstream of parsing.

    Refused: nesting deeper than :data:`MAX_DEPTH` levels (it would surface as
    ``RecursionError`` in validation, messages or JSON output), integers outside TOML's
    64-bit range, and strings holding a NUL character (``"\\u0000"``: every file system call
    raises on it).

    Raises:
        ConfigError: (or ``error``) at the ``file:line`` of the offending key.
    """
    # hot path (every load of a 10,000-integration inventory): no location is built here
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                if depth + 1 >= MAX_DEPTH:
                    _raise_bad(doc, path, text, error)
                stack.append((value, depth + 1))
            elif kind is int and not INT_MIN <= value <= INT_MAX:
                _raise_bad(doc, path, text, error)
    # a NUL can only come from an escape: look for one only when the text has one
    if "\\u0000" in text or "\\U00000000" in text:
        _raise_bad(doc, path, text, error)


def _raise_bad(doc: dict[str, Any], path: Path, text: str, error: type[ConfigError]) -> None:
    """Raise for the first value :func:`check_document` refuses, with its location."""
    stack: list[tuple[Any, Loc]] = [(doc, ())]
    while stack:
        node, loc = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            bad: Loc = (*loc, key)
            if isinstance(value, dict | list):
                if len(bad) + 1 >= MAX_DEPTH:
                    raise error(
                        f"{_dotted(bad[:6])}...: nested more than {MAX_DEPTH} levels deep",
                        where=TomlLocator(text).where(path, bad),
                        hint="a config or runbook is never nested that deep: check the "
                        "dotted keys and brackets on that line",
                    )
                stack.append((value, bad))
            elif type(value) is int and not INT_MIN <= value <= INT_MAX:
                raise error(
                    f"{_dotted(bad)}: integer out of range ({value.bit_length()} bits)",
                    where=TomlLocator(text).where(path, bad),
                    hint=f"TOML integers range from {INT_MIN} to {INT_MAX}",
                )
            if "\0" in str(key) or (isinstance(value, str) and "\0" in value):
                raise error(
                    f"{_dotted(bad)}: contains a NUL character (\\u0000)",
                    where=TomlLocator(text).where(path, bad),
                    hint="remove the \\u0000 escape: no name, path or text here needs one",
                )


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class found by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (list, tuple, set, dict, Union, types.UnionType):
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def suggest(value: str, options: Iterable[str]) -> str | None:
    """The option ``value`` was most likely meant to be (prefix match, then difflib)."""
    opts = list(options)
    low = value.lower()
    for o in opts:
        if low and (o.lower().startswith(low) or low.startswith(o.lower())):
            return o
    close = difflib.get_close_matches(value, opts, n=1, cutoff=0.5)
    return close[0] if close else None


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    """A repr of at most 60 characters; never fails (huge integers, deep nesting)."""
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        return f"<an integer of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def fixed_prefix(text: str) -> Callable[[Loc], str]:
    """A ``describe`` for :func:`validation_problems` that always says ``text``."""
    def describe(_loc: Loc) -> str:
        return text
    return describe


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    locate: Callable[[Loc], str],
    prefix: Loc = (),
    describe: Callable[[Loc], str] | None = None,
) -> list[Problem]:
    """Turn a pydantic :class:`ValidationError` into :class:`Problem` objects.

    Args:
        exc: The validation error.
        model: The model class that was validated (to list valid fields).
        locate: Maps a full location (``prefix`` + the error's loc) to ``file:line``.
        prefix: Prepended to each error's loc before locating.
        describe: Optional ``loc -> "integration 'x': "`` context for the message.
    """
    problems: list[Problem] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        full = (*prefix, *loc)
        context = describe(full) if describe else ""
        field = _dotted(loc) or "value"
        kind = err["type"]
        hint = ""
        if kind == "extra_forbidden":
            name = str(loc[-1])
            owner = _model_at(model, loc[:-1])
            valid = sorted(owner.model_fields) if owner else []
            msg = f"unknown field {name!r}"
            if len(loc) > 1:
                msg += f" in {_dotted(loc[:-1])}"
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            hint += f"valid fields: {', '.join(valid)}" if valid else ""
        elif kind == "missing":
            msg = f"missing required field {field!r}"
        elif kind == "literal_error":
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            msg = f"{field} must be one of {', '.join(allowed)} (got {_short(err['input'])})"
            guess = suggest(str(err["input"]), allowed)
            hint = f"did you mean {guess!r}?" if guess else f"use one of: {', '.join(allowed)}"
        elif kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
            msg = f"id {_short(err['input'])} is not a slug"
            hint = "use lower-case letters, digits, '.', '_' and '-', e.g. 'support-bot'"
        else:
            msg = f"{field}: {err['msg']} (got {_short(err['input'])})"
        problems.append(Problem(locate(full), context + msg, hint))
    return problems


# --------------------------------------------------------------------------- loading


def _problem_order(p: Problem) -> tuple[str, int]:
    file, sep, line = p.where.rpartition(":")
    if sep and line.isdigit():
        return file, int(line)
    return p.where, 0
