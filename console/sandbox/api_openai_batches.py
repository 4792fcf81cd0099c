"""OpenAI (and Azure OpenAI v1) Batch API stand-in.

Routes (OpenAI: ``Authorization: Bearer <key>``; Azure: ``api-key: <key>``)::

    GET  /v1/batches?after=&limit=                 list, newest first (paged)
    GET  /v1/batches/{id}                          retrieve
    POST /v1/batches/{id}/cancel                   cancel -> the batch (now cancelling)
    GET  /v1/files/{id}/content                    a batch's output / error file (JSONL)
    GET  /openai/v1/batches...                     the same, Azure OpenAI v1 path shape

Batches move on as they are read: ``validating`` -> ``in_progress`` (0.5 s or 2 reads);
``in_progress`` -> ``finalizing`` -> ``completed`` only after an hour (the sandbox keeps them
running); ``cancelling`` -> ``cancelled`` after 1 s or 2 reads. Cancelling a batch that has
ended answers 409. Accepted key: ``<sandbox dir>/openai-batch.key``.

Seed, per ``batches`` reference on an ``openai-batch`` / ``azure-openai-batch`` sandbox
backend: one batch in progress and one completed carrying the reference's metadata, and one
in progress of ANOTHER integration (metadata ``integration = "other-<id>"``).
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

from console.sandbox.batchfiles import openai_file
from console.sandbox.batchjobs import (
    JobsStandIn,
    batch_refs,
    loopback_backends,
    sandbox_batch_key,
    stable_id,
)
from console.sandbox.standin import Request, Response

__all__ = ["DEFAULT_PORT", "STANDIN", "OpenAIBatchesStandIn", "seed", "wanted"]

DEFAULT_PORT = 8385
TYPES = ("openai-batch", "azure-openai-batch")
_ROOT = r"(?:/openai)?/v1/batches"
_CODES = {401: "invalid_api_key", 404: "not_found", 409: "conflict",
          429: "rate_limit_exceeded"}
_ENDED = ("completed", "failed", "expired", "cancelled")


class OpenAIBatchesStandIn(JobsStandIn):
    """OpenAI / Azure OpenAI batches from memory."""

    name: ClassVar[str] = "openai-batches"
    TRANSITIONS: ClassVar[dict[str, tuple[str, float, int]]] = {
        "validating": ("in_progress", 0.5, 2),
        "in_progress": ("finalizing", 3600.0, 10**9),
        "finalizing": ("completed", 5.0, 10),
        "cancelling": ("cancelled", 1.0, 2),
    }

    def setup(self) -> None:
        """Register the routes."""
        self.route("GET", _ROOT, self.list_batches)
        self.route("GET", _ROOT + r"/(?P<id>[^/]+)", self.get_batch)
        self.route("POST", _ROOT + r"/(?P<id>[^/]+)/cancel", self.cancel)
        self.route("GET", r"(?:/openai)?/v1/files/(?P<id>[^/]+)/content", self.file_content)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """OpenAI's error shape."""
        return {"error": {"message": message, "type": kind or "invalid_request_error",
                          "param": None, "code": _CODES.get(status)}}

    def handle(self, req: Request) -> Response:
        """Check the key (either header style) on API routes, then dispatch."""
        if not req.path.startswith("/_sandbox/"):
            key = req.headers.get("api-key", "").strip() or req.bearer
            if not key or key not in self.state.get("keys", []):
                return self.error(401, "Incorrect API key provided.", "invalid_request_error")
        resp = super().handle(req)
        resp.headers.setdefault("x-request-id", f"req_{random.getrandbits(64):016x}")
        return resp

    def entered(self, job: dict[str, Any], status: str, now: float) -> None:
        """Timestamps and counts of the new status."""
        job[f"{status}_at"] = int(now)
        counts = job["request_counts"]
        if status == "completed":
            counts["completed"] = counts["total"] - counts["failed"]
            job["output_file_id"] = f"file-out-{job['id'][6:]}"
        if status == "cancelled":
            job["output_file_id"] = f"file-out-{job['id'][6:]}"

    def list_batches(self, req: Request) -> Response:
        """Batches, newest first, paged with ``after`` / ``limit``."""
        items = sorted(self.jobs().values(), key=lambda b: (-b["created_at"], b["id"]))
        try:
            limit = max(1, min(100, int(req.arg("limit") or 20)))
        except ValueError:
            limit = 20
        after = req.arg("after")
        ids = [b["id"] for b in items]
        start = ids.index(after) + 1 if after in ids else (len(items) if after else 0)
        chunk = [self.public(self.observe(b)) for b in items[start:start + limit]]
        return Response(200, {"object": "list", "data": chunk,
                              "first_id": chunk[0]["id"] if chunk else None,
                              "last_id": chunk[-1]["id"] if chunk else None,
                              "has_more": start + limit < len(items)})

    def get_batch(self, req: Request) -> Response:
        """One batch."""
        b = self.jobs().get(req.params["id"])
        if b is None:
            return self.error(404, f"No batch found with id '{req.params['id']}'.")
        return Response(200, self.public(self.observe(b)))

    def cancel(self, req: Request) -> Response:
        """Start cancelling a running batch (409 once it has ended)."""
        b = self.jobs().get(req.params["id"])
        if b is None:
            return self.error(404, f"No batch found with id '{req.params['id']}'.")
        self.observe(b)
        if b["status"] in _ENDED:
            return self.error(409, f"Cannot cancel a batch with status '{b['status']}'.")
        if b["status"] != "cancelling":
            self.move(b, "cancelling")
        return Response(200, self.public(b))


    def file_content(self, req: Request) -> Response:
        """A batch's output or error file (see :mod:`console.sandbox.batchfiles`)."""
        text = openai_file(self.state, req.params["id"])
        if text is None:
            return self.error(404, f"No such File object: {req.params['id']}")
        return Response(200, text, {"Content-Type": "application/octet-stream"})


STANDIN = OpenAIBatchesStandIn


def batch_object(batch_id: str, status: str, metadata: dict[str, str], total: int,
                 done: int, failed: int, created: int) -> dict[str, Any]:
    """A Batch as the stand-in stores it."""
    now = time.time()
    return {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions",
            "errors": None, "input_file_id": f"file-in-{batch_id[6:]}",
            "completion_window": "24h", "status": status,
            "output_file_id": f"file-out-{batch_id[6:]}" if status == "completed" else None,
            "error_file_id": f"file-err-{batch_id[6:]}" if failed else None,
            "created_at": created, "in_progress_at": created + 5 if status != "validating"
            else None, "expires_at": created + 86400, "finalizing_at": None,
            "completed_at": created + 600 if status == "completed" else None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": total, "completed": done, "failed": failed},
            "metadata": metadata, "_since": now, "_reads": 0}


def seed(config: Any) -> dict[str, Any]:
    """Batches for every ``batches`` ref on a sandbox OpenAI / Azure OpenAI batch backend."""
    jobs: dict[str, Any] = {}
    base = int(time.time()) - 3600
    for n, (integration, ref) in enumerate(batch_refs(config, TYPES)):
        meta = {str(k): str(v) for k, v in dict(ref.get("metadata") or {}).items()}
        other = {**meta, "integration": f"other-{integration}"} if meta else \
            {"integration": f"other-{integration}"}
        for i, (status, md, total, done, failed) in enumerate((
                ("in_progress", meta, 120, 40, 2),
                ("completed", meta, 50, 48, 2),
                ("in_progress", other, 80, 10, 0))):
            bid = "batch_" + stable_id(integration, ref["backend"], str(i), n=24)
            jobs[bid] = batch_object(bid, status, md, total, done, failed,
                                     base + 100 * n + 10 * i)
    return {"keys": [sandbox_batch_key(config, "openai", "sk-proj-sandbox-batch-")],
            "jobs": jobs}


def wanted(config: Any) -> bool:
    """True when an OpenAI or Azure OpenAI batch backend points at this machine."""
    return bool(loopback_backends(config, TYPES))
