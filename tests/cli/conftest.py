"""CLI tests drive the real `killswitch` entry point in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.conftest import write_config


@dataclass
class Cli:
    """Runs `python -m console` with a config in a temporary folder."""

    root: Path
    config: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KILLSWITCH_") or k == "KILLSWITCH_STORE"}
        env["KILLSWITCH_OPERATOR"] = "tester"
        env.update(extra or {})
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "console", "--config", str(self.config), *args]

    def __call__(self, *args: str, input: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              input=input if input is not None else "", cwd=self.root,
                              env=self.env(env), timeout=120)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                cwd=self.root, env=self.env())

    @property
    def db(self) -> Path:
        return self.root / "audit.db"

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Rows of a query on the store under test (SQLite file, or the PostgreSQL schema
        of ``$KILLSWITCH_STORE``: ``?`` placeholders are translated)."""
        url = os.environ.get("KILLSWITCH_STORE")
        if url:
            import psycopg
            with psycopg.connect(url, autocommit=True) as pg:
                exists = pg.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
                if not (exists and exists[0]):
                    return []
                return [tuple(r) for r in pg.execute(sql.replace("?", "%s"),
                                                     params).fetchall()]
        if not self.db.exists():
            return []
        conn = sqlite3.connect(self.db)
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    def tables(self) -> set[str]:
        """Tables of the store under test (SQLite file, or the PostgreSQL schema)."""
        if os.environ.get("KILLSWITCH_STORE"):
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = " \
                  "current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {str(t) for (t,) in self.rows(sql)}

    @property
    def state(self) -> dict[str, object]:
        path = self.root / "fake-state.json"
        return json.loads(path.read_text()) if path.exists() else {"switches": {},
                                                                    "applied": []}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A config with 4 integrations on a fake backend whose state is a shared JSON file."""
    backend = f'state_file = "{tmp_path / "fake-state.json"}"\nlatency = 0.01'
    return Cli(tmp_path, write_config(tmp_path, n=4, backend=backend))


def slow(cli: Cli) -> None:
    """Rewrite the config so that every apply takes 0.4 s, two at a time."""
    text = cli.config.read_text().replace(
        "latency = 0.01", "latency = 0.01\napply_latency = 0.4\nmax_concurrency = 2")
    cli.config.write_text(text)
