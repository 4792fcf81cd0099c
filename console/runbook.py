"""Runbook TOML -> validated model.

A runbook is a small DAG of steps, each naming an action kind from
:data:`adapters.base.KILL_POINTS`::

    name = "kill-switch"
    description = "Contain one or more integrations"

    [[steps]]
    id = "flags-off"
    action = "flag.disable"

    [[steps]]
    id = "revoke"
    action = "credential.disable"
    needs = ["flags-off"]
    when = "status != 'suspended'"
    timeout = 30
    on_error = "continue"

The shipped runbooks live in the repository's ``runbooks/``, which is also the ``runbooks``
package: they travel inside the wheel as package data and are found with
:mod:`importlib.resources` wherever Killswitch is installed. Users add folders with
``settings.runbook_dirs``. A runbook's name is its file's stem, and two files with the same
name are a :class:`~console.errors.ConfigError`. ``kind = "restore"`` marks the runbook that
undoes a previous run from its journal: it has no steps, the engine does the work.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from adapters.base import KILL_POINTS, adapter_names
from adapters.evidence import EVIDENCE_ACTION
from console.config import Config, expand_user
from console.errors import ConfigError, RunbookError, RunbookSyntaxError, RunbookValidationError
from console.tomlsrc import (
    Problem,
    TomlLocator,
    fixed_prefix,
    parse_toml,
    raise_problems,
    validation_problems,
)
from console.when import When, compile_when

__all__ = [
    "SHIPPED_DIR",
    "Runbook",
    "Step",
    "list_runbooks",
    "load_runbook",
    "runbook_paths",
    "served_actions",
]

Loc = tuple[str | int, ...]


def _shipped_dir() -> Path:
    """The folder of the shipped runbooks: ``importlib.resources.files("runbooks")``.

    Works from a wheel, an editable install and a source checkout. A ``runbooks`` that is
    not a regular package (a folder of that name in the current directory, imported as a
    namespace package because the installed package was not found) is not ours: the folder
    next to ``console/`` is used. A package that is not on the file system (a zip) is
    copied once to a private temporary folder, removed at exit.
    """
    import importlib
    import importlib.resources

    beside = Path(__file__).resolve().parent.parent / "runbooks"
    try:
        package = importlib.import_module("runbooks")
    except ImportError:
        return beside
    if getattr(package, "__file__", None) is None:  # a namespace package: not the shipped one
        return beside
    root = importlib.resources.files(package)
    if isinstance(root, Path):
        return root.resolve()
    return _extract(root)


def _extract(root: Any) -> Path:
    """Copy the runbook files (``*.toml``, in sub-folders too) of a non-file-system package
    resource ``root`` to a private temporary folder removed at exit."""
    import atexit
    import shutil
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="killswitch-runbooks-"))  # 0700
    atexit.register(shutil.rmtree, out, ignore_errors=True)

    def copy(src: Any, dst: Path) -> None:
        for entry in src.iterdir():
            if entry.is_dir():
                (dst / entry.name).mkdir()
                copy(entry, dst / entry.name)
            elif entry.name.endswith(".toml"):
                (dst / entry.name).write_bytes(entry.read_bytes())

    copy(root, out)
    return out


SHIPPED_DIR = _shipped_dir()
"""The runbooks shipped with Killswitch (the ``runbooks`` package's folder)."""


class Step(BaseModel):
    """One step of a runbook (a ``[[steps]]`` table)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Unique inside the runbook."""
    action: str
    """Action kind, e.g. ``flag.disable``."""
    options: dict[str, Any] = {}
    """Passed to the adapter as ``PlanContext.options``."""
    needs: list[str] = []
    """Step ids that must finish first."""
    when: str | None = None
    """Condition over integration fields; the step is skipped where it is false."""
    timeout: float | None = Field(default=None, gt=0)
    """Per-operation timeout, seconds (default: the backend's or the settings')."""
    on_error: Literal["stop", "continue"] = "stop"
    """Whether a failure stops the dependent steps of that integration or not."""

    _when: When | None = PrivateAttr(default=None)

    @property
    def kill_point(self) -> str:
        """The inventory list this step acts on (``credentials``, ``flags``, ...)."""
        return KILL_POINTS.get(self.action, "")

    def applies_to(self, integration: Any) -> bool:
        """Whether the step runs for ``integration`` (its ``when`` holds, or it has none)."""
        if self.when is None:
            return True
        if self._when is None:
            self._when = compile_when(self.when)
        return self._when.evaluate(integration)


class Runbook(BaseModel):
    """A validated runbook; ``steps`` are in topological order."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """The runbook's name (its file's stem)."""
    description: str = ""
    """One paragraph for the runbook picker."""
    path: Path
    """The file it was loaded from."""
    kind: Literal["steps", "restore"] = "steps"
    """``restore`` undoes a previous run from its journal and has no steps."""
    steps: list[Step] = []
    """The steps, dependencies first."""

    @property
    def is_restore(self) -> bool:
        """True for the restore runbook."""
        return self.kind == "restore"

    def step(self, step_id: str) -> Step:
        """The step with ``step_id``.

        Raises:
            KeyError: No such step.
        """
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


class _RunbookFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    kind: Literal["steps", "restore"] = "steps"
    steps: list[dict[str, Any]] = []


def served_actions() -> dict[str, list[str]]:
    """Action kinds served by installed adapters, with the adapters serving each.

    Read from the declarations (built-ins from :mod:`adapters.specs`), so loading a runbook
    imports no SDK. An adapter that fails to import is skipped.

    ``evidence.preserve`` is carried out by the engine with any adapter that has
    ``CAN_PRESERVE`` (a class attribute, not a declaration): it is served by the first such
    adapter found, looking at the in-process ``fake`` first (no SDK to import), so that the
    search stops before any cloud SDK is imported.
    """
    from console.declarations import adapter_names, declared, load_adapter_class

    out: dict[str, list[str]] = {}
    names = adapter_names()
    for name, found in declared(names).items():
        if found.spec is None:
            continue
        for kind in found.spec.actions:
            out.setdefault(kind, []).append(name)
    for name in sorted(names, key=lambda n: n != "fake"):
        try:
            preserves = bool(getattr(load_adapter_class(name), "CAN_PRESERVE", False))
        except Exception:  # noqa: BLE001, S112 - a broken adapter serves nothing
            continue
        if preserves:
            out.setdefault(EVIDENCE_ACTION, []).append(name)
            break
    return out


# --------------------------------------------------------------------------- loading


def _load_file(path: Path) -> Runbook:
    doc, text = parse_toml(path, RunbookSyntaxError)
    locator = TomlLocator(text)

    def locate(loc: Loc) -> str:
        return locator.where(path, loc)

    problems: list[Problem] = []
    try:
        parsed = _RunbookFile.model_validate(doc)
    except ValidationError as exc:
        problems += validation_problems(exc, _RunbookFile, locate)
        raw_steps = doc.get("steps")
        ok = isinstance(raw_steps, list) and all(isinstance(r, dict) for r in raw_steps)
        parsed = _RunbookFile(steps=list(raw_steps) if ok and isinstance(raw_steps, list)
                              else [])
    steps: list[Step] = []
    for i, raw in enumerate(parsed.steps):
        sid = raw.get("id")
        label = f"step {sid!r}: " if isinstance(sid, str) else f"step #{i + 1}: "
        try:
            steps.append(Step.model_validate(raw))
        except ValidationError as exc:
            problems += validation_problems(
                exc, Step, locate, ("steps", i), fixed_prefix(label)
            )
    if problems:
        raise_problems(problems, RunbookValidationError, title="Invalid runbook")

    name = parsed.name or path.stem
    if name != path.stem:
        problems.append(
            Problem(
                locate(("name",)),
                f"runbook name {name!r} does not match its file name {path.name!r}",
                f"rename the file to {name}.toml or set name = {path.stem!r}",
            )
        )
    if parsed.kind == "restore" and steps:
        problems.append(
            Problem(
                locate(("steps",)),
                "a restore runbook has no steps: the engine replays the run's journal",
                "remove the [[steps]] tables or the kind field",
            )
        )
    if parsed.kind == "steps" and not steps:
        problems.append(
            Problem(locate(()), "runbook has no steps", "add [[steps]] tables")
        )
    problems += _check_steps(steps, locate)
    order, cycle_problems = _toposort(steps, locate)
    problems += cycle_problems
    raise_problems(problems, RunbookValidationError, title="Invalid runbook")
    return Runbook(
        name=name, description=parsed.description, path=path, kind=parsed.kind, steps=order
    )


_VERB_SYNONYMS = {
    "off": "disable",
    "kill": "disable",
    "revoke": "disable",
    "deactivate": "disable",
    "on": "enable",
    "activate": "enable",
    "delete": "destroy",
    "remove": "destroy",
    "stop": "cancel",
    "deny": "block",
    "allow": "unblock",
}


def _suggest_action(action: str) -> str | None:
    """The action kind ``action`` most likely means (plural nouns, verb synonyms, typos)."""
    noun, _, verb = action.strip().lower().partition(".")
    noun = noun[:-1] if noun.endswith("s") and noun[:-1] in _NOUNS else noun
    candidate = f"{noun}.{_VERB_SYNONYMS.get(verb, verb)}" if verb else noun
    if candidate in KILL_POINTS:
        return candidate
    close = difflib.get_close_matches(candidate, list(KILL_POINTS), n=1, cutoff=0.5)
    return close[0] if close else None


_NOUNS = {k.partition(".")[0] for k in KILL_POINTS}


def _check_steps(steps: list[Step], locate: Callable[[Loc], str]) -> list[Problem]:
    problems: list[Problem] = []
    served = served_actions()
    ids = [s.id for s in steps]
    first: dict[str, int] = {}
    for i, step in enumerate(steps):
        label = f"step {step.id!r}: "
        if step.id in first:
            earlier = locate(("steps", first[step.id], "id"))
            problems.append(
                Problem(
                    locate(("steps", i, "id")),
                    f"{label}duplicate step id (first at {earlier})",
                    "step ids must be unique within a runbook",
                )
            )
        else:
            first[step.id] = i
        if step.action not in KILL_POINTS:
            close = _suggest_action(step.action)
            problems.append(
                Problem(
                    locate(("steps", i, "action")),
                    f"{label}unknown action {step.action!r}",
                    (f"did you mean {close!r}? " if close else "")
                    + f"actions: {', '.join(KILL_POINTS)}",
                )
            )
        elif step.action not in served:
            offered = ", ".join(sorted(served)) or "none"
            problems.append(
                Problem(
                    locate(("steps", i, "action")),
                    f"{label}no installed adapter serves {step.action!r}",
                    f"installed adapters: {', '.join(adapter_names()) or 'none'}; "
                    f"actions they serve: {offered}",
                )
            )
        for j, need in enumerate(step.needs):
            if need not in ids:
                near = difflib.get_close_matches(need, ids, n=1)
                problems.append(
                    Problem(
                        locate(("steps", i, "needs", j)),
                        f"{label}needs unknown step {need!r}",
                        (f"did you mean {near[0]!r}? " if near else "")
                        + f"steps: {', '.join(ids)}",
                    )
                )
        if step.when is not None:
            try:
                step._when = compile_when(step.when)
            except RunbookValidationError as exc:
                problems.append(Problem(locate(("steps", i, "when")), label + exc.msg, exc.hint))
    return problems


def _toposort(
    steps: list[Step], locate: Callable[[Loc], str]
) -> tuple[list[Step], list[Problem]]:
    """Steps in dependency order (file order among equals), and any cycle found."""
    by_id: dict[str, Step] = {}
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        by_id.setdefault(s.id, s)
        index.setdefault(s.id, i)
    deps = {sid: [n for n in dict.fromkeys(s.needs) if n in by_id] for sid, s in by_id.items()}

    # cycle detection (iterative DFS, reports the first cycle as a path)
    state: dict[str, int] = {}
    for root in by_id:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            if k < len(deps[node]):
                stack[-1] = (node, k + 1)
                nxt = deps[node][k]
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    start = cycle[0]
                    return list(steps), [
                        Problem(
                            locate(("steps", index[start], "needs")),
                            f"step {start!r}: needs form a cycle: {' -> '.join(cycle)}",
                            "remove one of the needs on that path",
                        )
                    ]
                if not state.get(nxt):
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()

    order: list[Step] = []
    done: set[str] = set()
    remaining = list(by_id)
    while remaining:
        for sid in remaining:
            if all(d in done for d in deps[sid]):
                order.append(by_id[sid])
                done.add(sid)
                remaining.remove(sid)
                break
    return order, []


def _dirs(config: Config | None) -> list[Path]:
    dirs = [SHIPPED_DIR]
    if config is None:
        return dirs
    for i, d in enumerate(config.settings.runbook_dirs):
        p = config.resolve(d)
        if not p.is_dir():
            raise ConfigError(
                f"runbook folder {p} does not exist",
                where=config.locate(("settings", "runbook_dirs", i)),
                hint="settings.runbook_dirs entries are relative to the config file's folder",
            )
        dirs.append(p)
    return dirs


def runbook_paths(config: Config | None = None) -> dict[str, Path]:
    """Every runbook file by name (shipped first, then ``settings.runbook_dirs``).

    Raises:
        ConfigError: A runbook folder is missing, or two files share a name.
    """
    out: dict[str, Path] = {}
    for d in _dirs(config):
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            if p.stem in out and out[p.stem].resolve() != p.resolve():
                raise ConfigError(
                    f"two runbooks are named {p.stem!r}: {out[p.stem]} and {p}",
                    where=str(p),
                    hint="rename one of the files (a runbook's name is its file name)",
                    title="Runbook name clash",
                )
            out.setdefault(p.stem, p)
    return out


def load_runbook(name_or_path: str, config: Config | None = None) -> Runbook:
    """Load one runbook by name, or from a file path (anything ending ``.toml`` or with ``/``).

    Args:
        name_or_path: ``kill-switch``, or ``./my-runbook.toml``.
        config: Supplies ``settings.runbook_dirs``; None means shipped runbooks only.

    Raises:
        RunbookSyntaxError: The file is not valid TOML.
        RunbookValidationError: The runbook is invalid; every problem is listed.
        RunbookError: No runbook with that name or path.
        ConfigError: A runbook folder is missing, or two runbooks share a name.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        p = expand_user(name_or_path, what="the runbook path")
        if not p.is_absolute() and not _is(p, "exists") and config is not None:
            p = config.resolve(p)
        if not _is(p, "is_file"):
            raise RunbookError(f"runbook file {p} not found", where=str(p),
                               hint="give a runbook name, or the path of a .toml file")
        return _load_file(p.resolve())
    paths = runbook_paths(config)
    if name_or_path not in paths:
        close = difflib.get_close_matches(name_or_path, list(paths), n=1)
        raise RunbookError(
            f"no runbook named {name_or_path!r}",
            where=name_or_path,
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"runbooks: {', '.join(sorted(paths)) or 'none'}",
        )
    return _load_file(paths[name_or_path])


def _is(p: Path, test: Literal["exists", "is_file"]) -> bool:
    """``p.exists()`` / ``p.is_file()``, False where pathlib raises (a name too long)."""
    try:
        return bool(getattr(p, test)())
    except OSError:
        return False


def list_runbooks(config: Config | None = None) -> list[Runbook]:
    """Load every runbook, sorted by name.

    Raises:
        RunbookError: Any runbook is invalid (the first one found, with all its problems).
        ConfigError: A runbook folder is missing, or two runbooks share a name.
    """
    return [_load_file(p) for _, p in sorted(runbook_paths(config).items())]

