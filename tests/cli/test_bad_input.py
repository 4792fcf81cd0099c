"""Malformed inputs: a clear message naming file:line, exit 2, nothing executed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli


def assert_nothing_ran(cli: Cli) -> None:
    assert cli.state["applied"] == []
    assert cli.rows("SELECT count(*) FROM events WHERE phase='apply'") in ([], [(0,)])


def test_malformed_config_toml(cli: Cli) -> None:
    text = cli.config.read_text().replace('owner = "team"', 'owner = "team', 1)
    cli.config.write_text(text)
    line = text.splitlines().index('owner = "team') + 1
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 2
    assert f"{cli.config}:{line}" in r.stderr
    assert_nothing_ran(cli)


def test_unknown_field_in_inventory(cli: Cli) -> None:
    text = cli.config.read_text().replace('owner = "team"', 'owner = "team"\nownr = "x"', 1)
    cli.config.write_text(text)
    line = text.splitlines().index('ownr = "x"') + 1
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 2
    assert f"{cli.config}:{line}" in r.stderr and "ownr" in r.stderr
    assert_nothing_ran(cli)


def _runbook(cli: Cli, body: str) -> Path:
    path = cli.root / "runbooks" / "bad.toml"
    path.write_text(body)
    return path


def test_runbook_cycle(cli: Cli) -> None:
    path = _runbook(cli, 'name = "bad"\ndescription = "x"\n'
                         '[[steps]]\nid = "a"\naction = "flag.disable"\nneeds = ["b"]\n'
                         '[[steps]]\nid = "b"\naction = "credential.disable"\nneeds = ["a"]\n')
    r = cli("run", "bad", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 2
    assert str(path) in r.stderr and "cycle" in r.stderr
    assert_nothing_ran(cli)


def test_runbook_unknown_action(cli: Cli) -> None:
    path = _runbook(cli, 'name = "bad"\ndescription = "x"\n'
                         '[[steps]]\nid = "a"\naction = "flag.disabel"\n')
    r = cli("run", "bad", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 2
    assert f"{path}:" in r.stderr and "flag.disable" in r.stderr  # suggestion
    assert_nothing_ran(cli)


@pytest.mark.parametrize("args", [["run", "contain", "nobody", "--yes", "--reason", "x"],
                                  ["run", "contain", "colour=red", "--yes", "--reason", "x"],
                                  ["run", "no-such-runbook", "app-0", "--yes", "--reason", "x"],
                                  ["run", "--plan", "missing.json", "--yes", "--reason", "x"]])
def test_bad_arguments_exit_2(cli: Cli, args: list[str]) -> None:
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error:")
    assert_nothing_ran(cli)


def test_inventory_commands(cli: Cli) -> None:
    listed = json.loads(cli("inventory", "list", "--json").stdout)
    assert [i["id"] for i in listed] == ["app-0", "app-1", "app-2", "app-3"]
    shown = cli("inventory", "show", "app-2")
    assert shown.returncode == 0 and "app-2-key" in shown.stdout
    lint = cli("inventory", "lint")
    assert "kill_switch_owner" in lint.stdout  # none of the test integrations names one


def test_example_config_lints_clean() -> None:
    root = Path(__file__).resolve().parents[2]
    cli = Cli(root, root / "config.example.toml")
    r = cli("inventory", "lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 error(s)" in r.stdout
