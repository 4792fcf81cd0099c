"""A real PgBouncer in front of the test PostgreSQL (issue 14 §1): transaction pooling is
refused with a message naming the fix, session pooling is accepted and a trail works there.

PgBouncer refuses to run as root, so it runs as ``postgres`` (``setpriv``, as the cluster
does). PgBouncer 1.18 does not accept the ``options`` startup parameter, so each pooled role
picks its schema the way a pooled deployment does: ``ALTER ROLE ... SET search_path``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from console.errors import EXIT_FAILED, AuditError
from console.sandbox.faultproxy import free_port
from console.sandbox.unleash import _as_postgres
from console.store.pg import connect
from console.store.pg_audit import PgAuditLog
from tests.pgserver import PgServer

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Bouncer:
    """A running PgBouncer: one pooled database per pool mode, each with its own role."""

    port: int
    roles: dict[str, str]  # pool mode -> role (whose search_path is its own schema)

    def url(self, mode: str) -> str:
        return f"postgresql://{self.roles[mode]}@127.0.0.1:{self.port}/ks_{mode}"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def bouncer(pg: PgServer) -> Iterator[Bouncer]:
    if not os.path.exists(PGBOUNCER):
        pytest.fail("pgbouncer is not installed (`make test` installs it)")
    tag = uuid.uuid4().hex[:8]
    roles = {mode: f"ks_{mode}_{tag}" for mode in ("transaction", "session")}
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        for role in roles.values():
            conn.execute(f'CREATE SCHEMA "{role}"')
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
            conn.execute(f'GRANT ALL ON SCHEMA "{role}" TO "{role}"')
            conn.execute(f'ALTER ROLE "{role}" SET search_path = "{role}"')
    folder = Path(tempfile.mkdtemp(prefix="ks-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text("".join(f'"{r}" ""\n' for r in roles.values()))
    port = free_port()
    dbs = "".join(f"ks_{mode} = host=127.0.0.1 port={pg.port} dbname=killswitch "
                  f"pool_mode={mode}\n" for mode in roles)
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{dbs}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {folder}/users.txt\n"
        "default_pool_size = 4\nmax_client_conn = 50\n")
    if os.geteuid() == 0:
        for p in (folder, *folder.iterdir()):
            shutil.chown(p, "postgres", "postgres")
    log = (folder / "stderr.log").open("w")
    proc = subprocess.Popen(_as_postgres([PGBOUNCER, str(folder / "pgbouncer.ini")]),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("pgbouncer did not start: "
                            + (folder / "stderr.log").read_text()[-2000:])
            time.sleep(0.02)
        yield Bouncer(port, roles)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_transaction_pooling_is_refused_naming_the_fix(bouncer: Bouncer) -> None:
    url = bouncer.url("transaction")
    with psycopg.connect(url, autocommit=True) as conn:  # the pooler itself answers
        assert conn.execute("SELECT current_schema()").fetchone() == (
            bouncer.roles["transaction"],)
    with pytest.raises(AuditError) as info:
        connect(url)
    err = info.value
    assert "transaction-pooling" in err.msg and "PgBouncer" in err.hint
    assert "pool_mode" in err.hint and err.exit_code == EXIT_FAILED
    with pytest.raises(AuditError, match="transaction-pooling"):
        PgAuditLog(url)
    with psycopg.connect(url, autocommit=True) as conn:  # refused before creating anything
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)


def test_the_cli_refuses_a_transaction_pooler_without_a_traceback(
        bouncer: Bouncer, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[settings]\naudit_db = "audit.db"\n')
    env = {**os.environ, "KILLSWITCH_STORE": bouncer.url("transaction")}
    r = subprocess.run([sys.executable, "-m", "console", "--config",
                        str(tmp_path / "config.toml"), "audit", "verify"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == EXIT_FAILED, r.stdout + r.stderr
    assert "transaction-pooling" in r.stderr and "pool_mode" in r.stderr
    assert "Traceback" not in r.stderr


def test_session_pooling_is_accepted_and_a_trail_works(bouncer: Bouncer) -> None:
    url = bouncer.url("session")
    with PgAuditLog(url) as log:
        log.append(run_id="r1", detail={"i": 1})
        log.append_batch({"run_id": "r1", "detail": {"i": i}} for i in range(2, 10))
        assert log.head().seq == 9
    with PgAuditLog(url, readonly=True) as log:
        report = log.verify()
        assert (report.ok, report.count) == (True, 9)
    with psycopg.connect(url, autocommit=True) as conn:  # in the role's own schema
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (9,)
