"""Settings and inventory loading: TOML in, validated models out, every error with file:line.

A config file holds ``[settings]``, ``[sandbox]``, ``[backends.NAME]`` and (inline, or in the
separate file named by ``settings.inventory``) the ``[[integrations]]`` inventory::

    [settings]
    audit_db = ".sandbox/audit.db"

    [backends.flags]
    type = "flagfile"
    path = ".sandbox/flags.json"

    [[integrations]]
    id = "support-bot"
    ...

:func:`load_config` reports *every* problem it finds in one :class:`~console.errors.ConfigError`
whose ``where`` is the ``file:line`` of the first one. The helpers :class:`TomlLocator`,
:class:`Problem`, :func:`validation_problems` and :func:`raise_problems` are shared with
:mod:`console.runbook`.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import getpass
import os
import re

try:  # the compiled tomli parses a 10,000-integration inventory about 4x faster
    import tomli as tomllib
except ImportError:  # pragma: no cover - the standard library's pure-Python twin
    import tomllib  # type: ignore[no-redef]
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from console.errors import ConfigError
from console.inventory import KILL_POINT_LISTS, Integration

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_CONFIG",
    "Backend",
    "Config",
    "Problem",
    "SandboxSettings",
    "Settings",
    "TomlLocator",
    "load_config",
    "parse_toml",
    "raise_problems",
    "suggest",
    "validation_problems",
]

ENV_CONFIG = "KILLSWITCH_CONFIG"
"""Environment variable naming the config file when no ``--config`` is given."""
DEFAULT_CONFIG_PATH = "~/.config/killswitch/config.toml"
"""Where the config is looked for last."""

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- models


class Settings(BaseModel):
    """The ``[settings]`` table."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    audit_db: str = "~/.local/state/killswitch/audit.db"
    """SQLite audit database; relative paths are relative to the config file."""
    runbook_dirs: list[str] = []
    """User runbook folders, in addition to the shipped ``runbooks/``."""
    max_targets: int = Field(default=10, ge=1)
    """Most integrations one live run may target (blast radius)."""
    operator: str | None = None
    """Who is acting; else ``$KILLSWITCH_OPERATOR``, else ``$USER``."""
    incident: str | None = None
    """Default incident id recorded with every run."""
    default_timeout: float = Field(default=30.0, gt=0)
    """Per-operation timeout, seconds."""
    max_attempts: int = Field(default=4, ge=1)
    """Attempts per operation on throttling, 5xx and timeouts."""
    inventory: str | None = None
    """Optional separate inventory TOML file holding the ``[[integrations]]``."""
    proof_window: float = Field(default=30.0, ge=0)
    """Seconds verify keeps rechecking a key that still works at the provider (propagation)."""
    proof_interval: float = Field(default=2.0, gt=0)
    """Seconds between proof-of-death rechecks."""
    keymap: dict[str, str] = {}
    """Console key overrides: binding id -> keys, e.g. ``"inventory.mark" = "x"``."""

    def resolved_operator(self) -> str:
        """The operator name: the setting, else ``$KILLSWITCH_OPERATOR``, else ``$USER``."""
        if self.operator:
            return self.operator
        env = os.environ.get("KILLSWITCH_OPERATOR") or os.environ.get("USER")
        if env:
            return env
        try:
            return getpass.getuser()
        except (OSError, KeyError):  # pragma: no cover - no passwd entry
            return "unknown"


class Backend(BaseModel):
    """A ``[backends.NAME]`` table. Fields other than those below are the adapter's options."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str
    """Adapter name: ``vault``, ``flagfile``, ``fake``, ..."""
    max_concurrency: int = Field(default=8, ge=1)
    """Most operations in flight against this backend at once."""
    rate_per_second: float | None = Field(default=None, gt=0)
    """Rate limit for calls to this backend, if any."""
    timeout: float | None = Field(default=None, gt=0)
    """Per-operation timeout overriding ``settings.default_timeout``."""

    @property
    def options(self) -> dict[str, Any]:
        """The adapter's options: every field not declared above."""
        return dict(self.model_extra or {})


class SandboxSettings(BaseModel):
    """The ``[sandbox]`` table: where the local stand-ins keep their state."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    dir: str = ".sandbox"
    """State folder of the sandbox, relative to the config file."""
    openbao_port: int = Field(default=8299, ge=1, le=65535)
    """Port of the OpenBao dev server."""
    moto_port: int = Field(default=5055, ge=1, le=65535)
    """Port of the moto server (AWS)."""
    ports: dict[str, int] = {}
    """Ports of the SaaS stand-ins by name (``openai``, ``anthropic``, ``gcp``...);
    unlisted ones use their default port."""


class Config(BaseModel):
    """A loaded, validated config with its inventory."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: Path
    """The config file (absolute)."""
    settings: Settings = Settings()
    """The ``[settings]`` table."""
    backends: dict[str, Backend] = {}
    """Configured backends by name."""
    integrations: list[Integration] = []
    """The inventory, in file order."""
    sandbox: SandboxSettings | None = None
    """The ``[sandbox]`` table, if present."""

    _sources: dict[str, tuple[Path, TomlLocator]] = PrivateAttr(default_factory=dict)
    _origins: list[tuple[str, int]] = PrivateAttr(default_factory=list)

    def resolve(self, p: str | Path) -> Path:
        """Resolve ``p`` (``~`` expanded) relative to the config file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.path.parent / q)

    def integration(self, integration_id: str) -> Integration | None:
        """The integration with ``integration_id``, or None."""
        return next((i for i in self.integrations if i.id == integration_id), None)

    def locate(self, loc: Sequence[str | int]) -> str:
        """``file:line`` of a location such as ``("integrations", 2, "flags", 0, "backend")``.

        Integrations are located in whichever file they came from. Returns ``""`` when the
        config was not loaded from a file.
        """
        loc = tuple(loc)
        key = "config"
        if (
            len(loc) >= 2
            and loc[0] == "integrations"
            and isinstance(loc[1], int)
            and loc[1] < len(self._origins)
        ):
            key, local = self._origins[loc[1]]
            loc = ("integrations", local, *loc[2:])
        if key not in self._sources:
            return ""
        path, locator = self._sources[key]
        return locator.where(path, loc)


# --------------------------------------------------------------------------- locating keys

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

_TOP_LEVEL = ("settings", "sandbox", "backends", "integrations")


def _find_config(path: str | Path | None) -> Path:
    looked = (
        f"--config ({path or 'not given'}), ${ENV_CONFIG} "
        f"({os.environ.get(ENV_CONFIG) or 'not set'}), {DEFAULT_CONFIG_PATH}"
    )
    hint = f"looked at: {looked}; copy config.example.toml to start"
    if path:
        candidate, source = Path(path).expanduser(), "--config"
    elif os.environ.get(ENV_CONFIG):
        candidate, source = Path(os.environ[ENV_CONFIG]).expanduser(), f"${ENV_CONFIG}"
    else:
        candidate, source = Path(DEFAULT_CONFIG_PATH).expanduser(), "the default location"
    if not candidate.is_file():
        what = "is a folder, not a file" if candidate.is_dir() else "not found"
        raise ConfigError(
            f"config file {candidate} (from {source}) {what}",
            where=str(candidate),
            hint=hint,
            title="No config",
        )
    return candidate.resolve()


def _integration_list(
    doc: Mapping[str, Any], locate: Callable[[Loc], str]
) -> tuple[list[Any], list[Problem]]:
    raw = doc.get("integrations", [])
    if isinstance(raw, list) and all(isinstance(x, dict) for x in raw):
        return raw, []
    return [], [
        Problem(
            locate(("integrations",)),
            "integrations must be an array of tables",
            hint="write each integration under its own [[integrations]] header",
        )
    ]


@contextlib.contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic GC while tens of thousands of objects are built (restored after).

    A 10,000-integration inventory otherwise triggers hundreds of collections that find
    nothing to free: loading takes about twice as long.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config and its inventory (see :func:`_load_config`)."""
    with _bulk_allocation():
        return _load_config(path)


def _load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config and its inventory.

    Args:
        path: The config file; None looks at ``$KILLSWITCH_CONFIG``, then
            ``~/.config/killswitch/config.toml``.

    Returns:
        The validated config.

    Raises:
        ConfigError: The file is missing, not valid TOML, or invalid in any way; every
            problem found is listed, and ``where`` is the ``file:line`` of the first.
    """
    cfg_path = _find_config(path)
    doc, text = parse_toml(cfg_path)
    sources: dict[str, tuple[Path, TomlLocator]] = {"config": (cfg_path, TomlLocator(text))}

    def at(key: str) -> Callable[[Loc], str]:
        p, locator = sources[key]
        return lambda loc: locator.where(p, loc)

    problems: list[Problem] = []
    loc_cfg = at("config")

    for key in doc:
        if key not in _TOP_LEVEL:
            close = difflib.get_close_matches(key, _TOP_LEVEL, n=1)
            problems.append(
                Problem(
                    loc_cfg((key,)),
                    f"unknown top-level field {key!r}",
                    (f"did you mean {close[0]!r}? " if close else "")
                    + f"valid: {', '.join(_TOP_LEVEL)}",
                )
            )

    settings = Settings()
    try:
        settings = Settings.model_validate(doc.get("settings", {}))
    except ValidationError as exc:
        problems += validation_problems(exc, Settings, loc_cfg, ("settings",))

    sandbox: SandboxSettings | None = None
    if "sandbox" in doc:
        try:
            sandbox = SandboxSettings.model_validate(doc["sandbox"])
        except ValidationError as exc:
            problems += validation_problems(exc, SandboxSettings, loc_cfg, ("sandbox",))

    backends: dict[str, Backend] = {}
    raw_backends = doc.get("backends", {})
    if not isinstance(raw_backends, dict):
        problems.append(Problem(loc_cfg(("backends",)), "backends must be a table"))
        raw_backends = {}
    for name, raw in raw_backends.items():
        try:
            backends[name] = Backend.model_validate(raw)
        except ValidationError as exc:
            problems += validation_problems(
                exc, Backend, loc_cfg, ("backends", name), lambda _l, n=name: f"backend {n!r}: "
            )

    # (source key, local index, raw table) for every integration, inline ones first
    raws: list[tuple[str, int, Any]] = []
    found, bad = _integration_list(doc, loc_cfg)
    problems += bad
    raws += [("config", i, r) for i, r in enumerate(found)]
    if settings.inventory:
        inv_path = (cfg_path.parent / Path(settings.inventory).expanduser()).resolve()
        try:
            inv_doc, inv_text = parse_toml(inv_path)
        except ConfigError as exc:
            if inv_path.exists():
                problems.append(Problem(exc.where, exc.msg, exc.hint))
            else:
                problems.append(
                    Problem(
                        loc_cfg(("settings", "inventory")),
                        f"inventory file {inv_path} not found",
                        "settings.inventory is relative to the config file's folder",
                    )
                )
        else:
            sources["inventory"] = (inv_path, TomlLocator(inv_text))
            loc_inv = at("inventory")
            for key in inv_doc:
                if key != "integrations":
                    problems.append(
                        Problem(
                            loc_inv((key,)),
                            f"unknown top-level field {key!r} in the inventory file",
                            "an inventory file holds only [[integrations]] tables",
                        )
                    )
            found, bad = _integration_list(inv_doc, loc_inv)
            problems += bad
            raws += [("inventory", i, r) for i, r in enumerate(found)]

    integrations: list[Integration] = []
    origins: list[tuple[str, int]] = []
    for src, local, raw in raws:
        locate = at(src)
        label = raw.get("id") if isinstance(raw.get("id"), str) else f"#{local + 1}"
        try:
            integ = Integration.model_validate(raw)
        except ValidationError as exc:
            problems += validation_problems(
                exc,
                Integration,
                locate,
                ("integrations", local),
                lambda _l, n=label: f"integration {n!r}: ",
            )
            continue
        integrations.append(integ)
        origins.append((src, local))

    problems += _check_references(raws, backends, at)

    raise_problems(problems, ConfigError, title="Invalid config")

    config = Config(
        path=cfg_path,
        settings=settings,
        backends=backends,
        integrations=integrations,
        sandbox=sandbox,
    )
    config._sources = sources
    config._origins = origins
    return config


def _problem_order(p: Problem) -> tuple[str, int]:
    file, sep, line = p.where.rpartition(":")
    if sep and line.isdigit():
        return file, int(line)
    return p.where, 0


def _check_references(
    raws: Sequence[tuple[str, int, Any]],
    backends: Mapping[str, Backend],
    at: Callable[[str], Callable[[Loc], str]],
) -> list[Problem]:
    """Undefined backends named by kill points or contacts, and duplicate integration ids.

    Works on the raw tables, so integrations that failed validation are checked too.
    """
    problems: list[Problem] = []
    defined = ", ".join(sorted(backends)) or "none"
    seen: dict[str, tuple[str, Loc]] = {}

    def undefined(src: str, raw: Any, local: int, what: str, sub: Loc, name: str) -> None:
        iid = raw.get("id")
        label = (f"integration {iid!r}: " if isinstance(iid, str)
                 else f"integration #{local + 1}: ")
        close = suggest(name, backends)
        problems.append(Problem(
            at(src)(("integrations", local, *sub, "backend")),
            f"{label}{what} names undefined backend {name!r}",
            (f"did you mean {close!r}? " if close else "") + f"defined backends: {defined}"))

    # hot path for large inventories: no string is built unless there is a problem
    for src, local, raw in raws:
        for kind in (*KILL_POINT_LISTS, "contacts"):
            items = raw.get(kind)
            if not isinstance(items, list):
                continue
            for j, item in enumerate(items):
                name = item.get("backend") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in backends:
                    undefined(src, raw, local, f"{kind}[{j}]", (kind, j), name)
        owner = raw.get("kill_switch_owner")
        name = owner.get("backend") if isinstance(owner, dict) else None
        if isinstance(name, str) and name not in backends:
            undefined(src, raw, local, "kill_switch_owner", ("kill_switch_owner",), name)
        iid = raw.get("id")
        if not isinstance(iid, str):
            continue
        if iid in seen:
            first_src, first_loc = seen[iid]
            problems.append(Problem(
                at(src)(("integrations", local)),
                f"duplicate integration id {iid!r} (first defined at "
                f"{at(first_src)(first_loc)})",
                "integration ids must be unique: rename one of them"))
        else:
            seen[iid] = (src, ("integrations", local))
    return problems
