"""Google Vertex AI batch prediction stand-in (REST v1).

Written from Google's documentation and SDK, not from our adapter:

* paths: the ``JobService`` HTTP rules of ``google.cloud.aiplatform.v1``
  (``/v1/{parent=projects/*/locations/*}/batchPredictionJobs``,
  ``/v1/{name=projects/*/locations/*/batchPredictionJobs/*}:cancel``; googleapis/python-aiplatform
  ``aiplatform_v1/services/job_service/transports/rest_base.py``);
* **project numbers**: a request may name the project by ID or by number, and every answer
  names it by NUMBER: Google's REST sample for batch predictions sends PROJECT_ID and shows
  ``projects/PROJECT_NUMBER/locations/...`` names in the response (provider-apis.md 5.2;
  the sample: https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/
  batch-prediction-from-cloud-storage). Here an ID's number is derived from it (12 digits);
* **hosts by location**: ``{L}-aiplatform.googleapis.com`` serves region ``L``,
  ``aiplatform.googleapis.com`` serves ``global``, ``aiplatform.{us|eu}.rep.googleapis.com``
  the multi-regions (https://cloud.google.com/vertex-ai/docs/general/locations;
  https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations). A request whose
  ``Host`` is a ``googleapis.com`` name other than the one serving the path's location is
  refused with 400 INVALID_ARGUMENT (the status is [unconfirmed]; that the wrong host does
  not serve the location is documented). Loopback hosts (the sandbox) are not checked.

Routes (no authentication is checked; the sandbox backend sets ``anonymous = true``)::

    GET  /v1/projects/{p}/locations/{l}/batchPredictionJobs?filter=&pageSize=&pageToken=
         -> {"batchPredictionJobs": [...], "nextPageToken"?}
    GET  /v1/projects/{p}/locations/{l}/batchPredictionJobs/{id}
    POST /v1/projects/{p}/locations/{l}/batchPredictionJobs/{id}:cancel   body {} -> {}

``{p}`` is the project ID or its number; answers always carry the number.

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

import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from console.sandbox.batchjobs import JobsStandIn, batch_refs, loopback_backends, stable_id
from console.sandbox.standin import Handler, Request, Response

__all__ = ["DEFAULT_PORT", "STANDIN", "VertexStandIn", "host_of", "project_number", "seed",
           "wanted"]

DEFAULT_PORT = 8388
TYPES = ("vertex-batch",)
_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/batchPredictionJobs"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           503: "UNAVAILABLE"}
_ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
          "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED")
_TERM = re.compile(r'^\s*(labels\.(?P<label>[a-z0-9_-]+)|state)\s*=\s*"?(?P<value>[^"]*)"?\s*$')


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_number(project: str) -> str:
    """The project number of a project ID (a number stays itself): 12 stable digits."""
    if project.isdigit():
        return project
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


def host_of(location: str) -> str:
    """The googleapis.com host that serves ``location`` (see the module doc)."""
    if location == "global":
        return "aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"aiplatform.{location}.rep.googleapis.com"
    return f"{location}-aiplatform.googleapis.com"


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
        """Register the routes (each checks the host first)."""
        self.route("GET", _PARENT, self._on_host(self.list_jobs))
        self.route("GET", _PARENT + r"/(?P<id>[^/:]+)", self._on_host(self.get_job))
        self.route("POST", _PARENT + r"/(?P<id>[^/:]+):cancel", self._on_host(self.cancel))

    def _on_host(self, handler: Handler) -> Handler:
        """``handler``, after refusing a googleapis.com host that does not serve the location."""
        def checked(req: Request) -> Response:
            host = req.headers.get("host", "").rsplit(":", 1)[0].lower()
            want = host_of(req.params["location"])
            if host.endswith("googleapis.com") and host != want:
                return self.error(400, f"Location {req.params['location']} is not served by "
                                  f"{host}; use {want}.", "INVALID_ARGUMENT")
            return handler(req)
        return checked

    @staticmethod
    def _parent(req: Request) -> str:
        """The request's parent, with the project by NUMBER (as Google answers)."""
        return (f"projects/{project_number(req.params['project'])}/locations/"
                f"{req.params['location']}")

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
        parent = self._parent(req) + "/"
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
        return self.jobs().get(f"{self._parent(req)}/batchPredictionJobs/{req.params['id']}")

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
    """A BatchPredictionJob as the stand-in stores it (``parent`` by project ID or number;
    the name carries the number)."""
    _, project, _, location = parent.split("/")
    parent = f"projects/{project_number(project)}/locations/{location}"
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
