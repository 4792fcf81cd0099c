"""AWS Bedrock batch inference adapter (boto3 ``bedrock``): ``batch.cancel``.

Jobs are found by name: ``ListModelInvocationJobs`` with ``nameContains=<name_prefix>``,
then kept only when ``jobName`` starts with the prefix (the list has no tag filter; name
batch jobs ``<integration>-...`` when they are submitted). ``StopModelInvocationJob`` stops a
job (``Stopping`` -> ``Stopped``); only tokens already processed are billed. A
``ConflictException`` on a job that is already stopping or ended counts as done.

The console's AWS credentials (the integration's account role or a dedicated incident-
response role) come from the standard chain or the env var NAMES of the backend, as for
every ``aws-*`` backend (see :mod:`adapters.aws_common`).

Backend options::

    [backends.bedrock-sandbox]
    type = "bedrock-batch"
    endpoint_url = "http://127.0.0.1:8387"     # omit for the real AWS endpoint
    region = "us-east-1"
    credentials_file = ".sandbox/bedrock-credentials"
    profile = "killswitch-sandbox"
    wait = 60                                  # seconds verify waits for Stopped

Inventory reference::

    {backend = "bedrock-sandbox", name_prefix = "claims-summariser-"}

``status``: Submitted / Validating / Scheduled / InProgress are running; Stopping; Stopped;
Completed / PartiallyCompleted / Failed / Expired have ended. Recorded per job: the job ARN,
``inputDataConfig`` / ``outputDataConfig`` S3 URIs and the record counts
(``errorRecordCount`` is the failed count).

Example runbook step::

    [[steps]]
    id = "cancel-batches"
    action = "batch.cancel"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.aws_common import AwsClients
from adapters.base import ActionSpec
from adapters.batch_common import BatchAdapter, JobList
from adapters.specs.aws import BEDROCK_BATCH, BedrockBatchOptions
from console.errors import AdapterError, NotFound

__all__ = ["BedrockBatchAdapter"]

SERVICE = "Bedrock"


class BedrockBatchAdapter(BatchAdapter):
    """Stop an integration's Bedrock batch inference jobs (found by job name prefix)."""

    name: ClassVar[str] = "bedrock-batch"
    provider: ClassVar[str] = "Bedrock"
    PHASES: ClassVar[Mapping[str, str]] = {
        "Submitted": "running", "Validating": "running", "Scheduled": "running",
        "InProgress": "running", "Stopping": "cancelling", "Stopped": "cancelled",
        "Completed": "ended", "PartiallyCompleted": "ended", "Failed": "ended",
        "Expired": "ended"}
    Options: ClassVar[type[BedrockBatchOptions]] = BedrockBatchOptions
    OPTIONS: ClassVar[Mapping[str, str]] = BedrockBatchOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = BEDROCK_BATCH.actions  # adapters/specs/aws.py

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        opts = dict(options)
        if "request_timeout" in opts and "timeout" not in opts:
            opts["timeout"] = opts["request_timeout"]
        super().__init__(backend, opts)
        self.aws = AwsClients(backend, opts)
        self.aws.run_id_source = lambda: self.run_id

    def open(self) -> None:
        """Build the boto3 client (no request is sent)."""
        self.aws.client("bedrock")

    def close(self) -> None:
        """Close the boto3 client."""
        self.aws.close()

    @property
    def client(self) -> Any:
        """The ``bedrock`` client."""
        return self.aws.client("bedrock")

    # -- hooks ----------------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        prefix = str(ref.get("name_prefix") or "")
        if len(prefix.strip()) < 3:
            raise AdapterError("bedrock-batch reference needs `name_prefix` (at least 3 "
                               "characters): the jobName prefix of the integration's jobs",
                               where=self.backend,
                               hint='e.g. {backend = "...", name_prefix = "claims-summariser-"}')

    def _scope(self, ref: Mapping[str, Any]) -> str:
        return f"jobs named {ref.get('name_prefix')}*"

    def _normal(self, j: Mapping[str, Any]) -> dict[str, Any]:
        s3_in = ((j.get("inputDataConfig") or {}).get("s3InputDataConfig") or {})
        s3_out = ((j.get("outputDataConfig") or {}).get("s3OutputDataConfig") or {})
        counts = {k: j.get(f"{k}RecordCount") for k in ("total", "processed", "success", "error")
                  if j.get(f"{k}RecordCount") is not None}
        job = self.job(str(j.get("jobArn") or ""), str(j.get("status") or ""),
                       name=str(j.get("jobName") or ""),
                       inputs={"s3Uri": s3_in.get("s3Uri"), "format": s3_in.get("s3InputFormat")},
                       outputs={"s3Uri": s3_out.get("s3Uri")},
                       counts=counts, failed=int(j.get("errorRecordCount") or 0))
        job["model"] = str(j.get("modelId") or "")
        return job

    def _list(self, ref: Mapping[str, Any]) -> JobList:
        raw = self._raw_jobs(ref)
        return JobList([self._normal(j) for j in raw], capped=raw.capped, pages=raw.pages)

    def _raw_jobs(self, ref: Mapping[str, Any]) -> JobList:
        self._check_ref(ref)
        prefix = str(ref["name_prefix"])
        out = JobList(pages=self.LIST_PAGES)
        kw: dict[str, Any] = {"nameContains": prefix, "maxResults": 100}
        with self.aws.errors(f"{self.backend}:{self._scope(ref)}", SERVICE):
            for _ in range(self.LIST_PAGES):
                page = self.client.list_model_invocation_jobs(**kw)
                out += [dict(j) for j in page.get("invocationJobSummaries") or []
                        if str(j.get("jobName") or "").startswith(prefix)]
                token = page.get("nextToken")
                if not token:
                    break
                kw["nextToken"] = token
            else:
                out.capped = True
        return out

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        try:
            with self.aws.errors(f"{self.backend}:job {job_id}", SERVICE):
                j = self.client.get_model_invocation_job(jobIdentifier=job_id)
        except NotFound:
            return None
        if not str(j.get("jobName") or "").startswith(str(ref.get("name_prefix") or "")):
            raise AdapterError(f"job {job_id} is not named {ref.get('name_prefix')}*; left "
                               "alone", where=self.backend)
        return self._normal(j)

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        with self.aws.errors(f"{self.backend}:job {job_id}", SERVICE):
            self.client.stop_model_invocation_job(jobIdentifier=job_id)
