"""Fixtures shared by every test folder: the real OpenBao dev server and the real PostgreSQL
of the shared store.

``KILLSWITCH_TEST_STORE=postgresql`` runs the chosen tests against PostgreSQL: every test then
gets a fresh schema of one session-wide cluster through ``$KILLSWITCH_STORE`` (which the
console and every subprocess it starts read), so the same tests cover both stores. Tests
marked ``sqlite_only`` look inside the SQLite file itself and are skipped in that run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgserver import PgServer, start_pg, stop_pg
from tests.servers import BaoServer, start_bao, stop_bao

TEST_STORE = os.environ.get("KILLSWITCH_TEST_STORE", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    """Register the store markers."""
    config.addinivalue_line("markers", "sqlite_only: looks inside the SQLite file itself")


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """A session-wide OpenBao dev server on a free loopback port pair."""
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        yield server
    finally:
        stop_bao(server)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A session-wide PostgreSQL cluster on a free loopback port."""
    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


@pytest.fixture
def pg_url(pg: PgServer) -> str:
    """A URL of a fresh, empty schema of the session's PostgreSQL."""
    return pg.fresh_url()


@pytest.fixture(autouse=True)
def _store_under_test(request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``$KILLSWITCH_STORE`` at a fresh schema when the run is against PostgreSQL."""
    if TEST_STORE != "postgresql":
        monkeypatch.delenv("KILLSWITCH_STORE", raising=False)
        return
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("looks inside the SQLite file (run against SQLite)")
    server: PgServer = request.getfixturevalue("pg")
    monkeypatch.setenv("KILLSWITCH_STORE", server.fresh_url())
