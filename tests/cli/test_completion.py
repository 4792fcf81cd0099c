"""Shell completion through click's completion variable, in a subprocess as a shell runs it:
commands, runbook names, selectors / integration ids and run ids from the audit trail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

HEAVY = ("textual", "boto3", "botocore", "hvac", "google", "openai", "anthropic", "httpx")


def _env(cli: Cli, words: str, shell: str) -> dict[str, str]:
    cword = len(words.split(" ")) - 1  # a trailing space completes a new, empty word
    return cli.env({"_KILLSWITCH_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
                    "COMP_CWORD": str(cword), "XDG_STATE_HOME": str(cli.root / "xdg-state"),
                    "XDG_CONFIG_HOME": str(cli.root / "xdg-config")})


def complete(cli: Cli, words: str, shell: str = "bash") -> list[str]:
    """What the shell would offer for the last word of ``words`` (``killswitch ...``)."""
    r = subprocess.run([sys.executable, "-m", "console"], env=_env(cli, words, shell),
                       cwd=cli.root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    if shell == "zsh":
        return r.stdout.splitlines()
    return [line.partition(",")[2] for line in r.stdout.splitlines() if line]


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_shell_script_registers_killswitch(cli: Cli) -> None:
    env = cli.env({"_KILLSWITCH_COMPLETE": "bash_source"})
    r = subprocess.run([sys.executable, "-m", "console"], env=env, capture_output=True,
                       text=True, timeout=60, cwd=cli.root)
    assert r.returncode == 0
    assert "_KILLSWITCH_COMPLETE=bash_complete" in r.stdout
    assert "complete -o nosort -F _killswitch_completion killswitch" in r.stdout


def test_commands_and_options(cli: Cli) -> None:
    top = complete(cli, "killswitch ")
    assert {"inventory", "plan", "run", "resume", "restore", "audit", "config",
            "credentials", "report", "sandbox"} <= set(top)
    assert complete(cli, "killswitch re") == ["report", "restore", "resume"]
    assert set(complete(cli, "killswitch audit ")) == {"verify", "checkpoint", "show",
                                                      "export"}
    assert complete(cli, "killswitch config ") == ["show"]
    assert "--dry-run" in complete(cli, f"killswitch --config {cli.config} run --d")


def test_runbook_names(cli: Cli) -> None:
    shipped = {"kill-switch", "flags-off", "cancel-batches", "block-egress",
               "revoke-credentials", "restore", "evidence", "rotate"}
    names = complete(cli, f"killswitch --config {cli.config} plan ")
    assert set(names) == shipped | {"contain", "destroy"}  # + settings.runbook_dirs
    assert complete(cli, f"killswitch --config {cli.config} run c") == ["cancel-batches",
                                                                        "contain"]
    # --config after the command works as well; without a config, the shipped runbooks
    assert complete(cli, f"killswitch plan --config {cli.config} fl") == ["flags-off"]
    assert set(complete(cli, "killswitch plan ")) == shipped
    assert complete(cli, f"killswitch --config {cli.config} demo --runbook k") == [
        "kill-switch"]
    # zsh shows each runbook's description
    zsh = complete(cli, f"killswitch --config {cli.config} plan flags", shell="zsh")
    assert zsh[:2] == ["plain", "flags-off"] and "feature flag" in zsh[2]


def test_selectors_and_integration_ids(cli: Cli) -> None:
    ids = ["app-0", "app-1", "app-2", "app-3"]
    assert complete(cli, f"killswitch --config {cli.config} plan contain ") == ids
    assert complete(cli, f"killswitch --config {cli.config} run contain app-0 app-") == ids
    assert complete(cli, f"killswitch --config {cli.config} inventory show app-2") == [
        "app-2"]
    assert complete(cli, f"killswitch --config {cli.config} credentials scan ") == ids
    assert complete(cli, f"killswitch --config {cli.config} inventory list ") == ids
    # key=value selectors: the keys, then the inventory's values
    assert complete(cli, f"killswitch --config {cli.config} plan contain prov") == [
        "provider="]
    assert complete(cli, f"killswitch --config {cli.config} plan contain env=p") == [
        "env=prod"]
    assert complete(cli, f"killswitch --config {cli.config} plan contain provider=x,") == [
        "provider=x,openai"]
    assert complete(cli, f"killswitch --config {cli.config} plan contain nosuch=") == []


@pytest.mark.sqlite_only  # the SQLite file itself (PostgreSQL: tests/store)
def test_run_ids_read_only(cli: Cli) -> None:
    before = files(cli.root)
    for words in ("restore ", "resume ", "report ", "audit show --run "):
        assert complete(cli, f"killswitch --config {cli.config} {words}") == []
    assert not cli.db.exists()  # completion never creates the audit trail
    assert files(cli.root) == before

    r = cli("run", "contain", "app-0", "--yes", "--reason", "test")
    assert r.returncode == 0, r.stderr
    r = cli("run", "contain", "app-1", "--dry-run")
    assert r.returncode == 0, r.stderr
    ids = [str(row[0]) for row in cli.rows("SELECT run_id FROM events WHERE run_id IS NOT NULL "
                                      "GROUP BY run_id ORDER BY min(seq) DESC")]
    assert len(ids) == 2
    before = files(cli.root)
    assert complete(cli, f"killswitch --config {cli.config} restore ") == ids  # newest first
    assert complete(cli, f"killswitch --config {cli.config} resume {ids[1][:-1]}") == [ids[1]]
    assert complete(cli, f"killswitch --config {cli.config} audit export --run ") == ids
    assert complete(cli, f"killswitch --config {cli.config} report ") == ids
    zsh = complete(cli, f"killswitch --config {cli.config} restore {ids[1]}", shell="zsh")
    assert zsh[:2] == ["plain", ids[1]] and "live" in zsh[2]
    assert files(cli.root) == before  # no -wal, no -shm left behind
    # a file that is not a trail: no candidates, no error
    cli.config.write_text(cli.config.read_text().replace('audit_db = "audit.db"',
                                                         'audit_db = "config.toml"'))
    assert complete(cli, f"killswitch --config {cli.config} restore ") == []


def test_completion_imports_no_sdk_and_no_textual(cli: Cli) -> None:
    code = (
        "import sys\n"
        "from console.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}),"
        " file=sys.stderr)\n"
    )
    for words in (f"killswitch --config {cli.config} plan ",
                  f"killswitch --config {cli.config} plan contain ",
                  f"killswitch --config {cli.config} restore "):
        r = subprocess.run([sys.executable, "-c", code], env=_env(cli, words, "bash"),
                           cwd=cli.root, capture_output=True, text=True, timeout=60)
        assert r.stderr.strip() == "[]", (words, r.stderr)
        assert r.stdout


def test_no_config_no_error(cli: Cli) -> None:
    """A missing or broken config: fewer candidates, never a traceback."""
    cli.config.write_text("this is [not toml")
    assert complete(cli, f"killswitch --config {cli.config} plan contain ") == []
    assert "kill-switch" in complete(cli, f"killswitch --config {cli.config} plan ")
    assert complete(cli, f"killswitch --config {cli.config} restore ") == []
    missing = os.path.join(cli.root, "missing.toml")
    assert complete(cli, f"killswitch --config {missing} inventory show ") == []
