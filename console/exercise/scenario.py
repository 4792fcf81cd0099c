"""Exercise scenarios: TOML in, a validated :class:`Scenario` out, every error with file:line.

A scenario is a timeline of injects (a message for the players and/or a fault applied to a
sandbox backend), the objectives the team is scored on, and an optional scripted response
(the runbooks a well-drilled team would run, played by ``exercise run --auto``)::

    name = "leaked-key"
    title = "A provider key leaked in a public repository"
    briefing = \"\"\"What the facilitator reads out.\"\"\"
    integrations = ["support-bot"]

    [[injects]]
    at = "T+00:00"
    message = "GitHub secret scanning: ..."
    fault = { backend = "openai-sandbox", latency = 1.5, throttle_rate = 0.3, retry_after = 1 }

    [[objectives]]
    id = "support-bot-contained"
    kind = "contained"
    integration = "support-bot"
    kill_points = ["credentials"]
    within = "10:00"

    [[response.steps]]
    at = "T+00:05"
    runbook = "revoke-credentials"
    selectors = ["support-bot"]

Times are exercise seconds from T+0: ``at`` is ``T+mm:ss`` (or ``T+h:mm:ss``), durations
(``within``, a fault's ``for``) are ``mm:ss`` (or ``h:mm:ss``). Injects and response steps are
kept in time order (file order among equals).

The shipped scenarios live in ``runbooks/exercises/`` (package data of the ``runbooks``
package, found with :mod:`importlib.resources`); users add folders with
``settings.exercise_dirs``, and a user scenario overrides a shipped one of the same name.
:func:`load_scenario` checks the file on its own; :func:`check_against` checks it against a
config (integrations, backends, runbooks) before it is played.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from console.config import Config, expand_user
from console.errors import ConfigError, ConsoleError
from console.inventory import KILL_POINT_LISTS
from console.tomlsrc import (
    Loc,
    Problem,
    TomlLocator,
    fixed_prefix,
    parse_toml,
    raise_problems,
    suggest,
    validation_problems,
)

__all__ = [
    "BACKEND_FAULT_FIELDS",
    "CREDENTIAL_STORE_TYPES",
    "FAULT_KINDS",
    "OBJECTIVE_KINDS",
    "SHIPPED_EXERCISES",
    "Fault",
    "Inject",
    "Objective",
    "ResponseStep",
    "Scenario",
    "ScenarioError",
    "check_against",
    "format_clock",
    "list_scenarios",
    "load_scenario",
    "parse_duration",
    "parse_time",
    "scenario_paths",
]

OBJECTIVE_KINDS: tuple[str, ...] = ("contained", "proof", "no-unconsented-irreversible",
                                    "no-live-copy")
"""Every objective kind a scenario may name."""
FAULT_KINDS: tuple[str, ...] = ("backend", "lock", "unlisted-copy")
"""Every fault kind: a sandbox backend misbehaving, a lock held by another commander, an
unlisted copy of an integration's key written into a secret store."""
BACKEND_FAULT_FIELDS: tuple[str, ...] = ("latency", "throttle_rate", "retry_after", "error_rate",
                                         "error_status", "timeout_rate", "hang", "down", "clear")
"""The settings of a backend fault (``Fault.settings`` holds the ones a scenario gives)."""
CREDENTIAL_STORE_TYPES: tuple[str, ...] = ("vault", "aws-secrets", "gcp-secrets", "aws-ssm")
"""Backend types an ``unlisted-copy`` fault can write a key into."""

_SLUG = r"^[a-z0-9][a-z0-9-]*$"
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ScenarioError(ConfigError):
    """A scenario cannot be used (invalid, missing, or does not fit the config): exit 2."""


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Fault:
    """A fault an inject applies.

    Attributes:
        kind: ``backend`` (a sandbox backend misbehaves), ``lock`` (another commander holds
            the integration's lock) or ``unlisted-copy`` (the integration's key value is
            written to a store location the inventory does not list).
        backend: The sandbox backend (``backend`` and ``unlisted-copy``).
        integration: The integration (``lock`` and ``unlisted-copy``).
        settings: For ``backend``: the given fields of :data:`BACKEND_FAULT_FIELDS`
            (``latency`` s, ``throttle_rate`` + ``retry_after`` s, ``error_rate`` +
            ``error_status``, ``timeout_rate`` + ``hang`` s, ``down``, ``clear``).
        holder: Who holds the lock (``lock``).
        path: Where the copy is written (``unlisted-copy``), in the store's own terms.
        duration: Exercise seconds after which the fault is cleared (``for``); None: never.
    """

    kind: str = "backend"
    backend: str = ""
    integration: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    holder: str = ""
    path: str = ""
    duration: float | None = None


@dataclass(frozen=True)
class Inject:
    """One entry of the timeline.

    Attributes:
        at: Exercise seconds from T+0.
        message: Shown to the players ("" when the inject is only a fault).
        fault: The fault applied at that time, if any.
        line: Line of the inject's ``[[injects]]`` table in the scenario file.
    """

    at: float
    message: str
    fault: Fault | None
    line: int


@dataclass(frozen=True)
class Objective:
    """What the team is scored on.

    Attributes:
        id: Unique in the scenario.
        kind: One of :data:`OBJECTIVE_KINDS`.
        integration: The integration (``contained``, ``proof``, ``no-live-copy``).
        kill_points: ``contained``: the kill points that must be off; empty: every kill point
            the integration lists.
        within: Deadline in exercise seconds from T+0 (``contained``, ``proof``); None: any
            time before the end.
    """

    id: str
    kind: str
    integration: str = ""
    kill_points: tuple[str, ...] = ()
    within: float | None = None


@dataclass(frozen=True)
class ResponseStep:
    """One step of the scripted response (``exercise run --auto``).

    Attributes:
        at: Exercise seconds from T+0 at which the run starts.
        runbook: Runbook name (or path).
        selectors: Inventory selectors.
        include_unlisted: Scan stores first and plan unlisted copies too.
        allow_irreversible: Consent to irreversible changes.
        reason: Recorded with the run.
    """

    at: float
    runbook: str
    selectors: tuple[str, ...]
    include_unlisted: bool = False
    allow_irreversible: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Scenario:
    """A validated scenario.

    Attributes:
        name: The file's stem.
        title: One line.
        briefing: What the facilitator reads out.
        integrations: Inventory ids involved.
        injects: The timeline, in time order.
        objectives: In file order.
        response: The scripted response, in time order (empty: none).
        path: The file it was loaded from.
        locations: ``file:line`` of parts of the file, by location in the model's order
            (``("injects", 2, "fault", "backend")``): see :meth:`where`.
    """

    name: str
    title: str
    briefing: str
    integrations: tuple[str, ...]
    injects: tuple[Inject, ...]
    objectives: tuple[Objective, ...]
    response: tuple[ResponseStep, ...]
    path: Path
    locations: Mapping[Loc, str] = field(default_factory=dict, compare=False, repr=False)

    def where(self, *loc: str | int) -> str:
        """``file:line`` of ``loc`` (or of its longest known prefix; else the file)."""
        for n in range(len(loc), 0, -1):
            found = self.locations.get(tuple(loc[:n]))
            if found:
                return found
        return str(self.path)

    @property
    def faults(self) -> list[Fault]:
        """Every fault of the timeline, in time order."""
        return [i.fault for i in self.injects if i.fault is not None]


# --------------------------------------------------------------------------- times

_TIME = re.compile(r"T\+(?:(\d+):([0-5]\d)|(\d{1,3})):([0-5]\d)")
_DURATION = re.compile(r"(?:(\d+):([0-5]\d)|(\d{1,3})):([0-5]\d)")


def _seconds(m: re.Match[str]) -> float:
    hours, minutes_h, minutes, secs = m.groups()
    if hours is not None:
        return float(int(hours) * 3600 + int(minutes_h) * 60 + int(secs))
    return float(int(minutes) * 60 + int(secs))


def parse_time(text: str) -> float:
    """Seconds from T+0 of ``T+mm:ss`` or ``T+h:mm:ss``.

    Raises:
        ValueError: Not in that format (the message says what is expected).
    """
    m = _TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a time: write T+mm:ss or T+h:mm:ss, e.g. 'T+01:30'")
    return _seconds(m)


def parse_duration(text: str) -> float:
    """Seconds of ``mm:ss`` or ``h:mm:ss``.

    Raises:
        ValueError: Not in that format.
    """
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a duration: write mm:ss or h:mm:ss, e.g. '05:00'")
    return _seconds(m)


def format_clock(seconds: float, *, prefix: str = "T+") -> str:
    """``T+mm:ss`` (``T+h:mm:ss`` from one hour) of exercise ``seconds`` (rounded down).

    ``prefix=""`` formats a duration.
    """
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{prefix}{h}:{m:02d}:{s:02d}" if h else f"{prefix}{m:02d}:{s:02d}"


# --------------------------------------------------------------------------- file models


class _ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=_SLUG)
    title: str = Field(min_length=1)
    briefing: str = Field(min_length=1)
    integrations: list[str] = Field(min_length=1)
    injects: list[dict[str, Any]] = Field(min_length=1)
    objectives: list[dict[str, Any]] = Field(min_length=1)
    response: dict[str, Any] | None = None


class _InjectFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: str
    message: str = ""
    fault: dict[str, Any] | None = None


class _FaultFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    kind: Literal["backend", "lock", "unlisted-copy"] = "backend"
    backend: str | None = Field(default=None, min_length=1)
    integration: str | None = Field(default=None, min_length=1)
    holder: str | None = Field(default=None, min_length=1)
    path: str | None = Field(default=None, min_length=1)
    for_: str | None = Field(default=None, alias="for")
    latency: float | None = Field(default=None, ge=0)
    throttle_rate: float | None = Field(default=None, ge=0, le=1)
    retry_after: float | None = Field(default=None, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    error_status: int | None = Field(default=None, ge=500, le=599)
    timeout_rate: float | None = Field(default=None, ge=0, le=1)
    hang: float | None = Field(default=None, gt=0)
    down: bool | None = None
    clear: bool | None = None


class _ObjectiveFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    kind: Literal["contained", "proof", "no-unconsented-irreversible", "no-live-copy"]
    integration: str | None = Field(default=None, min_length=1)
    kill_points: list[Literal["credentials", "batches", "flags", "egress"]] | None = None
    within: str | None = None


class _ResponseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] = Field(min_length=1)


class _StepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    at: str
    runbook: str = Field(min_length=1)
    selectors: list[str] = Field(min_length=1)
    include_unlisted: bool = False
    allow_irreversible: bool = False
    reason: str = ""


_FIELD_HINTS = {
    "latency": "latency is seconds added to every call, e.g. latency = 1.5",
    "throttle_rate": "a fraction of calls from 0 to 1 answered 429, e.g. throttle_rate = 0.3",
    "retry_after": "seconds sent in Retry-After with a 429, e.g. retry_after = 1",
    "error_rate": "a fraction of calls from 0 to 1 answered 5xx, e.g. error_rate = 0.5",
    "error_status": "an HTTP status from 500 to 599, e.g. error_status = 503",
    "timeout_rate": "a fraction of calls from 0 to 1 that hang, e.g. timeout_rate = 0.2",
    "hang": "seconds a timed-out call hangs (more than 0), e.g. hang = 5",
    "down": "down = true refuses every connection",
    "clear": "clear = true switches the backend's faults off",
    "include_unlisted": "true or false",
    "allow_irreversible": "true or false (consent to irreversible changes)",
    "selectors": 'a list of inventory selectors, e.g. selectors = ["support-bot"]',
    "title": "one line naming the scenario",
    "briefing": "a few paragraphs the facilitator reads out",
    "integrations": 'the inventory ids involved, e.g. integrations = ["support-bot"]',
    "injects": "add [[injects]] tables: at = \"T+00:00\", message = \"...\"",
    "objectives": "add [[objectives]] tables: id, kind, integration, within",
    "name": "the scenario's name is its file name: lower-case letters, digits and '-'",
    "steps": "add [[response.steps]] tables: at, runbook, selectors",
}


def _with_hints(problems: list[Problem], loc_of: Callable[[Problem], str | None]) -> list[Problem]:
    """Fill in a hint for problems that have none, from :data:`_FIELD_HINTS`."""
    out: list[Problem] = []
    for p in problems:
        hint = p.hint.replace("for_", "for")
        key = loc_of(p)
        if not hint and key in _FIELD_HINTS:
            hint = _FIELD_HINTS[key]
        out.append(Problem(p.where, p.msg.replace("for_", "for"), hint))
    return out


def _validate(model: type[BaseModel], raw: Any, locate: Callable[[Loc], str], prefix: Loc,
              label: str, problems: list[Problem]) -> Any:
    """``model.model_validate(raw)``, or None with the problems (hinted) appended."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        found = validation_problems(exc, model, locate, prefix,
                                    fixed_prefix(label) if label else None)
        fields = [str(e["loc"][-1]) if e["loc"] else "" for e in exc.errors()]
        keyed = dict(zip([id(p) for p in found], fields, strict=False))
        problems += _with_hints(found, lambda p: keyed.get(id(p)))
        return None


# --------------------------------------------------------------------------- loading


def _load_file(path: Path) -> Scenario:
    doc, text = parse_toml(path, ScenarioError)
    locator = TomlLocator(text)

    def locate(loc: Loc) -> str:
        return locator.where(path, loc)

    problems: list[Problem] = []
    top = _validate(_ScenarioFile, doc, locate, (), "", problems)
    if top is None:
        raise_problems(problems, ScenarioError, title="Invalid scenario")
    assert isinstance(top, _ScenarioFile)

    name = top.name or path.stem
    if name != path.stem:
        problems.append(Problem(locate(("name",)),
                                f"scenario name {name!r} does not match its file name "
                                f"{path.name!r}",
                                f"rename the file to {name}.toml or set name = {path.stem!r}"))
    elif not re.match(_SLUG, name):
        problems.append(Problem(str(path), f"scenario file name {path.name!r} is not a valid "
                                "scenario name", _FIELD_HINTS["name"]))
    integrations: list[str] = []
    for i, iid in enumerate(top.integrations):
        if iid in integrations:
            problems.append(Problem(locate(("integrations", i)),
                                    f"integration {iid!r} is listed twice",
                                    "list each integration once"))
        elif not iid:
            problems.append(Problem(locate(("integrations", i)), "empty integration id",
                                    _FIELD_HINTS["integrations"]))
        else:
            integrations.append(iid)

    locations: dict[Loc, str] = {}
    injects = _injects(top.injects, locate, problems, locations)
    objectives = _objectives(top.objectives, integrations, locate, problems, locations)
    response = _response(top.response, locate, problems, locations)
    for i in range(len(top.integrations)):
        locations[("integrations", i)] = locate(("integrations", i))
    raise_problems(problems, ScenarioError, title="Invalid scenario")
    return Scenario(name=name, title=top.title.strip(), briefing=top.briefing.strip(),
                    integrations=tuple(integrations), injects=injects,
                    objectives=objectives, response=response, path=path,
                    locations=locations)


def _time(value: str, loc: Loc, locate: Callable[[Loc], str], problems: list[Problem],
          label: str, *, duration: bool = False) -> float | None:
    try:
        return parse_duration(value) if duration else parse_time(value)
    except ValueError as exc:
        field_name = str(loc[-1])
        example = ("'05:00' (five minutes) or '1:00:00'" if duration
                   else "'T+00:30' (thirty seconds in) or 'T+1:05:00'")
        problems.append(Problem(locate(loc), f"{label}{field_name}: {exc}",
                                f"use {example}"))
        return None


def _order(times: Sequence[float | None]) -> list[int]:
    """File indices in time order (file order among equals; unknown times last)."""
    return sorted(range(len(times)), key=lambda i: (times[i] is None, times[i] or 0.0))


def _injects(raws: list[dict[str, Any]], locate: Callable[[Loc], str],
             problems: list[Problem], locations: dict[Loc, str]) -> tuple[Inject, ...]:
    made: list[Inject | None] = []
    times: list[float | None] = []
    for i, raw in enumerate(raws):
        label = f"inject #{i + 1}: "
        loc: Loc = ("injects", i)
        parsed = _validate(_InjectFile, raw, locate, loc, label, problems)
        if parsed is None:
            made.append(None)
            times.append(None)
            continue
        assert isinstance(parsed, _InjectFile)
        at = _time(parsed.at, (*loc, "at"), locate, problems, label)
        fault = None
        if parsed.fault is not None:
            fault = _fault(parsed.fault, (*loc, "fault"), locate, problems, label)
        elif not parsed.message.strip():
            problems.append(Problem(locate(loc), f"{label}an inject needs a message, a fault "
                                    "or both", 'add message = "..." (what the players see) or '
                                    "fault = { backend = ..., latency = 1 }"))
        line_text = locate(loc).rpartition(":")[2]
        line = int(line_text) if line_text.isdigit() else 0
        times.append(at)
        made.append(Inject(at=at or 0.0, message=parsed.message.strip(), fault=fault,
                           line=line))
    out: list[Inject] = []
    for old in _order(times):
        item = made[old]
        if item is None:
            continue
        for sub in ((), ("at",), ("message",), ("fault",), ("fault", "backend"),
                    ("fault", "integration"), ("fault", "path")):
            locations[("injects", len(out), *sub)] = locate(("injects", old, *sub))
        out.append(item)
    return tuple(out)


def _fault(raw: dict[str, Any], loc: Loc, locate: Callable[[Loc], str],
           problems: list[Problem], label: str) -> Fault | None:
    label = f"{label}fault: "
    before = len(problems)
    parsed = _validate(_FaultFile, raw, locate, loc, label, problems)
    if parsed is None:
        return None
    assert isinstance(parsed, _FaultFile)
    given = {k: getattr(parsed, k) for k in BACKEND_FAULT_FIELDS if getattr(parsed, k) is not None}

    def bad(key: str, msg: str, hint: str) -> None:
        problems.append(Problem(locate((*loc, key)), label + msg, hint))

    def refuse(keys: Sequence[str], what: str) -> None:
        for key in keys:
            if raw.get(key) is not None:
                bad(key, f"{key!r} does not apply to {what}",
                    f"remove {key}, or change the fault's kind")

    def need(keys: Sequence[str], what: str, example: str) -> None:
        for key in keys:
            if raw.get(key) is None:
                bad(key, f"{what} needs {key!r}", example)

    if parsed.kind == "backend":
        refuse(("integration", "holder", "path"), "a backend fault")
        need(("backend",), "a backend fault",
             'name a sandbox backend, e.g. backend = "openai-sandbox"')
        if not given:
            bad("backend", "a backend fault sets nothing",
                f"set one of {', '.join(BACKEND_FAULT_FIELDS)}")
        if parsed.clear and len(given) > 1:
            bad("clear", "clear = true switches every fault off: it takes no other setting",
                "use two injects: one to clear, one to set new faults")
        if parsed.clear and parsed.for_ is not None:
            bad("for", "clear = true takes no 'for'", "remove for")
        for dependent, primary in (("retry_after", "throttle_rate"),
                                   ("error_status", "error_rate"), ("hang", "timeout_rate")):
            if dependent in given and primary not in given:
                bad(dependent, f"{dependent} applies to {primary}, which is not set",
                    f"add {primary} (a fraction from 0 to 1) or remove {dependent}")
    elif parsed.kind == "lock":
        refuse(("backend", "path", *BACKEND_FAULT_FIELDS), "a lock fault")
        need(("integration", "holder"), "a lock fault",
             'e.g. fault = { kind = "lock", integration = "support-bot", '
             'holder = "alice@bridge", for = "00:30" }')
    else:
        refuse(("holder", "for", *BACKEND_FAULT_FIELDS), "an unlisted-copy fault")
        need(("integration", "backend", "path"), "an unlisted-copy fault",
             'e.g. fault = { kind = "unlisted-copy", integration = "support-bot", '
             'backend = "vault-sandbox", path = "ci/leaked-openai" }')
    duration = None
    if parsed.for_ is not None:
        duration = _time(parsed.for_, (*loc, "for"), locate, problems, label, duration=True)
        if duration == 0:
            bad("for", "'for' must be longer than 00:00", "remove for to keep the fault on")
    if len(problems) > before:
        return None
    return Fault(kind=parsed.kind, backend=parsed.backend or "",
                 integration=parsed.integration or "", settings=given,
                 holder=parsed.holder or "", path=parsed.path or "", duration=duration)


_OBJECTIVE_FIELDS: dict[str, tuple[str, ...]] = {
    "contained": ("integration", "kill_points", "within"),
    "proof": ("integration", "within"),
    "no-unconsented-irreversible": (),
    "no-live-copy": ("integration",),
}


def _objectives(raws: list[dict[str, Any]], integrations: list[str],
                locate: Callable[[Loc], str], problems: list[Problem],
                locations: dict[Loc, str]) -> tuple[Objective, ...]:
    out: list[Objective] = []
    first: dict[str, int] = {}
    for i, raw in enumerate(raws):
        oid = raw.get("id") if isinstance(raw, dict) else None
        label = f"objective {oid!r}: " if isinstance(oid, str) else f"objective #{i + 1}: "
        loc: Loc = ("objectives", i)
        parsed = _validate(_ObjectiveFile, raw, locate, loc, label, problems)
        if parsed is None:
            continue
        assert isinstance(parsed, _ObjectiveFile)
        before = len(problems)
        if parsed.id in first:
            problems.append(Problem(locate((*loc, "id")), f"{label}duplicate objective id "
                                    f"(first at {locate(('objectives', first[parsed.id]))})",
                                    "objective ids must be unique within a scenario"))
        first.setdefault(parsed.id, i)
        allowed = _OBJECTIVE_FIELDS[parsed.kind]
        for key in ("integration", "kill_points", "within"):
            if raw.get(key) is not None and key not in allowed:
                problems.append(Problem(
                    locate((*loc, key)), f"{label}{key!r} does not apply to a "
                    f"{parsed.kind!r} objective",
                    f"remove {key}" + (f"; a {parsed.kind!r} objective takes "
                                       f"{', '.join(allowed)}" if allowed else "")))
        if "integration" in allowed:
            if parsed.integration is None:
                problems.append(Problem(locate(loc), f"{label}a {parsed.kind!r} objective "
                                        "needs 'integration'",
                                        f"add integration = {(integrations or ['...'])[0]!r}"))
            elif parsed.integration not in integrations:
                close = suggest(parsed.integration, integrations)
                problems.append(Problem(
                    locate((*loc, "integration")),
                    f"{label}integration {parsed.integration!r} is not one of the scenario's "
                    "integrations",
                    (f"did you mean {close!r}? " if close else "")
                    + f"the scenario lists: {', '.join(integrations) or 'none'}"))
        kill_points = tuple(dict.fromkeys(parsed.kill_points or ()))
        if parsed.kill_points is not None and not kill_points:
            problems.append(Problem(locate((*loc, "kill_points")), f"{label}kill_points is "
                                    "empty", "list kill points, or remove kill_points for "
                                    f"all of them ({', '.join(KILL_POINT_LISTS)})"))
        within = None
        if parsed.within is not None and "within" in allowed:
            within = _time(parsed.within, (*loc, "within"), locate, problems, label,
                           duration=True)
        if len(problems) > before:
            continue
        for sub in ((), ("integration",)):
            locations[("objectives", len(out), *sub)] = locate((*loc, *sub))
        out.append(Objective(id=parsed.id, kind=parsed.kind,
                             integration=parsed.integration or "",
                             kill_points=kill_points, within=within))
    return tuple(out)


def _response(raw: dict[str, Any] | None, locate: Callable[[Loc], str],
              problems: list[Problem], locations: dict[Loc, str]) -> tuple[ResponseStep, ...]:
    if raw is None:
        return ()
    parsed = _validate(_ResponseFile, raw, locate, ("response",), "response: ", problems)
    if parsed is None:
        return ()
    assert isinstance(parsed, _ResponseFile)
    made: list[ResponseStep | None] = []
    times: list[float | None] = []
    for i, raw_step in enumerate(parsed.steps):
        label = f"response step #{i + 1}: "
        loc: Loc = ("response", "steps", i)
        step = _validate(_StepFile, raw_step, locate, loc, label, problems)
        if step is None:
            made.append(None)
            times.append(None)
            continue
        assert isinstance(step, _StepFile)
        at = _time(step.at, (*loc, "at"), locate, problems, label)
        selectors = tuple(s.strip() for s in step.selectors if s.strip())
        if not selectors:
            problems.append(Problem(locate((*loc, "selectors")), f"{label}selectors are empty",
                                    _FIELD_HINTS["selectors"]))
        times.append(at)
        made.append(ResponseStep(at=at or 0.0, runbook=step.runbook, selectors=selectors,
                                 include_unlisted=step.include_unlisted,
                                 allow_irreversible=step.allow_irreversible,
                                 reason=step.reason))
    out: list[ResponseStep] = []
    for old in _order(times):
        item = made[old]
        if item is None:
            continue
        for sub in ((), ("runbook",), ("selectors",)):
            locations[("response", len(out), *sub)] = locate(("response", "steps", old, *sub))
        out.append(item)
    return tuple(out)


# --------------------------------------------------------------------------- finding


def _shipped_dir() -> Path:
    from console.runbook import SHIPPED_DIR

    return SHIPPED_DIR / "exercises"


SHIPPED_EXERCISES = _shipped_dir()
"""The scenarios shipped with Killswitch (``exercises/`` of the ``runbooks`` package)."""


def _user_dirs(config: Config | None) -> list[Path]:
    if config is None:
        return []
    dirs: list[Path] = []
    for i, d in enumerate(config.settings.exercise_dirs):
        p = config.resolve(d)
        if not p.is_dir():
            raise ScenarioError(
                f"exercise folder {p} does not exist",
                where=config.locate(("settings", "exercise_dirs", i)) or str(config.path),
                hint="settings.exercise_dirs entries are relative to the config file's folder")
        dirs.append(p)
    return dirs


def scenario_paths(config: Config | None = None) -> dict[str, Path]:
    """Every scenario file by name: shipped ones, overridden by ``settings.exercise_dirs``.

    Raises:
        ScenarioError: An exercise folder is missing, or two user files share a name.
    """
    out: dict[str, Path] = {}
    if SHIPPED_EXERCISES.is_dir():
        out = {p.stem: p for p in sorted(SHIPPED_EXERCISES.glob("*.toml"))}
    user: dict[str, Path] = {}
    for d in _user_dirs(config):
        for p in sorted(d.glob("*.toml")):
            if p.stem in user and user[p.stem].resolve() != p.resolve():
                raise ScenarioError(
                    f"two scenarios are named {p.stem!r}: {user[p.stem]} and {p}",
                    where=str(p),
                    hint="rename one of the files (a scenario's name is its file name)",
                    title="Scenario name clash")
            user.setdefault(p.stem, p)
    out.update(user)
    return dict(sorted(out.items()))


def load_scenario(name_or_path: str, config: Config | None = None) -> Scenario:
    """Load one scenario by name, or from a file path (anything ending ``.toml`` or with ``/``).

    Checks the file on its own; :func:`check_against` checks it against a config.

    Args:
        name_or_path: ``leaked-key``, or ``./my-scenario.toml``.
        config: Supplies ``settings.exercise_dirs``; None: shipped scenarios only.

    Raises:
        ScenarioError: No such scenario, the file is not valid TOML, or the scenario is
            invalid (every problem listed; ``where`` is the first one's ``file:line``).
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        p = expand_user(name_or_path, what="the scenario path")
        if not p.is_absolute() and not _is_file(p) and config is not None:
            p = config.resolve(p)
        if not _is_file(p):
            raise ScenarioError(f"scenario file {p} not found", where=str(p),
                                hint="give a scenario name (`killswitch exercise list`), or "
                                "the path of a .toml file")
        return _load_file(p.resolve())
    paths = scenario_paths(config)
    if name_or_path not in paths:
        close = difflib.get_close_matches(name_or_path, list(paths), n=1)
        raise ScenarioError(
            f"no scenario named {name_or_path!r}",
            where=name_or_path,
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"scenarios: {', '.join(paths) or 'none'}")
    return _load_file(paths[name_or_path])


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:
        return False


def list_scenarios(config: Config | None = None) -> list[Scenario]:
    """Load every scenario (shipped, then the user's overriding them), sorted by name.

    Raises:
        ScenarioError: A scenario is invalid (the first found, with all its problems), an
            exercise folder is missing, or two user scenarios share a name.
    """
    return [_load_file(p) for p in scenario_paths(config).values()]


# --------------------------------------------------------------------------- config fit


def check_against(scenario: Scenario, config: Config) -> None:
    """Check that ``scenario`` can be played on ``config``.

    Every integration (listed, or named by a fault) is in the inventory; every fault's
    backend is a configured sandbox backend; an ``unlisted-copy`` fault writes into a
    credential store (:data:`CREDENTIAL_STORE_TYPES`) at a location the inventory does not
    list; every response step's runbook loads (and is not ``restore``) and its selectors
    match integrations.

    Raises:
        ScenarioError: Every problem found, each naming the scenario's ``file:line``.
    """
    from console.inventory import select
    from console.runbook import load_runbook

    problems: list[Problem] = []
    known = [i.id for i in config.integrations]
    where_cfg = str(config.path)

    def unknown_integration(iid: str, where: str, what: str) -> None:
        close = suggest(iid, known)
        problems.append(Problem(
            where, f"{what} {iid!r} is not in the inventory of {where_cfg}",
            (f"did you mean {close!r}? " if close else "")
            + f"integrations: {', '.join(known[:20]) or 'none'}"
            + (", ..." if len(known) > 20 else "")))

    def backend_problem(name: str, where: str, what: str) -> bool:
        if name not in config.backends:
            close = suggest(name, config.backends)
            problems.append(Problem(
                where, f"{what}: backend {name!r} is not defined in {where_cfg}",
                (f"did you mean {close!r}? " if close else "")
                + f"backends: {', '.join(config.backends) or 'none'}"))
            return True
        if not config.backends[name].sandbox:
            problems.append(Problem(
                where, f"{what}: backend {name!r} is not a sandbox backend; an exercise "
                "injects faults only into sandbox backends",
                "name a backend marked `sandbox = true`"))
            return True
        return False

    for i, iid in enumerate(scenario.integrations):
        if config.integration(iid) is None:
            unknown_integration(iid, scenario.where("integrations", i), "integration")
    for i, inject in enumerate(scenario.injects):
        fault = inject.fault
        if fault is None:
            continue
        what = f"inject at {format_clock(inject.at)}: fault"
        if fault.integration and config.integration(fault.integration) is None:
            unknown_integration(fault.integration,
                                scenario.where("injects", i, "fault", "integration"),
                                f"{what}: integration")
        if fault.backend and backend_problem(
                fault.backend, scenario.where("injects", i, "fault", "backend"), what):
            continue
        if fault.kind == "unlisted-copy":
            problems += _copy_problems(scenario, i, fault, config, what)
    for i, step in enumerate(scenario.response):
        what = f"response step at {format_clock(step.at)}"
        try:
            runbook = load_runbook(step.runbook, config)
        except ConfigError as exc:
            problems.append(Problem(scenario.where("response", i, "runbook"),
                                    f"{what}: runbook {step.runbook!r}: {exc.msg}",
                                    exc.hint))
        else:
            if runbook.is_restore:
                problems.append(Problem(scenario.where("response", i, "runbook"),
                                        f"{what}: the restore runbook cannot be a response "
                                        "step", "name a containment runbook, e.g. kill-switch"))
        try:
            if not select(config.integrations, list(step.selectors)):
                problems.append(Problem(scenario.where("response", i, "selectors"),
                                        f"{what}: selectors {' '.join(step.selectors)!r} "
                                        "match no integration",
                                        "check with `killswitch inventory list SELECTOR...`"))
        except ConsoleError as exc:  # UsageError: a bad selector
            problems.append(Problem(scenario.where("response", i, "selectors"),
                                    f"{what}: {exc.msg}", exc.hint))
    raise_problems(problems, ScenarioError, title="Scenario does not fit this config")


_STORE_FIELDS = ("path", "secret_id", "name")
"""Reference fields naming a location in a credential store (vault, AWS, GCP, SSM)."""


def _copy_problems(scenario: Scenario, i: int, fault: Fault, config: Config,
                   what: str) -> list[Problem]:
    where = scenario.where("injects", i, "fault", "backend")
    backend = config.backends[fault.backend]
    if backend.type not in CREDENTIAL_STORE_TYPES:
        stores = [n for n, b in config.backends.items()
                  if b.type in CREDENTIAL_STORE_TYPES and b.sandbox]
        return [Problem(where, f"{what}: backend {fault.backend!r} is a {backend.type!r} "
                        "backend, not a credential store",
                        f"an unlisted copy goes into a store ({', '.join(CREDENTIAL_STORE_TYPES)}"
                        f"): {', '.join(stores) or 'none configured'}")]
    for integ in config.integrations:
        for ref in integ.credentials:
            if ref.backend != fault.backend:
                continue
            values = {str(v).strip("/") for k, v in ref.fields().items()
                      if k in _STORE_FIELDS}
            if fault.path.strip("/") in values:
                return [Problem(scenario.where("injects", i, "fault", "path"),
                                f"{what}: {fault.backend}:{fault.path} is listed in the "
                                f"inventory (integration {integ.id!r}): it would not be an "
                                "unlisted copy", "choose a path the inventory does not list, "
                                "e.g. 'ci/leaked-key'")]
    return []

