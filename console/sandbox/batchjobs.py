"""Shared parts of the batch-job stand-ins (``api_*_batches.py``, ``api_bedrock``, ``api_vertex``).

* :func:`batch_refs`: the inventory's ``batches`` references on sandbox backends of a type;
* :func:`sandbox_batch_key`: the fake key a batch stand-in accepts, in ``<dir>/<name>.key``;
* :class:`JobsStandIn`: a stand-in whose jobs move through their provider's states as they
  are read: each read of a job counts, and a state listed in ``TRANSITIONS`` moves on after
  ``seconds`` or ``reads`` (whichever comes first; quick in the sandbox so a cancel settles
  in about a second).

Private bookkeeping fields of a job start with ``_`` and never reach an API answer.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from console.sandbox.seedkeys import sandbox_dir
from console.sandbox.standin import StandIn

__all__ = ["JobsStandIn", "batch_refs", "loopback_backends", "sandbox_batch_key", "stable_id"]

URL_OPTIONS = ("base_url", "endpoint", "endpoint_url", "url")


def loopback_backends(config: Any, types: Iterable[str]) -> list[str]:
    """Backends of one of ``types`` whose URL option points at this machine."""
    wanted = set(types)
    out = []
    for name, b in config.backends.items():
        if b.type not in wanted:
            continue
        url = next((str(b.options[k]) for k in URL_OPTIONS if b.options.get(k)), "")
        if (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1"):
            out.append(name)
    return out


def batch_refs(config: Any, types: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(integration id, ref fields)`` of every batch ref on a sandbox backend of ``types``."""
    backends = set(loopback_backends(config, types))
    return [(integ.id, dict(ref.fields())) for integ in config.integrations
            for ref in integ.batches if ref.backend in backends]


def sandbox_batch_key(config: Any, name: str, prefix: str) -> str:
    """The sandbox key of stand-in ``name`` in ``<dir>/<name>-batch.key`` (0600, made once)."""
    directory = sandbox_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-batch.key"
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    key = prefix + secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def stable_id(*parts: str, n: int = 12) -> str:
    """A deterministic hex id from ``parts``."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:n]


class JobsStandIn(StandIn):
    """A stand-in with jobs in ``state["jobs"]`` (by id) that advance as they are read.

    Subclasses set ``STATUS`` (the job's status field) and ``TRANSITIONS``
    (``{status: (next status, seconds, reads)}``), and may override :meth:`entered`.
    """

    STATUS: ClassVar[str] = "status"
    TRANSITIONS: ClassVar[dict[str, tuple[str, float, int]]] = {}

    def entered(self, job: dict[str, Any], status: str, now: float) -> None:
        """Hook: ``job`` just entered ``status`` (set timestamps and counts)."""

    def move(self, job: dict[str, Any], status: str) -> None:
        """Put ``job`` in ``status`` now."""
        now = time.time()
        job[self.STATUS] = status
        job["_since"], job["_reads"] = now, 0
        self.entered(job, status, now)

    def observe(self, job: dict[str, Any]) -> dict[str, Any]:
        """Count one read of ``job`` and advance it as far as its clock allows."""
        job["_reads"] = int(job.get("_reads", 0)) + 1
        for _ in range(5):
            step = self.TRANSITIONS.get(job[self.STATUS])
            if step is None:
                break
            nxt, seconds, reads = step
            if time.time() - float(job.get("_since", 0)) < seconds and job["_reads"] < reads:
                break
            self.move(job, nxt)
            job["_reads"] = 0
        return job

    @staticmethod
    def public(job: dict[str, Any]) -> dict[str, Any]:
        """The job as the API shows it (no ``_`` fields)."""
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def jobs(self) -> dict[str, dict[str, Any]]:
        """The jobs by id."""
        jobs: dict[str, dict[str, Any]] = self.state.setdefault("jobs", {})
        return jobs
