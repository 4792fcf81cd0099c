"""Choosing the store: a URL in the config or the environment, the SQLite way out, and what
a commander sees when the shared store is wrong or down (never a password, never a change)."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli

PASSWORD = "sekrit-pg-password"


def with_store(cli: Cli, url: str) -> None:
    cli.config.write_text(cli.config.read_text().replace(
        "[settings]", f'[settings]\nstore = "{url}"', 1))


@pytest.mark.sqlite_only  # sets its own stores
def test_an_unreachable_store_changes_nothing_and_hides_the_password(cli: Cli) -> None:
    with_store(cli, f"postgresql://alice:{PASSWORD}@127.0.0.1:1/killswitch")
    for args in (("run", "contain", "app-0", "--yes", "--reason", "x"), ("audit", "show"),
                 ("approvals",), ("audit", "verify")):
        r = cli(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "cannot connect to the shared store" in r.stderr
        assert "postgresql://alice:***@127.0.0.1:1/killswitch" in r.stderr
        assert PASSWORD not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert cli.state["applied"] == []
    r = cli("config", "show")
    assert r.returncode == 0 and PASSWORD not in r.stdout and "alice:***@" in r.stdout


@pytest.mark.sqlite_only
def test_a_store_that_is_not_postgresql_is_a_config_error(cli: Cli) -> None:
    with_store(cli, f"mysql://alice:{PASSWORD}@127.0.0.1/killswitch")
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 2 and "settings.store: the store 'mysql' is not supported" in r.stderr
    assert PASSWORD not in r.stderr and cli.state["applied"] == []


@pytest.mark.sqlite_only
def test_killswitch_store_sqlite_is_the_loud_way_out_of_a_dead_shared_store(cli: Cli) -> None:
    with_store(cli, f"postgresql://alice:{PASSWORD}@127.0.0.1:1/killswitch")
    r = cli("run", "contain", "app-0", "--yes", "--reason", "shared store is down",
            env={"KILLSWITCH_STORE": "sqlite"})
    assert r.returncode == 0, r.stderr
    assert "WARNING: KILLSWITCH_STORE=sqlite" in r.stderr and "not the shared store" in r.stderr
    assert cli.state["applied"] and cli.db.exists()


def test_the_store_url_in_the_environment_wins_over_the_config(cli: Cli, pg_url: str) -> None:
    with_store(cli, f"postgresql://alice:{PASSWORD}@127.0.0.1:1/killswitch")
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x",
            env={"KILLSWITCH_STORE": pg_url})
    assert r.returncode == 0, r.stderr
    assert not cli.db.exists()  # nothing in the SQLite file: the trail is in PostgreSQL
    r = cli("audit", "verify", env={"KILLSWITCH_STORE": pg_url})
    assert r.returncode == 0 and "audit chain OK" in r.stdout, r.stdout + r.stderr
