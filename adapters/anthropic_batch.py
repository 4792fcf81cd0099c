"""Anthropic Message Batches adapter (httpx): ``batch.cancel``.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

Message Batches are **workspace-scoped** and carry no metadata, no name and no visible
custom ids in the list, so nothing inside a batch says which integration sent it. The sound
way to find an integration's batches is a **dedicated workspace per integration**: the
reference names that workspace, and every batch of the workspace that has not ended is the
integration's. The adapter sends ``anthropic-workspace-id: <workspace>`` so a key that can act
in several workspaces (a dedicated incident-response key) only sees that one; a workspace
key must belong to it. A shared workspace cannot be split safely: do not list one under two
integrations (``killswitch`` would cancel both integrations' batches).

The key is the integration's **workspace API key** or a dedicated incident-response key,
never the admin key (the Admin API cannot call the batches endpoints). Cancel therefore runs
before credential revocation.

Backend options::

    [backends.anthropic-batch-sandbox]
    type = "anthropic-batch"
    base_url = "http://127.0.0.1:8386"        # default https://api.anthropic.com
    key_env = "ANTHROPIC_API_KEY"              # env var NAME of the key (default)
    key_file = ".sandbox/anthropic-batch.key"  # fallback file (optional)
    request_timeout = 30
    wait = 60

Inventory reference::

    {backend = "anthropic-batch-sandbox", workspace = "wrkspc_codereview"}

``processing_status``: in_progress (running), canceling (cancelling), ended (ended; with
``cancel_initiated_at`` set it counts as cancelled, and ``request_counts.canceled`` says how
many requests were stopped). Recorded per job: ``results_url`` and the request counts
(``errored`` is the failed count).

Example runbook step::

    [[steps]]
    id = "cancel-batches"
    action = "batch.cancel"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from adapters.base import ActionSpec
from adapters.batch_common import BatchAdapter, JobList, batch_hints, batch_key
from adapters.common import path_option
from adapters.http import url_option
from adapters.llm_http import ProviderApi
from adapters.specs.providers import ANTHROPIC_BATCH, AnthropicBatchOptions
from console.errors import AdapterError

__all__ = ["AnthropicBatchAdapter"]

API_VERSION = "2023-06-01"


class AnthropicBatchAdapter(BatchAdapter):
    """Cancel the Message Batches of an integration's dedicated workspace; irreversible."""

    name: ClassVar[str] = "anthropic-batch"
    provider: ClassVar[str] = "Anthropic"
    PHASES: ClassVar[Mapping[str, str]] = {"in_progress": "running", "canceling": "cancelling",
                                           "ended": "ended"}
    Options: ClassVar[type[AnthropicBatchOptions]] = AnthropicBatchOptions
    OPTIONS: ClassVar[Mapping[str, str]] = AnthropicBatchOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = ANTHROPIC_BATCH.actions  # specs/providers.py

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        url = url_option(backend, self.options.get("base_url"),
                         default="https://api.anthropic.com")
        self.base_url = url.removesuffix("/v1")
        self.key_env = str(self.options.get("key_env") or "ANTHROPIC_API_KEY")
        self.key_file = path_option(self.options, "key_file")
        self.api = ProviderApi(self, self.provider, self.base_url + "/v1", timeout=self.timeout,
                               hints=batch_hints(self.key_env, "a still-valid workspace (or "
                                                 "incident-response) key"))

    def open(self) -> None:
        """Build the HTTP client (reads the key; no request is sent)."""
        if not self.api.opened:
            key = batch_key(self.backend, self.provider, self.key_env, self.key_file)
            self.api.open({"x-api-key": key, "anthropic-version": API_VERSION})

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    # -- hooks ----------------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        if not str(ref.get("workspace") or "").strip():
            raise AdapterError(
                "anthropic-batch reference needs `workspace`: the integration's dedicated "
                "workspace (Message Batches carry no metadata to tell integrations apart)",
                where=self.backend, hint='e.g. {backend = "...", workspace = "wrkspc_..."}')

    def _headers(self, ref: Mapping[str, Any]) -> dict[str, str]:
        return {"anthropic-workspace-id": str(ref["workspace"]).strip()}

    def _scope(self, ref: Mapping[str, Any]) -> str:
        return f"workspace {ref.get('workspace')}"

    def _normal(self, b: Mapping[str, Any]) -> dict[str, Any]:
        status = str(b.get("processing_status") or "")
        job = self.job(str(b.get("id") or ""), status, inputs={},
                       outputs={"results_url": b.get("results_url")},
                       counts=dict(b.get("request_counts") or {}),
                       failed=int((b.get("request_counts") or {}).get("errored") or 0))
        if status == "ended" and b.get("cancel_initiated_at"):
            job["phase"] = "cancelled"
        return job

    def _list(self, ref: Mapping[str, Any]) -> JobList:
        raw = self._raw_jobs(ref)
        return JobList([self._normal(b) for b in raw], capped=raw.capped, pages=raw.pages)

    def _raw_jobs(self, ref: Mapping[str, Any]) -> JobList:
        self._check_ref(ref)
        out = JobList(pages=self.LIST_PAGES)
        params: dict[str, Any] = {"limit": 100}
        target = f"{self.backend}:{self._scope(ref)}"
        for _ in range(self.LIST_PAGES):
            page = self.api.request("GET", "/messages/batches", target, params=params,
                                    headers=self._headers(ref)) or {}
            data = [b for b in page.get("data") or [] if isinstance(b, Mapping)]
            out += [dict(b) for b in data]
            last = page.get("last_id") or (data[-1].get("id") if data else None)
            if not page.get("has_more") or not last:
                break
            params = {"limit": 100, "after_id": last}
        else:
            out.capped = True
        return out

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        b = self.api.request("GET", f"/messages/batches/{quote(job_id, safe='')}",
                             f"{self.backend}:message batch {job_id}",
                             headers=self._headers(ref), missing_ok=True)
        return None if b is None else self._normal(b)

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        self.api.request("POST", f"/messages/batches/{quote(job_id, safe='')}/cancel",
                         f"{self.backend}:message batch {job_id}", headers=self._headers(ref))
