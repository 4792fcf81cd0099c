"""Fixtures shared by every test folder: the real OpenBao dev server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import BaoServer, start_bao, stop_bao


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """A session-wide OpenBao dev server on a free loopback port pair."""
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        yield server
    finally:
        stop_bao(server)
