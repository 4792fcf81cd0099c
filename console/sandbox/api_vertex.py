"""Google Vertex AI batch prediction stand-in (REST v1).

Routes (no authentication is checked; the sandbox backend sets ``anonymous = true``)::

    GET  /v1/projects/{p}/locations/{l}/batchPredictionJobs?filter=&pageSize=&pageToken=
         -> {"batchPredictionJobs": [...], "nextPageToken"?}
    GET  /v1/projects/{p}/locations/{l}/batchPredictionJobs/{id}
    POST /v1/projects/{p}/locations/{l}/batchPredictionJobs/{id}:cancel   body {} -> {}

``filter`` understands terms joined by ``AND``: ``labels.KEY=VALUE`` / ``labels.KEY="VALUE"``
and ``state=JOB_STATE_X``; anything else answers 400 INVALID_ARGUMENT. Errors have Google's
shape ``{"error": {"code", "message", "status"}}``; cancelling an ended job answers 400
FAILED_PRECONDITION.

Jobs move on as they are read: ``JOB_STATE_PENDING`` -> ``JOB_STATE_RUNNING`` (0.5 s or 2
reads), ``JOB_STATE_RUNNING`` -> ``JOB_STATE_SUCCEEDED`` after an hour,
``JOB_STATE_CANCELLING`` -> ``JOB_STATE_CANCELLED`` after 1 s or 2 reads.

Seed, per ``batches`` ref on a ``vertex-batch`` sandbox backend: a running and a succeeded
job carrying the ref's labels, and a running job of another integration.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from console.sandbox.batchjobs import JobsStandIn, batch_refs, loopback_backends, stable_id
from console.sandbox.standin import Request, Response

__all__ = ["DEFAULT_PORT", "STANDIN", "VertexStandIn", "seed", "wanted"]

DEFAULT_PORT = 8388
TYPES = ("vertex-batch",)
_PARENT = r"/v1/(?P<parent>projects/[^/]+/locations/[^/]+)/batchPredictionJobs"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           503: "UNAVAILABLE"}
_ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
          "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED")
_TERM = re.compile(r'^\s*(labels\.(?P<label>[a-z0-9_-]+)|state)\s*=\s*"?(?P<value>[^"]*)"?\s*$')


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VertexStandIn(JobsStandIn):
    """Vertex AI batch prediction jobs from memory (by full resource name)."""

    name: ClassVar[str] = "vertex"
    STATUS: ClassVar[str] = "state"
    TRANSITIONS: ClassVar[dict[str, tuple[str, float, int]]] = {
        "JOB_STATE_PENDING": ("JOB_STATE_RUNNING", 0.5, 2),
        "JOB_STATE_RUNNING": ("JOB_STATE_SUCCEEDED", 3600.0, 10**9),
        "JOB_STATE_CANCELLING": ("JOB_STATE_CANCELLED", 1.0, 2),
    }

    def setup(self) -> None:
        """Register the routes."""
        self.route("GET", _PARENT, self.list_jobs)
        self.route("GET", _PARENT + r"/(?P<id>[^/:]+)", self.get_job)
        self.route("POST", _PARENT + r"/(?P<id>[^/:]+):cancel", self.cancel)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """Google's error shape."""
        return {"error": {"code": status, "message": message,
                          "status": kind if kind.isupper() else _STATUS.get(status, "UNKNOWN")}}

    def entered(self, job: dict[str, Any], status: str, now: float) -> None:
        """Timestamps and stats of the new state."""
        job["updateTime"] = _iso(now)
        stats = job["completionStats"]
        if status in _ENDED:
            job["endTime"] = _iso(now)
            job["outputInfo"] = {"gcsOutputDirectory":
                                 job["outputConfig"]["gcsDestination"]["outputUriPrefix"]
                                 + "prediction-" + job["name"].rsplit("/", 1)[-1]}
        if status == "JOB_STATE_SUCCEEDED":
            stats["successfulCount"] = str(int(stats["successfulCount"])
                                           + int(stats["incompleteCount"]))
            stats["incompleteCount"] = "0"

    def _match(self, job: dict[str, Any], flt: str) -> bool | None:
        for term in (t for t in re.split(r"\s+AND\s+", flt.strip()) if t):
            m = _TERM.match(term)
            if m is None:
                return None
            if m.group("label"):
                if job.get("labels", {}).get(m.group("label")) != m.group("value"):
                    return False
            elif job["state"] != m.group("value"):
                return False
        return True

    def list_jobs(self, req: Request) -> Response:
        """Jobs of the parent, filtered, paged with ``pageSize`` / ``pageToken``."""
        parent = req.params["parent"] + "/"
        flt = req.arg("filter") or ""
        items = sorted((j for n, j in self.jobs().items() if n.startswith(parent)),
                       key=lambda j: j["createTime"], reverse=True)
        out = []
        for job in items:
            ok = self._match(self.observe(job), flt)
            if ok is None:
                return self.error(400, f"Unsupported filter: {flt}")
            if ok:
                out.append(job)
        try:
            size = max(1, min(100, int(req.arg("pageSize") or 100)))
            start = int(req.arg("pageToken") or 0)
        except ValueError:
            return self.error(400, "Invalid pageSize or pageToken")
        body: dict[str, Any] = {"batchPredictionJobs": [self.public(j)
                                                        for j in out[start:start + size]]}
        if start + size < len(out):
            body["nextPageToken"] = str(start + size)
        return Response(200, body)

    def _find(self, req: Request) -> dict[str, Any] | None:
        return self.jobs().get(f"{req.params['parent']}/batchPredictionJobs/{req.params['id']}")

    def get_job(self, req: Request) -> Response:
        """One job."""
        job = self._find(req)
        if job is None:
            return self.error(404, f"BatchPredictionJob {req.params['id']} not found.")
        return Response(200, self.public(self.observe(job)))

    def cancel(self, req: Request) -> Response:
        """Start cancelling (400 FAILED_PRECONDITION once ended); answers ``{}``."""
        job = self._find(req)
        if job is None:
            return self.error(404, f"BatchPredictionJob {req.params['id']} not found.")
        self.observe(job)
        if job["state"] in _ENDED:
            return self.error(400, f"Cannot cancel a job in state {job['state']}.",
                              "FAILED_PRECONDITION")
        if job["state"] != "JOB_STATE_CANCELLING":
            self.move(job, "JOB_STATE_CANCELLING")
        return Response(200, {})


STANDIN = VertexStandIn


def job_object(parent: str, job_id: str, display: str, state: str, labels: dict[str, str],
               ok: int, failed: int, left: int, created: float) -> dict[str, Any]:
    """A BatchPredictionJob as the stand-in stores it."""
    name = f"{parent}/batchPredictionJobs/{job_id}"
    job: dict[str, Any] = {
        "name": name, "displayName": display,
        "model": f"{parent}/publishers/google/models/text-embedding-005",
        "inputConfig": {"instancesFormat": "jsonl",
                        "gcsSource": {"uris": [f"gs://batch-in/{display}/input.jsonl"]}},
        "outputConfig": {"predictionsFormat": "jsonl",
                         "gcsDestination": {"outputUriPrefix": f"gs://batch-out/{display}/"}},
        "state": state, "labels": labels,
        "completionStats": {"successfulCount": str(ok), "failedCount": str(failed),
                            "incompleteCount": str(left)},
        "createTime": _iso(created), "startTime": _iso(created + 30),
        "updateTime": _iso(created + 60), "_since": time.time(), "_reads": 0}
    if state in _ENDED:
        job["endTime"] = _iso(created + 900)
        job["outputInfo"] = {"gcsOutputDirectory": f"gs://batch-out/{display}/prediction-{job_id}"}
    return job


def seed(config: Any) -> dict[str, Any]:
    """Jobs for every ``batches`` ref on a sandbox ``vertex-batch`` backend."""
    jobs: dict[str, Any] = {}
    base = time.time() - 3600
    for n, (integration, ref) in enumerate(batch_refs(config, TYPES)):
        parent = f"projects/{ref.get('project') or 'sandbox'}/locations/" \
                 f"{ref.get('location') or 'us-central1'}"
        labels = {str(k): str(v) for k, v in dict(ref.get("labels") or {}).items()}
        other = {**labels, "integration": f"other-{integration}"}
        for i, (state, lab, ok, bad, left) in enumerate((
                ("JOB_STATE_RUNNING", labels, 400, 2, 600),
                ("JOB_STATE_SUCCEEDED", labels, 1000, 0, 0),
                ("JOB_STATE_RUNNING", other, 10, 0, 90))):
            job_id = str(int(stable_id(integration, ref["backend"], str(i)), 16))
            job = job_object(parent, job_id, f"{integration}-{i}", state, lab, ok, bad, left,
                             base + 100 * n + 10 * i)
            jobs[job["name"]] = job
    return {"jobs": jobs}


def wanted(config: Any) -> bool:
    """True when a ``vertex-batch`` backend points at this machine."""
    return bool(loopback_backends(config, TYPES))
