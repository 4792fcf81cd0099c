"""OpenAI and Azure OpenAI Batch API adapters (httpx): ``batch.cancel``.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

The Batch API authenticates with an ordinary key: the integration's **project key** or,
better, a dedicated **incident-response key** of the same project (not the admin key). That
is why ``cancel-batches`` runs before credential revocation: once the project key is
deleted the console can no longer cancel the project's batches.

The list call has no server-side filter: the adapter pages through ``GET /batches`` and keeps
the batches whose ``metadata`` holds every pair the reference names (tag batches with
``metadata={"integration": "<id>"}`` when they are created). A reference without metadata is
refused: it would cancel every batch of the project.

Backend options::

    [backends.openai-batch-sandbox]
    type = "openai-batch"
    base_url = "http://127.0.0.1:8385/v1"   # default https://api.openai.com/v1
    key_env = "OPENAI_API_KEY"               # env var NAME of the key (default)
    key_file = ".sandbox/openai-batch.key"   # fallback file (optional)
    organization = "org_..."                 # OpenAI-Organization header (optional)
    request_timeout = 30
    wait = 60                                # seconds verify waits for cancelled

    [backends.azure-openai-batch-sandbox]
    type = "azure-openai-batch"
    endpoint = "http://127.0.0.1:8385"       # https://<resource>.openai.azure.com
    key_env = "AZURE_OPENAI_API_KEY"         # sent as the `api-key` header
    key_file = ".sandbox/openai-batch.key"

Inventory references::

    {backend = "openai-batch-sandbox", project = "proj_support",
     metadata = {integration = "support-bot"}}
    {backend = "azure-openai-batch-sandbox", metadata = {integration = "contract-drafter"}}

``status``: validating / in_progress / finalizing are running; cancelling; cancelled;
completed / failed / expired have ended. Recorded per job: ``input_file_id``,
``output_file_id``, ``error_file_id``, ``request_counts`` and the failed count.

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
from adapters.specs.providers import (
    AZURE_OPENAI_BATCH,
    OPENAI_BATCH,
    AzureOpenAIBatchOptions,
    BatchOptions,
    OpenAIBatchOptions,
)
from console.errors import AdapterError

__all__ = ["AzureOpenAIBatchAdapter", "OpenAIBatchAdapter"]

_PHASES = {"validating": "running", "in_progress": "running", "finalizing": "running",
           "cancelling": "cancelling", "cancelled": "cancelled", "completed": "ended",
           "failed": "ended", "expired": "ended"}


class OpenAIBatchAdapter(BatchAdapter):
    """Cancel an integration's OpenAI batches (found by batch ``metadata``); irreversible."""

    name: ClassVar[str] = "openai-batch"
    provider: ClassVar[str] = "OpenAI"
    DEFAULT_URL: ClassVar[str] = "https://api.openai.com/v1"
    DEFAULT_KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"
    PHASES: ClassVar[Mapping[str, str]] = _PHASES
    Options: ClassVar[type[BatchOptions]] = OpenAIBatchOptions
    OPTIONS: ClassVar[Mapping[str, str]] = OpenAIBatchOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = OPENAI_BATCH.actions  # specs/providers.py

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.base_url = self._url()
        self.key_env = str(self.options.get("key_env") or self.DEFAULT_KEY_ENV)
        self.key_file = path_option(self.options, "key_file")
        self.organization = str(self.options.get("organization") or "")
        self.api = ProviderApi(self, self.provider, self.base_url, timeout=self.timeout,
                               hints=batch_hints(self.key_env, "the project's (or an "
                                                 "incident-response) key, still valid"))

    def _url(self) -> str:
        return url_option(self.backend, self.options.get("base_url"), default=self.DEFAULT_URL)

    def _headers(self, key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        return headers

    def open(self) -> None:
        """Build the HTTP client (reads the key; no request is sent)."""
        if not self.api.opened:
            key = batch_key(self.backend, self.provider, self.key_env, self.key_file)
            self.api.open(self._headers(key))

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    # -- hooks ----------------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        meta = ref.get("metadata")
        if not isinstance(meta, Mapping) or not meta or \
                not all(isinstance(v, str | int | float | bool) for v in meta.values()):
            raise AdapterError(
                f"{self.name} reference needs `metadata`, a table of the batch metadata "
                "that marks the integration's batches (without it every batch of the "
                "project would be cancelled)", where=self.backend,
                hint='e.g. {backend = "...", metadata = {integration = "support-bot"}}')

    def _ref_headers(self, ref: Mapping[str, Any]) -> dict[str, str]:
        project = str(ref.get("project") or "")
        return {"OpenAI-Project": project} if project else {}

    def _scope(self, ref: Mapping[str, Any]) -> str:
        meta = ",".join(f"{k}={v}" for k, v in sorted(dict(ref.get("metadata") or {}).items()))
        project = f"project {ref['project']} " if ref.get("project") else ""
        return f"{project}batches with metadata {meta}"

    def _normal(self, b: Mapping[str, Any]) -> dict[str, Any]:
        counts = dict(b.get("request_counts") or {})
        return self.job(
            str(b.get("id") or ""), str(b.get("status") or ""),
            inputs={"input_file_id": b.get("input_file_id"), "endpoint": b.get("endpoint")},
            outputs={"output_file_id": b.get("output_file_id"),
                     "error_file_id": b.get("error_file_id")},
            counts=counts, failed=int(counts.get("failed") or 0))

    def _mine(self, ref: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        have = b.get("metadata") or {}
        want = dict(ref.get("metadata") or {})
        return isinstance(have, Mapping) and all(str(have.get(k)) == str(v)
                                                 for k, v in want.items())

    def _list(self, ref: Mapping[str, Any]) -> JobList:
        raw = self._raw_jobs(ref)
        return JobList([self._normal(b) for b in raw], capped=raw.capped, pages=raw.pages)

    def _raw_jobs(self, ref: Mapping[str, Any]) -> JobList:
        out = JobList(pages=self.LIST_PAGES)
        params: dict[str, Any] = {"limit": 100}
        target = f"{self.backend}:{self._scope(ref)}"
        for _ in range(self.LIST_PAGES):
            page = self.api.request("GET", "/batches", target, params=params,
                                    headers=self._ref_headers(ref)) or {}
            data = [b for b in page.get("data") or [] if isinstance(b, Mapping)]
            out += [dict(b) for b in data if self._mine(ref, b)]
            last = page.get("last_id") or (data[-1].get("id") if data else None)
            if not page.get("has_more") or not last:
                break
            params = {"limit": 100, "after": last}
        else:
            out.capped = True
        return out

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        b = self.api.request("GET", f"/batches/{quote(job_id, safe='')}",
                             f"{self.backend}:batch {job_id}",
                             headers=self._ref_headers(ref), missing_ok=True)
        if b is None:
            return None
        if not self._mine(ref, b):  # never follow an id to another integration's batch
            raise AdapterError(f"batch {job_id} no longer carries the metadata "
                               f"{dict(ref.get('metadata') or {})}; left alone",
                               where=self.backend)
        return self._normal(b)

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        self.api.request("POST", f"/batches/{quote(job_id, safe='')}/cancel",
                         f"{self.backend}:batch {job_id}", headers=self._ref_headers(ref))


class AzureOpenAIBatchAdapter(OpenAIBatchAdapter):
    """Cancel an integration's Azure OpenAI batches (v1 API, ``api-key`` header); irreversible.

    The key is the Azure OpenAI resource key (or a dedicated incident-response resource's);
    batches are found by ``metadata`` like OpenAI's.
    """

    name: ClassVar[str] = "azure-openai-batch"
    provider: ClassVar[str] = "Azure OpenAI"
    DEFAULT_KEY_ENV: ClassVar[str] = "AZURE_OPENAI_API_KEY"
    Options: ClassVar[type[BatchOptions]] = AzureOpenAIBatchOptions
    OPTIONS: ClassVar[Mapping[str, str]] = AzureOpenAIBatchOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = AZURE_OPENAI_BATCH.actions  # specs/providers.py

    def _url(self) -> str:
        base = str(self.options.get("base_url") or "").rstrip("/")
        endpoint = str(self.options.get("endpoint") or self.options.get("url") or "")
        url = base or (endpoint.rstrip("/") + "/openai/v1" if endpoint else "")
        if not url:
            raise AdapterError(f"backend {self.backend!r}: set option endpoint "
                               "(https://<resource>.openai.azure.com)", where=self.backend)
        return url_option(self.backend, url, option="endpoint")

    def _headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}

    def _ref_headers(self, ref: Mapping[str, Any]) -> dict[str, str]:
        return {}

    def _scope(self, ref: Mapping[str, Any]) -> str:
        meta = ",".join(f"{k}={v}" for k, v in sorted(dict(ref.get("metadata") or {}).items()))
        return f"batches with metadata {meta}"
