"""A real PostgreSQL for the shared-store tests: Debian's server binaries, a cluster in a
temporary folder, one free loopback port (test-backends.md, "PostgreSQL for a shared store").

``start_pg`` starts one cluster per test session; :meth:`PgServer.fresh_url` gives every test
a schema of its own in the ``killswitch`` database (a URL whose ``search_path`` names it), so
tests never see each other's rows and no database has to be created per test.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from console.sandbox import unleash as sb
from console.sandbox.faultproxy import free_port

__all__ = ["PgServer", "start_pg", "stop_pg"]


@dataclass
class PgServer:
    """One running cluster."""

    root: Path
    paths: sb.UnleashPaths

    @property
    def port(self) -> int:
        """The loopback port."""
        return self.paths.pg_port

    def url(self, db: str = "killswitch") -> str:
        """A superuser URL (trust auth, loopback only)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def fresh_url(self, prefix: str = "t") -> str:
        """A URL whose ``search_path`` is a new, empty schema (created here)."""
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.url()}?options=-csearch_path%3D{schema}"


def start_pg() -> PgServer:
    """initdb + start a cluster on a free port and create the ``killswitch`` database."""
    sb.pg_bindir()  # ConfigError naming the package when PostgreSQL is missing
    root = Path(tempfile.mkdtemp(prefix="ks-pg-"))
    root.chmod(0o711)  # the postgres user must reach <root>/pg
    paths = sb.UnleashPaths(root, 0, free_port())
    try:
        sb.init_cluster(paths)
        sb.start_postgres(paths)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{paths.pg_port}/postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE killswitch")
    except BaseException:
        sb.stop_postgres(paths)
        shutil.rmtree(root, ignore_errors=True)
        raise
    return PgServer(root, paths)


def stop_pg(server: PgServer) -> None:
    """Fast shutdown and remove the cluster's folder."""
    sb.stop_postgres(server.paths)
    shutil.rmtree(server.root, ignore_errors=True)
