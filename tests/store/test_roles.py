"""The README's recipe for a shared store: one PostgreSQL login role per commander, all
members of one group role that owns the schema (``ALTER ROLE ... SET role``), so whichever
commander writes first creates tables the others can use, and PostgreSQL's own log still
names who connected."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.engine.conftest import write_config
from tests.pgserver import PgServer


@pytest.mark.sqlite_only  # sets its own store
def test_one_login_role_per_commander_shares_one_schema(pg: PgServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    group, schema = f"ks_owner_{tag}", f"incident_{tag}"
    people = {"alice": f"alice_{tag}", "bob": f"bob_{tag}"}
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {group} NOLOGIN")
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {group}")
        for role in people.values():
            conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE {group}")
            conn.execute(f"ALTER ROLE {role} SET role = '{group}'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}

    def ks(who: str, *args: str) -> subprocess.CompletedProcess[str]:
        folder = tmp_path / who
        return subprocess.run(
            [sys.executable, "-m", "console", "--config", str(folder / "config.toml"), *args],
            capture_output=True, text=True, cwd=folder, timeout=120,
            env=dict(env, KILLSWITCH_OPERATOR=who, KILLSWITCH_HOST=f"{who}-laptop"))

    for i, (who, role) in enumerate(people.items()):
        folder = tmp_path / who
        folder.mkdir()
        config = write_config(folder, n=2, backend=f'state_file = "{tmp_path / "state.json"}"')
        url = (f"postgresql://{role}@127.0.0.1:{pg.port}/killswitch"
               f"?options=-csearch_path%3D{schema}")
        config.write_text(config.read_text().replace(
            "[settings]\n", f'[settings]\nstore = "{url}"\n', 1))
        r = ks(who, "run", "contain", f"app-{i}", "--yes", "--reason", f"{who} contains")
        assert r.returncode == 0, r.stderr
    for who in people:
        r = ks(who, "audit", "show")
        assert r.returncode == 0, r.stderr
        assert [line.split()[3] for line in r.stdout.splitlines()[1:]] == ["alice", "bob"]
        assert ks(who, "audit", "verify").returncode == 0
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        owners = dict(conn.execute("SELECT tablename, tableowner FROM pg_tables "
                                   "WHERE schemaname = %s", (schema,)).fetchall())
    assert {"events", "meta", "locks"} <= set(owners) and set(owners.values()) == {group}
