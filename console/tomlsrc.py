"""TOML source handling shared by the config and runbook loaders: parsing with file:line
errors, locating a key's line, and turning pydantic errors into problems an operator can fix.
"""

from __future__ import annotations

import difflib
import re
import types

try:  # the compiled tomli parses a 10,000-integration inventory about 4x faster
    import tomli as tomllib
except ImportError:  # pragma: no cover - the standard library's pure-Python twin
    import tomllib  # type: ignore[no-redef]
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from console.errors import ConfigError

__all__ = ["Loc", "Problem", "TomlLocator", "parse_toml", "raise_problems", "suggest",
           "validation_problems"]

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
        self._text: str | None = text
        self.lines: dict[Loc, int] = {}
        self._aot: dict[Loc, int] = {}

    def _ensure(self) -> None:
        """Scan on first use: a valid config never pays for line numbers."""
        if self._text is not None:
            text, self._text = self._text, None
            self._scan(text)

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


def parse_toml(path: Path, error: type[ConfigError] = ConfigError) -> tuple[dict[str, Any], str]:
    """Read and parse a TOML file; return the document and its text.

    Raises:
        ConfigError: (or ``error``) the file cannot be read or is not valid TOML; ``where``
            carries the line tomllib reported.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"file not found: {path}", where=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {exc}", where=str(path)) from exc
    try:
        return tomllib.loads(text), text
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
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
            close = suggest(str(err["input"]), allowed)
            hint = f"did you mean {close!r}?" if close else f"use one of: {', '.join(allowed)}"
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
