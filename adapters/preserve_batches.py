"""Evidence from the batch adapters: the integration's jobs and, where served, their files.

Per ``batches`` reference (read-only, with the batch backend's own key):

* ``batches``: every job the adapter's listing finds for the reference (the same filter
  ``batch.cancel`` uses: metadata, workspace, name prefix, labels), each as the provider
  shows it minus anything else: ids, status, request counts, input / output / error file ids
  or locations, created, deadlines (``expires_at``, ``jobExpirationTime``) and timestamps.
  ``files`` lists the provider files fetched below; ``capped`` says the listing stopped at
  its page cap.
* ``batch-output`` / ``batch-errors`` (OpenAI and Azure OpenAI): the job's
  ``output_file_id`` and ``error_file_id`` files, ``GET /files/{id}/content`` (openai-python
  ``files.content``; https://platform.openai.com/docs/api-reference/files/retrieve-contents),
  as ``<batch id>-output.jsonl`` / ``<batch id>-errors.jsonl``.
* ``batch-results`` (Anthropic): an ended batch's results, ``GET /v1/messages/batches/{id}/
  results`` (the documented path its ``results_url`` names; anthropic-sdk-python
  ``messages.batches.results``), as ``<batch id>-results.jsonl``. The configured base URL is
  used, never a host taken from an answer.
* Bedrock and Vertex AI: **locations only**. Their inputs and outputs live in the
  customer's S3 / GCS buckets (``inputDataConfig`` / ``outputDataConfig`` S3 URIs,
  ``inputConfig`` / ``outputInfo`` GCS or BigQuery locations), which the batch backend's
  credentials are not meant to read; the URIs are recorded for copying with the cloud's own
  tools.

Provider files are streamed through :class:`~adapters.preserve_common.RedactingStream`:
a key-shaped string a model echoed into its output is redacted before the sink sees it.
Files are fetched for at most :data:`MAX_FILES` jobs per reference (the rest are named in
``files_skipped``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.evidence import EvidenceSink
from adapters.http import Body
from adapters.preserve_common import (
    RedactingStream,
    pick,
    run_source,
    safe_name,
    write_json,
)

if TYPE_CHECKING:
    from adapters.anthropic_batch import AnthropicBatchAdapter
    from adapters.batch_common import BatchAdapter
    from adapters.openai_batch import OpenAIBatchAdapter

__all__ = ["FIELDS", "MAX_FILES", "preserve_batches"]

MAX_FILES = 100
"""Jobs whose files are fetched, at most, per reference."""

_OPENAI = ("id", "object", "endpoint", "model", "status", "errors", "input_file_id",
           "output_file_id", "error_file_id", "completion_window", "created_at",
           "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
           "expired_at", "cancelling_at", "cancelled_at", "request_counts", "metadata",
           "usage")
FIELDS: Mapping[str, tuple[str, ...]] = {
    "openai-batch": _OPENAI,
    "azure-openai-batch": _OPENAI,
    "anthropic-batch": ("id", "type", "processing_status", "request_counts", "created_at",
                        "expires_at", "ended_at", "archived_at", "cancel_initiated_at",
                        "results_url"),
    "bedrock-batch": ("jobArn", "jobName", "modelId", "status", "message", "submitTime",
                      "lastModifiedTime", "endTime", "jobExpirationTime",
                      "timeoutDurationInHours", "roleArn", "inputDataConfig",
                      "outputDataConfig", "vpcConfig", "totalRecordCount",
                      "processedRecordCount", "successRecordCount", "errorRecordCount"),
    "vertex-batch": ("name", "displayName", "model", "modelVersionId", "state", "inputConfig",
                     "outputConfig", "outputInfo", "completionStats", "createTime",
                     "startTime", "endTime", "updateTime", "labels", "error",
                     "partialFailures", "resourcesConsumed"),
}
"""The fields kept of each provider's job object."""

_LOCATIONS_ONLY = ("locations only: the job's input and output live in the customer's "
                   "buckets (URIs above); copy them with the cloud's own tools")

# (item name, source, fetch) of one provider file
File = tuple[str, str, Callable[[], Body]]


def _openai_files(adapter: OpenAIBatchAdapter, ref: Mapping[str, Any],
                  job: Mapping[str, Any]) -> list[File]:
    out: list[File] = []
    bid = str(job.get("id") or "")
    for field, suffix, source in (("output_file_id", "output", "batch-output"),
                                  ("error_file_id", "errors", "batch-errors")):
        fid = job.get(field)
        if not fid:
            continue

        def fetch(fid: str = str(fid)) -> Body:
            return adapter.api.stream("GET", f"/files/{quote(fid, safe='')}/content",
                                      f"{adapter.backend}:file {fid} of batch {bid}",
                                      headers=adapter._ref_headers(ref))

        out.append((safe_name(f"{bid}-{suffix}.jsonl"), source, fetch))
    return out


def _anthropic_files(adapter: AnthropicBatchAdapter, ref: Mapping[str, Any],
                     job: Mapping[str, Any]) -> list[File]:
    bid = str(job.get("id") or "")
    if job.get("processing_status") != "ended" or not job.get("results_url"):
        return []

    def fetch() -> Body:
        return adapter.api.stream("GET", f"/messages/batches/{quote(bid, safe='')}/results",
                                  f"{adapter.backend}:results of message batch {bid}",
                                  headers=adapter._headers(ref))

    return [(safe_name(f"{bid}-results.jsonl"), "batch-results", fetch)]


_FILES: Mapping[str, Callable[[Any, Mapping[str, Any], Mapping[str, Any]], list[File]]] = {
    "openai-batch": _openai_files,
    "azure-openai-batch": _openai_files,
    "anthropic-batch": _anthropic_files,
}


def _job_id(job: Mapping[str, Any]) -> str:
    return str(job.get("id") or job.get("jobArn") or job.get("name") or "")


def preserve_batches(adapter: BatchAdapter, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
    """The integration's jobs (``batches``), then each job's files where served."""
    adapter._check_ref(ref)  # a malformed reference raises before any source
    fields = FIELDS.get(adapter.name, ())
    files_of = _FILES.get(adapter.name)
    planned: list[tuple[str, File]] = []

    def jobs() -> dict[str, Any]:
        raw = adapter._raw_jobs(ref)
        files: list[dict[str, str]] = []
        skipped: list[str] = []
        for n, job in enumerate(raw):
            found = files_of(adapter, ref, job) if files_of else []
            if found and n >= MAX_FILES:
                skipped.append(_job_id(job))
                continue
            for f in found:
                planned.append((_job_id(job), f))
                files.append({"job": _job_id(job), "item": f[0], "source": f[1]})
        return {"provider": adapter.provider, "scope": adapter._scope(ref),
                "capped": bool(getattr(raw, "capped", False)), "count": len(raw),
                "jobs": [pick(job, fields) for job in raw],
                "files": files if files_of else _LOCATIONS_ONLY,
                "files_skipped": skipped}

    write_json(sink, "batches", "batches", jobs)
    for job_id, file in planned:
        run_source(sink, f"{file[1]} {job_id}", _copy(sink, file))


def _copy(sink: EvidenceSink, file: File) -> Callable[[], None]:
    """Stream one provider file into the sink (the request is checked before writing; the
    answer is released even when the sink does not read it)."""
    name, source, fetch = file

    def copy() -> None:
        body = fetch()
        try:
            sink.file(name, RedactingStream(body), source=source)
        finally:
            body.close()

    return copy
