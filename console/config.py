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
whose ``where`` is the ``file:line`` of the first one. The TOML helpers it shares with
:mod:`console.runbook` live in :mod:`console.tomlsrc` (re-exported here).
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import getpass
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from adapters.specs import builtin_spec
from console import checkcache
from console.declarations import check_backends, check_references, declared
from console.errors import ConfigError
from console.inventory import KILL_POINT_LISTS, Integration
from console.locations import (
    ENV_CONFIG,
    ENV_STATE_DIR,
    config_candidate,
    default_audit_db,
    default_config_path,
    shorten_home,
)
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
    "ENV_CONFIG",
    "ENV_STATE_DIR",
    "Backend",
    "Config",
    "Problem",
    "SandboxSettings",
    "Settings",
    "TomlLocator",
    "default_config_path",
    "expand_user",
    "load_config",
    "parse_toml",
    "raise_problems",
    "suggest",
    "validation_problems",
]

# Locations (XDG through platformdirs; $KILLSWITCH_CONFIG, $KILLSWITCH_STATE_DIR) live in
# console.locations: the config file is --config, else $KILLSWITCH_CONFIG, else
# default_config_path() = user_config_dir("killswitch")/config.toml.


# --------------------------------------------------------------------------- models


class Settings(BaseModel):
    """The ``[settings]`` table."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    audit_db: str = Field(default_factory=default_audit_db)
    """SQLite audit database; relative paths are relative to the config file. Default:
    ``audit.db`` in the state folder (``$KILLSWITCH_STATE_DIR``, else
    ``user_state_dir("killswitch")``, e.g. ``~/.local/state/killswitch``)."""
    audit_keyed: bool = False
    """The trail must be keyed (HMAC, ``$KILLSWITCH_AUDIT_KEY``): `audit verify` fails
    (exit 4) on an unkeyed trail or without the key, whatever the trail's own metadata says."""
    witness: str = ""
    """Witness file of chain-head checkpoints (JSON Lines, appended at the end of every run
    and by `audit checkpoint`); relative to the config file. Empty: next to ``audit_db`` as
    ``<audit_db stem>.witness.jsonl``. Point it outside the database's folder (another disk,
    an append-only or synced folder) for a witness an intruder cannot reach as easily."""
    evidence_dir: str = ""
    """Folder of the evidence bundles (``evidence.preserve``: one ``<run_id>/`` folder per
    run, files ``0600``, a ``manifest.json`` whose SHA-256 is in the audit trail); relative
    to the config file. Empty: the folder ``evidence`` next to ``audit_db`` (in the state
    folder by default)."""
    runbook_dirs: list[str] = []
    """User runbook folders, in addition to the shipped ``runbooks/``."""
    exercise_dirs: list[str] = []
    """User exercise scenario folders (relative to the config file), in addition to the
    shipped ``runbooks/exercises/``; a scenario here overrides a shipped one of the same name."""
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
    drift_read_after: float = Field(default=5.0, ge=0)
    """A live run applies each change straight from the plan's observation when the plan
    was observed in this process less than this many seconds ago; otherwise (a confirmation
    that waited, a saved plan, a resumed run, a retry) the target is read again just before
    its change and a drifted one is refused. 0: always read before applying."""
    store: str = ""
    """Shared store for several commanders: a ``postgresql://`` URL puts the journal, locks,
    runs, approvals and the audit trail in PostgreSQL (``$KILLSWITCH_STORE`` overrides it,
    and is where a password belongs). Empty: the embedded SQLite file ``audit_db``."""
    lock_lease: float = Field(default=60.0, gt=0)
    """Seconds a run's integration locks outlive its last renewal (holders renew every third
    of it). A holder on another host that stops renewing (crash, lost network) loses its
    locks when the lease ends, and its run can be resumed from here."""
    two_person: Literal["off", "irreversible", "prod", "all"] = "off"
    """Live runs that need a second operator's approval (bound to the plan's hash) before
    they apply: ``irreversible`` (any irreversible change), ``prod`` (any integration whose
    ``environment`` is ``prod``), ``all`` (every live run), ``off``."""
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
    sandbox: bool = False
    """True for a sandbox backend (a local stand-in, not a real system): ``--exercise`` and
    EXERCISE mode need every backend to say so; LIVE is not offered when all of them do."""

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
    settings: Settings = Field(default_factory=Settings)
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
        """Resolve ``p`` (``~`` expanded) relative to the config file's folder.

        Raises:
            ConfigError: ``p`` starts with ``~user`` and there is no such user.
        """
        q = expand_user(p, where=str(self.path))
        return q if q.is_absolute() else (self.path.parent / q)

    @property
    def real_backends(self) -> list[str]:
        """Names of the backends not marked ``sandbox = true``, in config order."""
        return [name for name, b in self.backends.items() if not b.sandbox]

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

_TOP_LEVEL = ("settings", "sandbox", "backends", "integrations")


def expand_user(p: str | Path, *, where: str = "", what: str = "path") -> Path:
    """``Path(p).expanduser()``, raising :class:`ConfigError` where pathlib raises.

    Raises:
        ConfigError: ``~user`` names no user, or there is no home folder to expand ``~`` to.
    """
    try:
        return Path(p).expanduser()
    except RuntimeError as exc:  # pathlib: "Could not determine home directory."
        raise ConfigError(
            f"cannot expand '~' in {what} {str(p)[:200]!r}: no such user, or no home folder",
            where=where or str(p)[:200],
            hint="write the path in full, or start it with ~/ for your own home folder",
        ) from exc


def _probe(p: Path) -> str:
    """``file``, ``folder``, ``missing``, ``special`` (a device, a FIFO), or why ``p``
    cannot be looked at. Never raises."""
    try:
        if p.is_file():
            return "file"
        if p.is_dir():
            return "folder"
        return "special" if p.exists() else "missing"
    except OSError as exc:  # a name too long, a loop of links, ...
        return f"unusable ({exc.strerror or exc})"


def _find_config(path: str | Path | None) -> Path:
    looked = (
        f"--config ({path or 'not given'}), ${ENV_CONFIG} "
        f"({os.environ.get(ENV_CONFIG) or 'not set'}), {shorten_home(default_config_path())}"
    )
    hint = f"looked at: {looked}; copy config.example.toml to start"
    raw, source = config_candidate(path)
    candidate = expand_user(raw, what=f"the config path (from {source})")
    kind = _probe(candidate)
    if kind != "file":
        what = {"folder": "is a folder, not a file", "missing": "not found",
                "special": "is not a regular file"}.get(kind, f"is {kind}")
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


def load_config(path: str | Path | None = None, *, remember: bool = False) -> Config:
    """Load and validate the config and its inventory (see :func:`_load_config`).

    ``remember``: record a config that passed in the check cache (:mod:`console.checkcache`)
    so the next load of the same bytes skips the whole-document checks. The console does;
    other commands only read the cache (a read-only command writes no file).
    """
    with _bulk_allocation():
        return _load_config(path, remember)


def _load_config(path: str | Path | None = None, remember: bool = False) -> Config:
    """Load and validate the config and its inventory.

    Args:
        path: The config file; None looks at ``$KILLSWITCH_CONFIG``, then
            ``user_config_dir("killswitch")/config.toml`` (``~/.config/killswitch/`` on Linux).

    Returns:
        The validated config.

    Raises:
        ConfigError: The file is missing, not valid TOML, or invalid in any way; every
            problem found is listed, and ``where`` is the ``file:line`` of the first.
    """
    cfg_path = _find_config(path)
    doc, text = parse_toml(cfg_path, cache=True)
    texts = [text]  # every source text, for the check cache
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
                exc, Backend, loc_cfg, ("backends", name), fixed_prefix(f"backend {name!r}: ")
            )

    # (source key, local index, raw table) for every integration, inline ones first
    raws: list[tuple[str, int, Any]] = []
    found, bad = _integration_list(doc, loc_cfg)
    problems += bad
    raws += [("config", i, r) for i, r in enumerate(found)]
    problems += _check_paths(settings, sandbox, loc_cfg)
    inv_path = _inventory_path(cfg_path, settings)
    if inv_path is not None:
        try:
            inv_doc, inv_text = parse_toml(inv_path, cache=True)
        except ConfigError as exc:
            if _probe(inv_path) != "missing":
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
            texts.append(inv_text)
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
                fixed_prefix(f"integration {label!r}: "),
            )
            continue
        integrations.append(integ)
        origins.append((src, local))

    # the adapters' declarations: backend type, typed options, reference schemas
    kinds = declared({b.type for b in backends.values()})
    problems += check_backends({n: raw_backends[n] for n in backends}, kinds, cfg_path.parent,
                               loc_cfg)[0]
    # every reference of every integration: skipped for texts that passed before, when
    # every backend type is built in (a third-party adapter's declarations are not code
    # the cache can identify)
    refs_key = checkcache.digest("references", *texts)
    builtin = all(builtin_spec(b.type) is not None for b in backends.values())
    if problems or not (builtin and checkcache.vouched(refs_key)):
        problems += _check_references(raws, backends, at)
        seen = {p.where for p in problems}  # one problem per key (a contact's model said it)
        problems += [p for p in check_references(raws, {n: b.type for n, b in backends.items()},
                                                 kinds, at) if p.where not in seen]

    raise_problems(problems, ConfigError, title="Invalid config")
    if remember:
        checkcache.record(*(checkcache.digest("document", t) for t in texts),
                          *([refs_key] if builtin else []))

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


def _inventory_path(cfg_path: Path, settings: Settings) -> Path | None:
    """The separate inventory file, or None (none set, or its path is refused elsewhere)."""
    if not settings.inventory:
        return None
    try:
        return (cfg_path.parent / expand_user(settings.inventory)).resolve()
    except (ConfigError, ValueError, OSError):  # reported by _check_paths
        return None


def _check_paths(
    settings: Settings, sandbox: SandboxSettings | None, locate: Callable[[Loc], str]
) -> list[Problem]:
    """File and folder settings that no file system call could use (``~nosuchuser/x``)."""
    paths: list[tuple[Loc, str]] = [(("settings", "audit_db"), settings.audit_db)]
    for name, value in (("inventory", settings.inventory), ("witness", settings.witness),
                        ("evidence_dir", settings.evidence_dir)):
        if value:
            paths.append((("settings", name), value))
    paths += [(("settings", "runbook_dirs", i), d) for i, d in enumerate(settings.runbook_dirs)]
    paths += [(("settings", "exercise_dirs", i), d)
              for i, d in enumerate(settings.exercise_dirs)]
    if sandbox is not None:
        paths.append((("sandbox", "dir"), sandbox.dir))
    problems: list[Problem] = []
    for loc, value in paths:
        try:
            expand_user(value, what=".".join(map(str, loc)))
        except ConfigError as exc:
            problems.append(Problem(locate(loc), exc.msg, exc.hint))
    return problems


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
