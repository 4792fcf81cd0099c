"""Fixtures: a real Unleash 7.5.1 on a private PostgreSQL (one per session), and the
LaunchDarkly stand-in (one per session, reset per test).

Unleash runs from ``<repo>/.cache/unleash`` (``scripts/install-unleash.sh``) on free loopback
ports in a fresh temporary folder and database; both processes are stopped at the end. A
missing component fails under ``CI=true`` and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from console.errors import ConfigError
from console.sandbox import unleash as sb
from console.sandbox.api_launchdarkly import LaunchDarklyStandIn, new_flag
from console.sandbox.standin import serve

LD_TOKEN = "api-test-" + uuid.uuid4().hex


def _missing(msg: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UnleashServer:
    """A running Unleash and the test's own admin view of it."""

    url: str
    paths: sb.UnleashPaths
    admin: httpx.Client

    def new_flag(self, envs: tuple[str, ...] = ("production", "development")) -> str:
        """A fresh flag in project default, on in ``envs``."""
        name = f"ks-{uuid.uuid4().hex[:10]}"
        sb.seed_flags(self.url, [("default", name)], environments=envs)
        return name

    def state(self, flag: str) -> dict[str, bool]:
        """``enabled`` per environment, read without the adapter."""
        body = self.admin.get(f"/api/admin/projects/default/features/{flag}").json()
        return {e["name"]: e["enabled"] for e in body["environments"]}


@pytest.fixture(scope="session")
def unleash() -> Iterator[UnleashServer]:
    """Real Unleash + PostgreSQL on free ports, in a fresh folder and database."""
    try:
        sb.server_js()
        sb.pg_bindir()
    except ConfigError as exc:
        _missing(f"{exc.msg} ({exc.hint})")
    if not shutil.which("node"):
        _missing("node is not installed")
    root = Path(tempfile.mkdtemp(prefix="ks-unleash-"))
    root.chmod(0o711)  # the postgres user must reach <root>/pg
    paths = sb.UnleashPaths(root, free_port(), free_port())
    try:
        sb.init_cluster(paths)
        sb.start_postgres(paths)
        db = sb.create_database(paths.pg_port, f"unleash_{uuid.uuid4().hex[:8]}", fresh=True)
        sb.start_server(paths, db)
        admin = httpx.Client(base_url=paths.url, headers={"Authorization": sb.ADMIN_TOKEN})
        yield UnleashServer(paths.url, paths, admin)
        admin.close()
    finally:
        sb.stop_server(paths)
        sb.stop_postgres(paths)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def unleash_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admin and production backend tokens in the env vars the test backends name."""
    monkeypatch.setenv("KS_TEST_UNLEASH_TOKEN", sb.ADMIN_TOKEN)
    monkeypatch.setenv("KS_TEST_UNLEASH_CLIENT", sb.CLIENT_TOKENS["production"])


@pytest.fixture(scope="session")
def ld_server() -> Iterator[tuple[LaunchDarklyStandIn, str]]:
    """The LaunchDarkly stand-in with project ``ai`` (flags reset per test)."""
    app = LaunchDarklyStandIn({"tokens": [LD_TOKEN], "projects": {"ai": {"flags": {
        "support-bot-enabled": new_flag(["production", "staging", "test"]),
        "half-on": {**new_flag(["production", "test"]), "environments": {
            "production": {"on": True, "version": 1, "lastModified": 0},
            "test": {"on": False, "version": 1, "lastModified": 0}}},
    }}}})
    server = serve(app)
    yield app, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ld(ld_server: tuple[LaunchDarklyStandIn, str],
       monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LaunchDarklyStandIn, str]]:
    """The stand-in, reset, with the token in KS_TEST_LD_TOKEN."""
    app, url = ld_server
    httpx.post(f"{url}/_sandbox/reset")
    monkeypatch.setenv("KS_TEST_LD_TOKEN", LD_TOKEN)
    yield app, url
    httpx.post(f"{url}/_sandbox/reset")
