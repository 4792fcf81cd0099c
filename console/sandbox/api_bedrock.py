"""AWS Bedrock batch inference stand-in (control plane, rest-json as botocore sends it).

moto does not implement these calls, so the sandbox serves them (``bedrock`` 2023-04-20)::

    GET  /model-invocation-jobs?nameContains=&statusEquals=&maxResults=&nextToken=
         -> {"invocationJobSummaries": [...], "nextToken"?}
    GET  /model-invocation-job/{jobIdentifier}          -> the job (ARN or 12-character id)
    POST /model-invocation-job/{jobIdentifier}/stop     -> {} (Stopping)

Errors are rest-json: HTTP status, header ``x-amzn-ErrorType: <Code>`` and body
``{"message": ...}`` (``ResourceNotFoundException`` 404, ``ConflictException`` 400 when the
job has ended, ``ThrottlingException`` 429, ``InternalServerException`` 500,
``ServiceUnavailableException`` 503). SigV4 is not checked: any credentials work.

Jobs move on as they are read: ``Submitted`` -> ``Validating`` -> ``Scheduled`` ->
``InProgress`` (0.5 s or 2 reads each), ``InProgress`` -> ``Completed`` after an hour,
``Stopping`` -> ``Stopped`` after 1 s or 2 reads.

Seed, per ``batches`` ref on a ``bedrock-batch`` sandbox backend: a job in progress and a
completed one named ``<name_prefix>...``, and one of another integration
(``other-<id>-...``). ``<sandbox dir>/bedrock-credentials`` (profile ``killswitch-sandbox``,
fake keys) is written for the backend's ``credentials_file``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from console.sandbox.batchjobs import JobsStandIn, batch_refs, loopback_backends, stable_id
from console.sandbox.seedkeys import sandbox_dir
from console.sandbox.standin import Request, Response

__all__ = ["DEFAULT_PORT", "PROFILE", "STANDIN", "BedrockStandIn", "seed", "wanted"]

DEFAULT_PORT = 8387
TYPES = ("bedrock-batch",)
PROFILE = "killswitch-sandbox"
ACCOUNT = "123456789012"
_CODES = {400: "ValidationException", 403: "AccessDeniedException",
          404: "ResourceNotFoundException", 409: "ConflictException",
          429: "ThrottlingException", 500: "InternalServerException",
          503: "ServiceUnavailableException"}
_ENDED = ("Stopped", "Completed", "PartiallyCompleted", "Failed", "Expired")
_COUNTS = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BedrockStandIn(JobsStandIn):
    """Bedrock model invocation jobs from memory."""

    name: ClassVar[str] = "bedrock"
    TRANSITIONS: ClassVar[dict[str, tuple[str, float, int]]] = {
        "Submitted": ("Validating", 0.5, 2),
        "Validating": ("Scheduled", 0.5, 2),
        "Scheduled": ("InProgress", 0.5, 2),
        "InProgress": ("Completed", 3600.0, 10**9),
        "Stopping": ("Stopped", 1.0, 2),
    }

    def setup(self) -> None:
        """Register the routes."""
        self.route("GET", r"/model-invocation-jobs", self.list_jobs)
        self.route("GET", r"/model-invocation-job/(?P<id>[^/]+)", self.get_job)
        self.route("POST", r"/model-invocation-job/(?P<id>[^/]+)/stop", self.stop_job)

    def error(self, status: int, message: str, kind: str = "",
              headers: dict[str, str] | None = None) -> Response:
        """A rest-json error: ``x-amzn-ErrorType`` plus ``{"message"}``."""
        code = kind if kind.endswith("Exception") else _CODES.get(status, "InternalServerException")
        if status == 409:  # Bedrock answers ConflictException with HTTP 400
            status = 400
        return Response(status, {"message": message},
                        {**(headers or {}), "x-amzn-ErrorType": code,
                         "x-amzn-RequestId": stable_id(message, str(time.time()))})

    def entered(self, job: dict[str, Any], status: str, now: float) -> None:
        """Timestamps and counts of the new status."""
        job["lastModifiedTime"] = _iso(now)
        if status in _ENDED:
            job["endTime"] = _iso(now)
        if status == "Completed":
            job["processedRecordCount"] = job["totalRecordCount"]
            job["successRecordCount"] = job["totalRecordCount"] - job["errorRecordCount"]

    def _find(self, ident: str) -> dict[str, Any] | None:
        ident = unquote(ident)
        jobs = self.jobs()
        if ident in jobs:
            return jobs[ident]
        return next((j for j in jobs.values() if j["jobArn"].rsplit("/", 1)[-1] == ident),
                    None)

    def list_jobs(self, req: Request) -> Response:
        """Jobs, newest first, filtered by ``nameContains`` / ``statusEquals``, paged."""
        name = req.arg("nameContains") or ""
        status = req.arg("statusEquals") or ""
        items = sorted(self.jobs().values(), key=lambda j: j["submitTime"], reverse=True)
        items = [self.observe(j) for j in items if name in j["jobName"]]
        items = [j for j in items if not status or j["status"] == status]
        try:
            limit = max(1, min(1000, int(req.arg("maxResults") or 1000)))
            start = int(req.arg("nextToken") or 0)
        except ValueError:
            return self.error(400, "invalid maxResults or nextToken", "ValidationException")
        chunk = items[start:start + limit]
        body: dict[str, Any] = {"invocationJobSummaries": [self.public(j) for j in chunk]}
        if start + limit < len(items):
            body["nextToken"] = str(start + limit)
        return Response(200, body)

    def get_job(self, req: Request) -> Response:
        """One job."""
        job = self._find(req.params["id"])
        if job is None:
            return self.error(404, "The specified model invocation job was not found.")
        return Response(200, self.public(self.observe(job)))

    def stop_job(self, req: Request) -> Response:
        """Stop a job: Stopping now, Stopped soon; ConflictException once it has ended."""
        job = self._find(req.params["id"])
        if job is None:
            return self.error(404, "The specified model invocation job was not found.")
        self.observe(job)
        if job["status"] in _ENDED:
            return self.error(409, f"Cannot stop a job in status {job['status']}.",
                              "ConflictException")
        if job["status"] != "Stopping":
            self.move(job, "Stopping")
        return Response(200, {})


STANDIN = BedrockStandIn


def job_object(job_id: str, name: str, status: str, total: int, processed: int,
               errors: int, submitted: float, region: str) -> dict[str, Any]:
    """A model invocation job as the stand-in stores it (by ARN)."""
    return {"jobArn": f"arn:aws:bedrock:{region}:{ACCOUNT}:model-invocation-job/{job_id}",
            "jobName": name, "modelId": "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "clientRequestToken": stable_id(name), "status": status,
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/bedrock-batch",
            "submitTime": _iso(submitted), "lastModifiedTime": _iso(submitted + 60),
            **({"endTime": _iso(submitted + 900)} if status in _ENDED else {}),
            "inputDataConfig": {"s3InputDataConfig": {
                "s3InputFormat": "JSONL", "s3Uri": f"s3://batch-input/{name}/records.jsonl"}},
            "outputDataConfig": {"s3OutputDataConfig": {
                "s3Uri": f"s3://batch-output/{name}/"}},
            "timeoutDurationInHours": 24, "jobExpirationTime": _iso(submitted + 86400),
            "modelInvocationType": "InvokeModel",
            "totalRecordCount": total, "processedRecordCount": processed,
            "successRecordCount": processed - errors, "errorRecordCount": errors,
            "_since": time.time(), "_reads": 0}


def _write_credentials(config: Any) -> None:
    directory = sandbox_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bedrock-credentials"
    if path.is_file():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"[{PROFILE}]\naws_access_key_id = AKIASANDBOXBEDROCK00\n"
                 "aws_secret_access_key = sandbox-bedrock-not-a-secret\n")


def seed(config: Any) -> dict[str, Any]:
    """Jobs for every ``batches`` ref on a sandbox ``bedrock-batch`` backend."""
    _write_credentials(config)
    jobs: dict[str, Any] = {}
    base = time.time() - 3600
    for n, (integration, ref) in enumerate(batch_refs(config, TYPES)):
        backend = config.backends[ref["backend"]]
        region = str(backend.options.get("region") or "us-east-1")
        prefix = str(ref.get("name_prefix") or f"{integration}-")
        for i, (name, status, total, done, err) in enumerate((
                (f"{prefix}nightly-{n}", "InProgress", 500, 120, 3),
                (f"{prefix}weekly-{n}", "Completed", 200, 200, 4),
                (f"other-{integration}-nightly-{n}", "InProgress", 300, 50, 0))):
            job = job_object(stable_id(integration, ref["backend"], str(i)), name, status,
                             total, done, err, base + 100 * n + 10 * i, region)
            jobs[job["jobArn"]] = job
    return {"jobs": jobs}


def wanted(config: Any) -> bool:
    """True when a ``bedrock-batch`` backend points at this machine."""
    return bool(loopback_backends(config, TYPES))
