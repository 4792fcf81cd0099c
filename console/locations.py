"""Where Killswitch looks for its config and keeps its state, and where each setting came from.

Locations follow the platform's conventions through :mod:`platformdirs` (XDG on Linux):

- the config file: ``--config FILE``, else ``$KILLSWITCH_CONFIG``, else
  ``user_config_dir("killswitch")/config.toml`` (``$XDG_CONFIG_HOME/killswitch/config.toml``,
  by default ``~/.config/killswitch/config.toml``);
- the state folder (default audit database ``audit.db`` and, next to it, its witness file
  ``audit.witness.jsonl``): ``$KILLSWITCH_STATE_DIR``, else ``user_state_dir("killswitch")``
  (``$XDG_STATE_HOME/killswitch``, by default ``~/.local/state/killswitch``).

A setting written in the config file wins over both (``settings.audit_db``,
``settings.witness``); relative paths in the config file are relative to its folder.

:func:`effective_settings` lists every effective setting with its value and its source
(``killswitch config show``). This module imports no adapter and no Textual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.errors import ConfigError

if TYPE_CHECKING:
    from console.config import Config

__all__ = [
    "APP",
    "ENV_CONFIG",
    "ENV_STATE_DIR",
    "Setting",
    "config_candidate",
    "default_audit_db",
    "default_config_path",
    "effective_settings",
    "shorten_home",
    "state_dir",
]

APP = "killswitch"
ENV_CONFIG = "KILLSWITCH_CONFIG"
"""Environment variable naming the config file when no ``--config`` is given."""
ENV_STATE_DIR = "KILLSWITCH_STATE_DIR"
"""Environment variable naming the state folder (default audit database and witness)."""
ENV_AUDIT_KEY = "KILLSWITCH_AUDIT_KEY"  # the same name as console.audit.KEY_ENV
ENV_OPERATOR = "KILLSWITCH_OPERATOR"


def default_config_path() -> Path:
    """``user_config_dir("killswitch")/config.toml``, computed now (honours
    ``$XDG_CONFIG_HOME`` and ``$HOME`` as they are at the call)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False)) / "config.toml"


def _expand(raw: str, what: str) -> Path:
    try:
        return Path(raw).expanduser()
    except RuntimeError as exc:  # pathlib: no such user, or no home folder
        raise ConfigError(
            f"cannot expand '~' in {what} {raw[:200]!r}: no such user, or no home folder",
            where=raw[:200],
            hint="write the path in full, or start it with ~/ for your own home folder",
        ) from exc


def state_dir() -> tuple[Path, str]:
    """The state folder and where it came from (``$KILLSWITCH_STATE_DIR`` or ``default``).

    ``$KILLSWITCH_STATE_DIR`` may start with ``~``; a relative one is relative to the current
    folder. Nothing is created here: the audit trail creates its folder (``0700``) when it
    first writes.

    Raises:
        ConfigError: ``$KILLSWITCH_STATE_DIR`` starts with ``~user`` and there is no such user.
    """
    raw = os.environ.get(ENV_STATE_DIR, "")
    if raw:
        return Path(os.path.abspath(_expand(raw, f"${ENV_STATE_DIR}"))), f"${ENV_STATE_DIR}"
    from platformdirs import user_state_dir

    return Path(user_state_dir(APP, appauthor=False)), "default"


def default_audit_db() -> str:
    """The default ``settings.audit_db``: ``audit.db`` in :func:`state_dir` (absolute)."""
    return str(state_dir()[0] / "audit.db")


def config_candidate(path: str | Path | None = None) -> tuple[str, str]:
    """The config file to read, unexpanded, and where that choice came from.

    Returns:
        ``(path, source)``: source is ``--config``, ``$KILLSWITCH_CONFIG`` or
        ``the default location``.
    """
    if path:
        return str(path), "--config"
    if os.environ.get(ENV_CONFIG):
        return os.environ[ENV_CONFIG], f"${ENV_CONFIG}"
    return str(default_config_path()), "the default location"


def shorten_home(p: str | Path) -> str:
    """``p`` with the home folder written ``~`` (for messages)."""
    text = str(p)
    try:
        home = str(Path.home())
    except RuntimeError:
        return text
    if home not in ("", "/") and (text == home or text.startswith(home.rstrip("/") + "/")):
        return "~" + text[len(home.rstrip("/")):]
    return text


# --------------------------------------------------------------------------- config show


@dataclass(frozen=True)
class Setting:
    """One effective setting: its value and where it came from.

    ``source`` is ``default``, ``config`` (``where`` = ``file:line``), ``env`` (``where`` =
    the variable) or ``option`` (``where`` = ``--config``).
    """

    name: str
    value: Any
    source: str
    where: str = ""

    def source_text(self) -> str:
        """``default``, ``file:line``, ``$VAR`` or ``--config`` (with a note for defaults)."""
        if self.source == "default":
            return "default" + (f" ({self.where})" if self.where else "")
        return self.where or self.source

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.name, "value": self.value, "source": self.source,
                "where": self.where}


# settings whose values are paths, resolved against the config file's folder
_PATH_SETTINGS = ("audit_db", "witness", "inventory", "evidence_dir")


def effective_settings(config_arg: str | Path | None = None) -> tuple[list[Setting], str]:
    """Every effective setting of the config that ``--config config_arg`` would load.

    Returns:
        The settings, and a note (``""``, or why defaults are shown: no config file found).

    Raises:
        ConfigError: The config file exists but is invalid (as every command would).
    """
    from console.config import Config, Settings, load_config

    raw, chosen_by = config_candidate(config_arg)
    candidate = Path(os.path.abspath(_expand(raw, "the config path")))
    note = ""
    if candidate.is_file() or chosen_by != "the default location":
        config = load_config(config_arg)  # ConfigError: invalid, or a named file is missing
    else:
        config = Config(path=candidate, settings=Settings())
        note = (f"no config file at {candidate} (from {chosen_by}): showing the defaults; "
                "copy config.example.toml there to start")
    out: list[Setting] = []
    source = {"--config": ("option", "--config"), f"${ENV_CONFIG}": ("env", f"${ENV_CONFIG}"),
              "the default location": ("default", "XDG config dir")}[chosen_by]
    if note:
        source = (source[0], f"{source[1]}; not found")
    out.append(Setting("config", str(config.path), *source))
    sdir, sdir_source = state_dir()
    out.append(Setting("state_dir", str(sdir), *(("env", sdir_source) if sdir_source != "default"
                                                 else ("default", "XDG state dir"))))
    out += _settings_rows(config, sdir_source)
    if config.sandbox is not None:
        for name in type(config.sandbox).model_fields:
            value = getattr(config.sandbox, name)
            if name == "dir":
                value = str(config.resolve(value))
            out.append(_from_file(config, ("sandbox", name), value,
                                  name in config.sandbox.model_fields_set))
    key_set = bool(os.environ.get(ENV_AUDIT_KEY))
    out.append(Setting("audit_key", "set" if key_set else "not set",
                       *(("env", f"${ENV_AUDIT_KEY}") if key_set else ("default", "unkeyed"))))
    return out, note


def _from_file(config: Config, loc: tuple[str, str], value: Any, is_set: bool,
               default_note: str = "") -> Setting:
    name = ".".join(loc)
    if is_set:
        return Setting(name, value, "config", config.locate(loc) or str(config.path))
    return Setting(name, value, "default", default_note)


def _redacted(url: str) -> str:
    """A store URL without its password (never shown)."""
    from console.store import redact_url
    return redact_url(url)


def _settings_rows(config: Config, sdir_source: str) -> list[Setting]:
    from console.witness import witness_path

    s = config.settings
    given = s.model_fields_set
    rows: list[Setting] = []
    for name in type(s).model_fields:
        value: Any = getattr(s, name)
        loc = ("settings", name)
        note = ""
        if name in _PATH_SETTINGS and value:
            value = str(config.resolve(value))
        if name == "runbook_dirs":
            value = [str(config.resolve(d)) for d in value]
        if name == "audit_db" and name not in given and sdir_source != "default":
            rows.append(Setting("settings.audit_db", value, "env", sdir_source))
            continue
        if name == "audit_db":
            note = "in the state dir"
        if name == "witness" and not value:
            value, note = str(witness_path(config)), "next to audit_db"
        if name == "evidence_dir" and not value:
            value = str(config.resolve(s.audit_db).parent / "evidence")
            note = "next to audit_db"
        if name == "store":
            if os.environ.get("KILLSWITCH_STORE"):
                rows.append(Setting("settings.store", _redacted(os.environ["KILLSWITCH_STORE"]),
                                    "env", "$KILLSWITCH_STORE"))
                continue
            value = _redacted(value) if value else ""
            note = "" if value else "embedded SQLite (audit_db)"
        if name == "operator" and name not in given:
            value = s.resolved_operator()
            for var in (ENV_OPERATOR, "USER"):
                if os.environ.get(var):
                    rows.append(Setting("settings.operator", value, "env", f"${var}"))
                    break
            else:
                rows.append(Setting("settings.operator", value, "default", "login name"))
            continue
        rows.append(_from_file(config, loc, value, name in given, note))
    return rows
