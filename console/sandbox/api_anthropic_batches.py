"""Anthropic Message Batches stand-in.

Routes (``x-api-key`` or ``Authorization: Bearer``; any ``anthropic-version``; ``?beta=true``
and ``anthropic-beta`` are accepted and ignored)::

    GET  /v1/messages/batches?after_id=&before_id=&limit=   list, newest first (paged)
    GET  /v1/messages/batches/{id}                          retrieve
    POST /v1/messages/batches/{id}/cancel                   cancel -> the batch (canceling)
    GET  /v1/messages/batches/{id}/results                  an ended batch's results (JSONL)

``results_url`` names the host the request was sent to (the real API names its own host,
https://api.anthropic.com), so a client following it, as anthropic-sdk-python's
``messages.batches.results`` does, stays on the stand-in.

Batches are workspace-scoped: the header ``anthropic-workspace-id`` picks the workspace (the
key must be allowed in it, else 403 ``permission_error``); without it the key's first
workspace is used. The workspace is private: the API never shows it. ``in_progress`` ->
``ended`` only after an hour; ``canceling`` -> ``ended`` after 1 s or 2 reads, with the
unprocessed requests counted in ``request_counts.canceled``. Cancelling an ended batch
answers 409. Accepted key: ``<sandbox dir>/anthropic-batch.key`` (every seeded workspace).

Seed, per ``batches`` ref on an ``anthropic-batch`` sandbox backend: in its ``workspace`` one
batch in progress and one ended; in ``wrkspc_other_<id>`` one in progress of another
integration.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from console.sandbox.batchfiles import anthropic_results
from console.sandbox.batchjobs import (
    JobsStandIn,
    batch_refs,
    loopback_backends,
    sandbox_batch_key,
    stable_id,
)
from console.sandbox.standin import Request, Response

__all__ = ["DEFAULT_PORT", "STANDIN", "AnthropicBatchesStandIn", "seed", "wanted"]

DEFAULT_PORT = 8386
TYPES = ("anthropic-batch",)
_ROOT = r"/v1/messages/batches"
_KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 429: "rate_limit_error",
          500: "api_error", 503: "api_error", 529: "overloaded_error"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AnthropicBatchesStandIn(JobsStandIn):
    """Message Batches from memory, per workspace."""

    name: ClassVar[str] = "anthropic-batches"
    STATUS: ClassVar[str] = "processing_status"
    TRANSITIONS: ClassVar[dict[str, tuple[str, float, int]]] = {
        "in_progress": ("ended", 3600.0, 10**9),
        "canceling": ("ended", 1.0, 2),
    }

    def setup(self) -> None:
        """Register the routes."""
        self._local = threading.local()
        self.route("GET", _ROOT, self.list_batches)
        self.route("GET", _ROOT + r"/(?P<id>[^/]+)", self.get_batch)
        self.route("POST", _ROOT + r"/(?P<id>[^/]+)/cancel", self.cancel)
        self.route("GET", _ROOT + r"/(?P<id>[^/]+)/results", self.results)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """Anthropic's error shape."""
        kind = _KINDS.get(status, "api_error") if kind in ("", "api_error",
                                                            "rate_limit_error") else kind
        return {"type": "error", "error": {"type": kind, "message": message}}

    def handle(self, req: Request) -> Response:
        """Check the key and the workspace on API routes, then dispatch."""
        if not req.path.startswith("/_sandbox/"):
            workspaces = self.state.get("keys", {}).get(req.bearer)
            if workspaces is None:
                return self.error(401, "invalid x-api-key", "authentication_error")
            wanted = req.headers.get("anthropic-workspace-id", "").strip()
            if wanted and wanted not in workspaces:
                return self.error(403, f"This API key cannot act in workspace {wanted}.",
                                  "permission_error")
            self._local.ws = wanted or (workspaces[0] if workspaces else "")
            host = req.headers.get("host", "")
            self._local.host = host if host.split(":")[0] in ("127.0.0.1", "localhost") \
                else ""
        return super().handle(req)

    @property
    def _ws(self) -> str:
        """The workspace of the request this thread answers."""
        return str(getattr(self._local, "ws", ""))

    def _visible(self) -> list[dict[str, Any]]:
        return [b for b in self.jobs().values() if b["_workspace"] == self._ws]

    def entered(self, job: dict[str, Any], status: str, now: float) -> None:
        """Timestamps and counts of the new status."""
        counts = job["request_counts"]
        if status == "canceling":
            job["cancel_initiated_at"] = _iso(now)
        if status == "ended":
            job["ended_at"] = _iso(now)
            job["results_url"] = f"https://api.anthropic.com/v1/messages/batches/{job['id']}/results"
            left = counts["processing"]
            counts["processing"] = 0
            if job.get("cancel_initiated_at"):
                counts["canceled"] += left
            else:
                counts["succeeded"] += left

    def _find(self, req: Request) -> dict[str, Any] | None:
        b = self.jobs().get(req.params["id"])
        return b if b is not None and b["_workspace"] == self._ws else None

    def list_batches(self, req: Request) -> Response:
        """Batches of the workspace, newest first, paged with ``after_id`` / ``limit``."""
        items = sorted(self._visible(), key=lambda b: (b["created_at"], b["id"]),
                       reverse=True)
        try:
            limit = max(1, min(1000, int(req.arg("limit") or 20)))
        except ValueError:
            limit = 20
        after = req.arg("after_id")
        ids = [b["id"] for b in items]
        start = ids.index(after) + 1 if after in ids else (len(items) if after else 0)
        chunk = [self.public(self.observe(b)) for b in items[start:start + limit]]
        return Response(200, {"data": chunk, "has_more": start + limit < len(items),
                              "first_id": chunk[0]["id"] if chunk else None,
                              "last_id": chunk[-1]["id"] if chunk else None})

    def get_batch(self, req: Request) -> Response:
        """One batch of the workspace."""
        b = self._find(req)
        if b is None:
            return self.error(404, f"No message batch found with id {req.params['id']}")
        return Response(200, self.public(self.observe(b)))

    def cancel(self, req: Request) -> Response:
        """Start canceling (409 once ended)."""
        b = self._find(req)
        if b is None:
            return self.error(404, f"No message batch found with id {req.params['id']}")
        self.observe(b)
        if b["processing_status"] == "ended":
            return self.error(409, "Batch has already ended and cannot be canceled.")
        if b["processing_status"] == "in_progress":
            self.move(b, "canceling")
        return Response(200, self.public(b))


    def results(self, req: Request) -> Response:
        """An ended batch's results, JSONL (see :mod:`console.sandbox.batchfiles`)."""
        b = self._find(req)
        if b is None:
            return self.error(404, f"No message batch found with id {req.params['id']}")
        self.observe(b)
        if b["processing_status"] != "ended":
            return self.error(404, f"Results of message batch {b['id']} are not available "
                              "until it has ended.")
        return Response(200, anthropic_results(self.state, b),
                        {"Content-Type": "application/binary"})

    def public(self, job: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        """The batch as the API shows it: ``results_url`` on the host that was asked."""
        out = super().public(job)
        host = getattr(self._local, "host", "")
        if out.get("results_url") and host:
            out["results_url"] = f"http://{host}{_ROOT}/{job['id']}/results"
        return out


STANDIN = AnthropicBatchesStandIn


def batch_object(batch_id: str, workspace: str, status: str, processing: int,
                 succeeded: int, errored: int, created: float) -> dict[str, Any]:
    """A MessageBatch as the stand-in stores it (workspace private)."""
    return {"id": batch_id, "type": "message_batch", "processing_status": status,
            "request_counts": {"processing": processing, "succeeded": succeeded,
                               "errored": errored, "canceled": 0, "expired": 0},
            "created_at": _iso(created), "expires_at": _iso(created + 86400),
            "ended_at": _iso(created + 900) if status == "ended" else None,
            "archived_at": None, "cancel_initiated_at": None,
            "results_url": (f"https://api.anthropic.com/v1/messages/batches/{batch_id}/results"
                            if status == "ended" else None),
            "_workspace": workspace, "_since": time.time(), "_reads": 0}


def seed(config: Any) -> dict[str, Any]:
    """Batches for every ``batches`` ref on a sandbox ``anthropic-batch`` backend."""
    jobs: dict[str, Any] = {}
    workspaces: list[str] = []
    base = time.time() - 3600
    for n, (integration, ref) in enumerate(batch_refs(config, TYPES)):
        ws = str(ref.get("workspace") or f"wrkspc_{integration}")
        other = f"wrkspc_other_{integration}"
        workspaces += [ws, other]
        for i, (w, status, proc, ok, err) in enumerate((
                (ws, "in_progress", 70, 0, 0), (ws, "ended", 0, 30, 1),
                (other, "in_progress", 25, 0, 0))):
            bid = "msgbatch_" + stable_id(integration, ref["backend"], str(i), n=24)
            jobs[bid] = batch_object(bid, w, status, proc, ok, err, base + 100 * n + 10 * i)
    key = sandbox_batch_key(config, "anthropic", "sk-ant-api03-sandbox-batch-")
    return {"keys": {key: list(dict.fromkeys(workspaces))}, "jobs": jobs}


def wanted(config: Any) -> bool:
    """True when an ``anthropic-batch`` backend points at this machine."""
    return bool(loopback_backends(config, TYPES))
