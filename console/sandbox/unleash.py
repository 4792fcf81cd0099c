"""The real Unleash server of the sandbox, on its own private PostgreSQL 15 cluster.

``start(config)`` does, idempotently:

1. ``initdb`` a cluster in ``<dir>/pg/data`` (once) and start ``postgres`` on
   ``127.0.0.1:<unleash-pg port>`` (default 5433), socket directory ``<dir>/pg``;
2. create the ``unleash`` role and database (once);
3. start ``node <repo>/.cache/unleash/node_modules/unleash-server/dist/server.js`` on a
   private loopback port (recorded in ``<dir>/unleash.port``), ready when ``GET /health``
   answers 200, behind the sandbox's fault proxy (:mod:`console.sandbox.faultproxy`) on
   ``127.0.0.1:<unleash port>`` (default 4242), the address the config names;
4. create every flag the inventory references on ``unleash`` backends that point at this
   server, enabled in ``production`` and ``development`` (flags that already exist are left
   as they are, so an exercise's state survives a restart; :func:`forget`, called by
   ``killswitch sandbox reset``, makes the next start begin from a fresh database).

Ports come from ``[sandbox] ports`` keys ``unleash`` and ``unleash-pg``. ``initdb`` and
``postgres`` refuse to run as root: when the console runs as root they run as the
``postgres`` user through ``setpriv`` (which execs, so the recorded pid is the postmaster's
own), and the ``pg`` folder is chowned to it. Both processes are recorded in pid files
(``unleash.pid``, ``unleash-pg.pid``) and only ever stopped when ``/proc/<pid>/cmdline``
still matches. The Unleash tokens are the well-known insecure sandbox tokens of
test-backends.md section 4; the admin token is written to ``<dir>/unleash.token`` and a
production backend (client) token to ``<dir>/unleash-client.token`` (mode 0600).

The npm install lives in ``<repo>/.cache/unleash`` (``scripts/install-unleash.sh``, pinned
``unleash-server@7.5.1``: the newest release that supports node 20).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.errors import ConfigError, ConsoleError
from console.sandbox import ServiceStatus
from console.sandbox.faultproxy import (
    backend_port,
    free_port,
    start_proxy,
    status_line,
    stop_proxy,
    write_backend_port,
)
from console.sandbox.process import (
    http_ok,
    ours,
    ports_taken,
    spawn,
    stop_process,
    write_secret_file,
)

__all__ = [
    "ADMIN_TOKEN",
    "CLIENT_TOKENS",
    "UnleashPaths",
    "create_database",
    "flag_refs",
    "forget",
    "init_cluster",
    "install_dir",
    "pg_bindir",
    "seed_flags",
    "start",
    "start_postgres",
    "start_server",
    "status",
    "stop",
    "stop_postgres",
    "stop_server",
    "wanted",
]

NAME = "unleash"
PG_NAME = "unleash-pg"
VERSION = "7.5.1"
DEFAULT_PORT = 4242
DEFAULT_PG_PORT = 5433
HEALTH_TIMEOUT = 60.0
ADMIN_TOKEN = "*:*.unleash-insecure-admin-api-token"
"""The sandbox's admin API token (test-backends.md section 4); never a real secret."""
CLIENT_TOKENS = {
    "development": "default:development.unleash-insecure-api-token",
    "production": "default:production.unleash-insecure-api-token",
}
"""Backend (SDK) tokens of the sandbox, per environment of project ``default``."""
SEED_ENVIRONMENTS = ("production", "development")

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class UnleashPaths:
    """Where one sandbox Unleash keeps its state."""

    state_dir: Path
    port: int
    pg_port: int

    @property
    def pg_dir(self) -> Path:
        """The PostgreSQL folder (socket directory; the cluster is in ``data``)."""
        return self.state_dir / "pg"

    @property
    def url(self) -> str:
        """The Unleash base URL."""
        return f"http://127.0.0.1:{self.port}"


def wanted(config: Any) -> bool:
    """True when any backend is of type ``unleash``."""
    return any(b.type == "unleash" for b in config.backends.values())


def install_dir() -> Path:
    """The npm project holding unleash-server (``$KILLSWITCH_UNLEASH_DIR`` overrides)."""
    return Path(os.environ.get("KILLSWITCH_UNLEASH_DIR") or REPO / ".cache" / "unleash")


def server_js(base: Path | None = None) -> Path:
    """``dist/server.js`` of the installed unleash-server.

    Raises:
        ConfigError: It is not installed (names the install script).
    """
    path = (base or install_dir()) / "node_modules" / "unleash-server" / "dist" / "server.js"
    if not path.is_file():
        raise ConfigError(f"unleash-server {VERSION} is not installed in {path.parents[2]}",
                          hint="run scripts/install-unleash.sh (npm, node 20), or `make test`")
    return path


def pg_bindir() -> Path:
    """PostgreSQL's bin folder (``pg_config --bindir``; Debian versions it).

    Raises:
        ConfigError: PostgreSQL is not installed.
    """
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if out and (Path(out) / "initdb").is_file():
            return Path(out)
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").is_file():
            return cand
    raise ConfigError("PostgreSQL (initdb, pg_ctl, postgres) was not found",
                      hint="apt-get install -y postgresql")


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ConsoleError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def init_cluster(paths: UnleashPaths) -> bool:
    """``initdb`` a trust-auth cluster in ``<pg_dir>/data`` unless one exists; True if new."""
    data = paths.pg_dir / "data"
    if (data / "PG_VERSION").is_file():
        return False
    paths.pg_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(paths.pg_dir, "postgres", "postgres")
    _run(_as_postgres([str(pg_bindir() / "initdb"), "-D", str(data), "-U", "postgres",
                       "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
         f"initdb in {data} (the postgres user must be able to reach that folder)")
    return True


def _pg_ready(port: int) -> bool:
    proc = subprocess.run([str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                           str(port), "-t", "1"], check=False)
    return proc.returncode == 0


def _record_real_argv(state_dir: Path, name: str, pid: int) -> None:
    """Rewrite ``<name>.pid`` with the process's own cmdline (setpriv execs postgres)."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        argv = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
        (state_dir / f"{name}.pid").write_text(json.dumps({"pid": pid, "argv": argv}))


def start_postgres(paths: UnleashPaths) -> int:
    """Start the cluster's postmaster on 127.0.0.1 unless ours runs; returns its pid."""
    pid = ours(paths.state_dir, PG_NAME)
    if pid is not None and _pg_ready(paths.pg_port):
        return pid
    if pid is not None:
        stop_postgres(paths)
    taken = ports_taken(paths.pg_port)
    if taken:
        raise ConfigError(f"cannot start PostgreSQL for Unleash: port {paths.pg_port} on "
                          "127.0.0.1 is in use",
                          hint='set [sandbox] ports = {"unleash-pg" = <free port>}')
    argv = _as_postgres([str(pg_bindir() / "postgres"), "-D", str(paths.pg_dir / "data"),
                         "-c", "listen_addresses=127.0.0.1", "-p", str(paths.pg_port),
                         "-k", str(paths.pg_dir), "-c", "fsync=off"])
    pid = spawn(paths.state_dir, PG_NAME, argv, {"PATH": os.environ.get("PATH", ""),
                                                   "LANG": "C.UTF-8", "TZ": "UTC"},
                lambda: _pg_ready(paths.pg_port), HEALTH_TIMEOUT,
                what=f"PostgreSQL on 127.0.0.1:{paths.pg_port}")
    _record_real_argv(paths.state_dir, PG_NAME, pid)
    return pid


def _psql(port: int, sql: str, db: str = "postgres") -> str:
    return _run([str(pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U",
                 "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql], "psql")


def create_database(port: int, name: str = "unleash", fresh: bool = False) -> str:
    """Create the ``unleash`` role and database ``name`` (dropped first when ``fresh``).

    Returns:
        The ``DATABASE_URL`` for Unleash.
    """
    if not _psql(port, "select 1 from pg_roles where rolname = 'unleash'").strip():
        _psql(port, "create user unleash with password 'unleash'")
    if fresh:
        _psql(port, f'drop database if exists "{name}" with (force)')
    if not _psql(port, f"select 1 from pg_database where datname = '{name}'").strip():
        _psql(port, f'create database "{name}" owner unleash')
    return f"postgres://unleash:unleash@127.0.0.1:{port}/{name}"


def stop_postgres(paths: UnleashPaths) -> str:
    """Fast shutdown (SIGINT) of our postmaster, then wait; returns what happened."""
    pid = ours(paths.state_dir, PG_NAME)
    if pid is None:
        return stop_process(paths.state_dir, PG_NAME)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while ours(paths.state_dir, PG_NAME) is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process spawned it
        if time.monotonic() > deadline:
            return stop_process(paths.state_dir, PG_NAME)  # SIGTERM, then SIGKILL
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with contextlib.suppress(FileNotFoundError):
        (paths.state_dir / f"{PG_NAME}.pid").unlink()
    return f"stopped pid {pid}"


def _healthy(url: str) -> bool:
    return http_ok(f"{url}/health")


def start_server(paths: UnleashPaths, database_url: str, base: Path | None = None) -> int:
    """Start unleash-server on ``paths.port`` unless ours runs; returns its pid."""
    pid = ours(paths.state_dir, NAME)
    if pid is not None and _healthy(paths.url):
        return pid
    if pid is not None:
        stop_process(paths.state_dir, NAME)
    if ports_taken(paths.port):
        raise ConfigError(f"cannot start Unleash: port {paths.port} on 127.0.0.1 is in use",
                          hint='set [sandbox] ports = {"unleash" = <free port>}')
    node = shutil.which("node")
    if not node:
        raise ConfigError("node (v20) is not installed; Unleash needs it",
                          hint="apt-get install -y nodejs, or install node 20")
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
        "TZ": "UTC", "DATABASE_URL": database_url, "DATABASE_SSL": "false",
        "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(paths.port),
        "INIT_ADMIN_API_TOKENS": ADMIN_TOKEN,
        "INIT_BACKEND_API_TOKENS": ",".join(CLIENT_TOKENS.values()),
        "CHECK_VERSION": "false", "SEND_TELEMETRY": "false", "LOG_LEVEL": "warn",
        "NODE_NO_WARNINGS": "1",
    }
    argv = [node, str(server_js(base))]
    return spawn(paths.state_dir, NAME, argv, env, lambda: _healthy(paths.url),
                 HEALTH_TIMEOUT, what=f"Unleash at {paths.url}/health")


def stop_server(paths: UnleashPaths) -> str:
    """Stop our unleash-server process; returns what happened."""
    return stop_process(paths.state_dir, NAME)


def seed_flags(url: str, flags: Iterable[tuple[str, str]], token: str = ADMIN_TOKEN,
               environments: Iterable[str] = SEED_ENVIRONMENTS) -> list[str]:
    """Create each missing ``(project, flag)`` and enable it in ``environments``.

    Flags that already exist are left alone. Returns the flags created.
    """
    import httpx

    created = []
    with httpx.Client(base_url=url, headers={"Authorization": token}, timeout=30) as http:
        for project, flag in flags:
            base = f"/api/admin/projects/{project}/features"
            if http.get(f"{base}/{flag}").status_code == 200:
                continue
            resp = http.post(base, json={"name": flag, "type": "kill-switch",
                                         "description": "Killswitch sandbox flag"})
            if resp.status_code not in (200, 201):
                raise ConsoleError(f"seeding Unleash flag {flag!r} failed: HTTP "
                                   f"{resp.status_code} {resp.text[:200]}", where=url)
            for env in environments:
                on = http.post(f"{base}/{flag}/environments/{env}/on")
                if on.status_code >= 400:
                    raise ConsoleError(f"enabling Unleash flag {flag!r} in {env} failed: "
                                       f"HTTP {on.status_code} {on.text[:200]}", where=url)
            created.append(flag)
    return created


def flag_refs(config: Any, url: str) -> list[tuple[str, str]]:
    """``(project, flag)`` of every flag reference on an unleash backend at ``url``."""
    wanted_urls = {url.rstrip("/"), url.replace("127.0.0.1", "localhost").rstrip("/")}
    out: list[tuple[str, str]] = []
    for integ in config.integrations:
        for ref in integ.flags:
            backend = config.backends.get(ref.backend)
            if backend is None or backend.type != "unleash":
                continue
            if str(backend.options.get("url") or "").rstrip("/") not in wanted_urls:
                continue
            fields = ref.fields()
            project = str(fields.get("project") or backend.options.get("project") or "default")
            item = (project, str(fields.get("flag") or ""))
            if item[1] and item not in out:
                out.append(item)
    return out


def _paths(config: Any) -> UnleashPaths:
    sb = getattr(config, "sandbox", None)
    ports = getattr(sb, "ports", None) or {}
    state_dir = Path(config.resolve(getattr(sb, "dir", None) or ".sandbox"))
    return UnleashPaths(state_dir, int(ports.get("unleash", DEFAULT_PORT)),
                        int(ports.get("unleash-pg", DEFAULT_PG_PORT)))


def status(config: Any) -> ServiceStatus:
    """The Unleash service (its fault proxy and its PostgreSQL) as they are now."""
    paths = _paths(config)
    pid = ours(paths.state_dir, NAME)
    pg = ours(paths.state_dir, PG_NAME)
    pg_word = f"PostgreSQL pid {pg} on port {paths.pg_port}" if pg else "PostgreSQL not running"
    if pid is None:
        return ServiceStatus(NAME, paths.url, None, False, f"not running; {pg_word}")
    hidden = backend_port(paths.state_dir, NAME)
    if hidden is None or not _healthy(f"http://127.0.0.1:{hidden}"):
        return ServiceStatus(NAME, paths.url, pid, False,
                             f"process {pid} is up but /health does not answer")
    proxy_up, line = status_line(paths.state_dir, NAME)
    return ServiceStatus(NAME, paths.url, pid, proxy_up,
                         f"{pg_word}; admin token in {paths.state_dir / 'unleash.token'}; "
                         f"serving {line}" if proxy_up else
                         f"Unleash serves on 127.0.0.1:{hidden}, but its {line}")


_FRESH = "unleash.fresh"
"""Marker file: the next start drops and recreates the Unleash database."""


def forget(config: Any) -> None:
    """Make the next :func:`start` begin from a fresh, reseeded database (sandbox reset)."""
    paths = _paths(config)
    if wanted(config) and (paths.pg_dir / "data" / "PG_VERSION").is_file():
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        (paths.state_dir / _FRESH).write_text("drop the unleash database at the next start\n")


def start(config: Any) -> ServiceStatus:
    """Start PostgreSQL, Unleash and its fault proxy unless they run, then seed missing flags.

    Raises:
        ConfigError: A port is taken, or node / PostgreSQL / unleash-server is missing.
        ConsoleError: A process did not become healthy (names its log).
    """
    paths = _paths(config)
    if not wanted(config):
        return ServiceStatus(NAME, paths.url, None, False, "no unleash backend configured")
    server_js()  # fail early, before starting PostgreSQL, when the npm install is missing
    hidden = backend_port(paths.state_dir, NAME)
    fresh = (paths.state_dir / _FRESH).is_file()
    already = (not fresh and ours(paths.state_dir, NAME) is not None and hidden is not None
               and _healthy(f"http://127.0.0.1:{hidden}"))
    if not already:
        stop_server(paths)
        stop_proxy(paths.state_dir, NAME)
        if ports_taken(paths.port):
            raise ConfigError(f"cannot start Unleash: port {paths.port} on 127.0.0.1 is in use",
                              hint='set [sandbox] ports = {"unleash" = <free port>}')
        hidden = free_port()
    assert hidden is not None
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    new_cluster = init_cluster(paths)
    start_postgres(paths)
    database_url = create_database(paths.pg_port, fresh=fresh)
    (paths.state_dir / _FRESH).unlink(missing_ok=True)
    backend = UnleashPaths(paths.state_dir, hidden, paths.pg_port)
    pid = start_server(backend, database_url)
    write_backend_port(paths.state_dir, NAME, hidden)
    try:
        start_proxy(paths.state_dir, NAME, paths.port, hidden, "unleash")
    except Exception:
        stop_server(paths)
        raise
    write_secret_file(paths.state_dir / "unleash.token", ADMIN_TOKEN)
    write_secret_file(paths.state_dir / "unleash-client.token", CLIENT_TOKENS["production"])
    created = seed_flags(paths.url, flag_refs(config, paths.url))
    word = "already running" if already else \
        f"started{' (new database)' if new_cluster or fresh else ''}"
    return ServiceStatus(NAME, paths.url, pid, True,
                         f"{word}; PostgreSQL on 127.0.0.1:{paths.pg_port}; seeded "
                         f"{', '.join(created) or 'nothing new'}; admin token in "
                         f"{paths.state_dir / 'unleash.token'}")


def stop(config: Any) -> ServiceStatus:
    """Stop the fault proxy, Unleash, then its PostgreSQL, if ours (the database is kept)."""
    paths = _paths(config)
    proxy = stop_proxy(paths.state_dir, NAME)
    detail = stop_server(paths)
    (paths.state_dir / f"{NAME}.port").unlink(missing_ok=True)
    pg = stop_postgres(paths)
    return ServiceStatus(NAME, paths.url, None, False,
                         f"{detail}; fault proxy: {proxy}; PostgreSQL: {pg}")
