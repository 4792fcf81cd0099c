"""Config and state locations (XDG through platformdirs, $KILLSWITCH_CONFIG,
$KILLSWITCH_STATE_DIR) and `killswitch config show` with the source of every setting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli
from console.config import Config, Settings, load_config
from console.errors import ConfigError
from console.locations import default_config_path, effective_settings, state_dir
from console.witness import witness_path

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="platformdirs follows XDG on Linux only")

CONFIG = """\
[settings]
max_targets = 3
audit_db = "trail/audit.db"

[backends.sim]
type = "fake"

[[integrations]]
id = "app-0"
name = "App"
owner = "team"
environment = "prod"
provider = "openai"
"""


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """HOME and the XDG folders inside tmp_path; no KILLSWITCH_* variable set."""
    dirs = {"home": tmp_path / "home", "config": tmp_path / "xdg-config",
            "state": tmp_path / "xdg-state"}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs["config"]))
    monkeypatch.setenv("XDG_STATE_HOME", str(dirs["state"]))
    for var in ("KILLSWITCH_CONFIG", "KILLSWITCH_STATE_DIR", "KILLSWITCH_AUDIT_KEY",
                "KILLSWITCH_OPERATOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return dirs


def test_xdg_defaults(xdg: dict[str, Path]) -> None:
    assert default_config_path() == xdg["config"] / "killswitch" / "config.toml"
    assert state_dir() == (xdg["state"] / "killswitch", "default")
    # the default audit database and, next to it, its witness are in the state folder
    settings = Settings()
    assert settings.audit_db == str(xdg["state"] / "killswitch" / "audit.db")
    cfg = Config(path=xdg["home"] / "config.toml")
    assert witness_path(cfg) == xdg["state"] / "killswitch" / "audit.witness.jsonl"
    # the config is found at the XDG location, and nothing was created to find it
    with pytest.raises(ConfigError) as ei:
        load_config()
    assert str(xdg["config"] / "killswitch" / "config.toml") in ei.value.msg
    assert not (xdg["state"] / "killswitch").exists()
    default = xdg["config"] / "killswitch" / "config.toml"
    default.parent.mkdir()
    default.write_text(CONFIG.replace('audit_db = "trail/audit.db"\n', ""))
    loaded = load_config()
    assert loaded.path == default
    assert loaded.settings.audit_db == str(xdg["state"] / "killswitch" / "audit.db")


def test_without_xdg_variables_home_folders_are_used(
    xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_config_path() == xdg["home"] / ".config" / "killswitch" / "config.toml"
    assert state_dir()[0] == xdg["home"] / ".local" / "state" / "killswitch"
    with pytest.raises(ConfigError) as ei:  # the hint writes the home folder as ~
        load_config()
    assert "~/.config/killswitch/config.toml" in ei.value.hint


def test_state_dir_override(xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Path) -> None:
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", str(tmp_path / "elsewhere"))
    assert state_dir() == (tmp_path / "elsewhere", "$KILLSWITCH_STATE_DIR")
    assert Settings().audit_db == str(tmp_path / "elsewhere" / "audit.db")
    # relative: to the current folder; ~: the home folder
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", "rel/state")
    assert state_dir()[0] == tmp_path / "rel" / "state"
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", "~/ks")
    assert Settings().audit_db == str(xdg["home"] / "ks" / "audit.db")
    # the default is decided when settings are built, not when the module was imported
    monkeypatch.delenv("KILLSWITCH_STATE_DIR")
    assert Config(path=tmp_path / "c.toml").settings.audit_db == str(
        xdg["state"] / "killswitch" / "audit.db")
    # a config that names audit_db wins over the variable, relative to the config's folder
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "config.toml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    assert cfg.resolve(cfg.settings.audit_db) == tmp_path / "conf" / "trail" / "audit.db"
    assert witness_path(cfg) == tmp_path / "conf" / "trail" / "audit.witness.jsonl"


def test_config_override_order(xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    default = xdg["config"] / "killswitch" / "config.toml"
    default.parent.mkdir()
    default.write_text(CONFIG.replace("max_targets = 3", "max_targets = 1"))
    env_file = tmp_path / "env.toml"
    env_file.write_text(CONFIG.replace("max_targets = 3", "max_targets = 2"))
    given = tmp_path / "given.toml"
    given.write_text(CONFIG)
    assert load_config().settings.max_targets == 1
    monkeypatch.setenv("KILLSWITCH_CONFIG", str(env_file))
    assert load_config().settings.max_targets == 2
    assert load_config(given).settings.max_targets == 3


def _by_name(config_arg: str | None = None) -> dict[str, tuple[object, str, str]]:
    settings, _ = effective_settings(config_arg)
    return {s.name: (s.value, s.source, s.where) for s in settings}


def test_config_show_sources(xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                             tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + "\n[sandbox]\nmoto_port = 5999\n")
    monkeypatch.setenv("KILLSWITCH_OPERATOR", "ic-alice")
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("KILLSWITCH_AUDIT_KEY", "s3cr3t-audit-key-value")
    rows = _by_name(str(path))
    assert rows["config"] == (str(path), "option", "--config")
    assert rows["state_dir"] == (str(tmp_path / "st"), "env", "$KILLSWITCH_STATE_DIR")
    # from the file, with its line; relative paths shown resolved against its folder
    assert rows["settings.max_targets"] == (3, "config", f"{path}:2")
    assert rows["settings.audit_db"] == (str(tmp_path / "trail" / "audit.db"), "config",
                                         f"{path}:3")
    moto_line = path.read_text().splitlines().index("moto_port = 5999") + 1
    assert rows["sandbox.moto_port"] == (5999, "config", f"{path}:{moto_line}")
    assert rows["sandbox.openbao_port"][1] == "default"
    # defaults, and the ones derived from others
    assert rows["settings.default_timeout"] == (30.0, "default", "")
    assert rows["settings.witness"] == (str(tmp_path / "trail" / "audit.witness.jsonl"),
                                        "default", "next to audit_db")
    # environment variables
    assert rows["settings.operator"] == ("ic-alice", "env", "$KILLSWITCH_OPERATOR")
    assert rows["audit_key"] == ("set", "env", "$KILLSWITCH_AUDIT_KEY")
    # every [settings] field is listed
    assert {f"settings.{n}" for n in Settings.model_fields} <= set(rows)

    # without audit_db in the file, the state folder's variable is its source
    path.write_text(CONFIG.replace('audit_db = "trail/audit.db"\n', ""))
    monkeypatch.setenv("KILLSWITCH_CONFIG", str(path))
    rows = _by_name()
    assert rows["config"] == (str(path), "env", "$KILLSWITCH_CONFIG")
    assert rows["settings.audit_db"] == (str(tmp_path / "st" / "audit.db"), "env",
                                         "$KILLSWITCH_STATE_DIR")
    assert rows["settings.witness"][0] == str(tmp_path / "st" / "audit.witness.jsonl")


def test_config_show_cli(xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                         tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    secret = "s3cr3t-audit-key-value"
    runner = CliRunner()
    env = {"KILLSWITCH_AUDIT_KEY": secret, "USER": "bob"}
    r = runner.invoke(cli, ["--config", str(path), "config", "show"], env=env)
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines()}
    assert lines["settings.max_targets"].split()[1:] == ["3", f"{path}:2"]
    assert lines["settings.operator"].split()[1:] == ["bob", "$USER"]
    assert lines["settings.proof_window"].split()[1:] == ["30.0", "default"]
    assert secret not in r.output

    r = runner.invoke(cli, ["config", "show", "--json", "--config", str(path)], env=env)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    rows = {s["setting"]: s for s in data["settings"]}
    assert rows["settings.max_targets"] == {"setting": "settings.max_targets", "value": 3,
                                            "source": "config", "where": f"{path}:2"}
    assert rows["settings.runbook_dirs"]["value"] == []
    assert secret not in r.output and data["note"] == ""


def test_config_show_without_a_config(xdg: dict[str, Path], tmp_path: Path) -> None:
    """No file at the default location: the defaults, and where it looked (exit 0); a file
    named by --config or $KILLSWITCH_CONFIG must exist (exit 2, as for every command)."""
    runner = CliRunner()
    r = runner.invoke(cli, ["config", "show", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = {s["setting"]: s for s in data["settings"]}
    assert rows["config"]["value"] == str(xdg["config"] / "killswitch" / "config.toml")
    assert rows["config"]["source"] == "default"
    assert "not found" in rows["config"]["where"] and "no config file" in data["note"]
    assert rows["settings.audit_db"]["value"] == str(xdg["state"] / "killswitch" / "audit.db")
    r = runner.invoke(cli, ["config", "show"], env={"KILLSWITCH_CONFIG": str(tmp_path / "x")})
    assert isinstance(r.exception, ConfigError)
    r = runner.invoke(cli, ["config", "show", "--config", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError)
