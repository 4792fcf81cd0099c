"""The files a batch job leaves behind, for the batch stand-ins (JSONL, one result a line).

**OpenAI / Azure OpenAI** (``api_openai_batches``)::

    GET /v1/files/{file_id}/content        the raw file (openai-python ``files.content``)
    GET /openai/v1/files/{file_id}/content the same, Azure OpenAI v1 path shape

serves the ``output_file_id`` and ``error_file_id`` of a batch as ``application/
octet-stream``. Output lines, as the Batch guide shows them (https://platform.openai.com/
docs/guides/batch, "Retrieve the results")::

    {"id": "batch_req_...", "custom_id": "request-1", "response": {"status_code": 200,
     "request_id": "...", "body": {<chat.completion>}}, "error": null}

error-file lines carry ``response.status_code`` 400 and an ``{"error": {...}}`` body. An
unknown file answers 404 (``No such File object``).

**Anthropic** (``api_anthropic_batches``)::

    GET /v1/messages/batches/{id}/results   results of an ended batch (JSONL)

one line per request, in the documented shape (https://platform.claude.com/docs/en/api/
retrieving-message-batch-results; anthropic-sdk-python ``MessageBatchIndividualResponse``)::

    {"custom_id": "...", "result": {"type": "succeeded", "message": {<message>}}}
    {"custom_id": "...", "result": {"type": "errored", "error": {"type": "error",
                                    "error": {"type": "invalid_request_error", ...}}}}
    {"custom_id": "...", "result": {"type": "canceled"}}

A batch that has not ended answers 404 ``not_found_error`` [unconfirmed: the docs say only
that ``results_url`` is set once processing ends].

Contents are synthesised from the job's request counts (at most :data:`MAX_LINES` lines per
outcome), unless the stand-in's ``state["files"]`` holds a text for the file id (OpenAI) or
the batch id (Anthropic): tests plant contents there.
"""

from __future__ import annotations

import json
from typing import Any

from console.sandbox.batchjobs import stable_id

__all__ = ["MAX_LINES", "anthropic_results", "openai_file"]

MAX_LINES = 20


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def openai_file(state: dict[str, Any], file_id: str) -> str | None:
    """The content of an OpenAI batch file, or None when no batch names ``file_id``."""
    planted = (state.get("files") or {}).get(file_id)
    if planted is not None:
        return str(planted)
    for b in (state.get("jobs") or {}).values():
        counts = b.get("request_counts") or {}
        if b.get("output_file_id") == file_id:
            return _lines([_openai_ok(b, i) for i in
                           range(min(int(counts.get("completed") or 0), MAX_LINES))])
        if b.get("error_file_id") == file_id:
            return _lines([_openai_error(b, i) for i in
                           range(min(int(counts.get("failed") or 0), MAX_LINES))])
    return None


def _openai_ok(b: dict[str, Any], i: int) -> dict[str, Any]:
    rid = stable_id(b["id"], str(i))
    return {"id": f"batch_req_{rid}", "custom_id": f"request-{i + 1}",
            "response": {"status_code": 200, "request_id": f"req_{rid}", "body": {
                "id": f"chatcmpl-{rid}", "object": "chat.completion",
                "created": b["created_at"], "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": f"Ticket {i + 1}: summary drafted."},
                    "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 412, "completion_tokens": 38,
                          "total_tokens": 450}}},
            "error": None}


def _openai_error(b: dict[str, Any], i: int) -> dict[str, Any]:
    rid = stable_id(b["id"], "err", str(i))
    total = int((b.get("request_counts") or {}).get("total") or 0)
    return {"id": f"batch_req_{rid}", "custom_id": f"request-{total - i}",
            "response": {"status_code": 400, "request_id": f"req_{rid}", "body": {
                "error": {"message": "This model's maximum context length is 128000 tokens.",
                          "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}}},
            "error": None}


def anthropic_results(state: dict[str, Any], batch: dict[str, Any]) -> str:
    """The results file of an ended Message Batch."""
    planted = (state.get("files") or {}).get(batch["id"])
    if planted is not None:
        return str(planted)
    counts = batch.get("request_counts") or {}
    rows: list[dict[str, Any]] = []
    for outcome in ("succeeded", "errored", "canceled", "expired"):
        for i in range(min(int(counts.get(outcome) or 0), MAX_LINES)):
            rid = stable_id(batch["id"], outcome, str(i))
            result: dict[str, Any] = {"type": outcome}
            if outcome == "succeeded":
                result["message"] = {
                    "id": f"msg_{rid}", "type": "message", "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [{"type": "text", "text": f"Review {i + 1}: no issues found."}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 1830, "output_tokens": 64}}
            elif outcome == "errored":
                result["error"] = {"type": "error", "error": {
                    "type": "invalid_request_error",
                    "message": "prompt is too long: 210511 tokens > 200000 maximum"}}
            rows.append({"custom_id": f"{outcome}-{i + 1}", "result": result})
    return _lines(rows)
