"""Google Vertex AI batch prediction adapter (REST over httpx): ``batch.cancel``.

Jobs are found by label: ``GET /v1/projects/{p}/locations/{l}/batchPredictionJobs`` with
``filter=labels.<k>="<v>" AND ...`` (every pair of the reference), checked again client-side.
``POST .../batchPredictionJobs/{id}:cancel`` is asynchronous and best-effort: the job moves
``JOB_STATE_CANCELLING`` -> ``JOB_STATE_CANCELLED``, outputs already written remain.

The console authenticates with Google Application Default Credentials (scope
``cloud-platform``): the integration project's service account or a dedicated incident-
response account with ``aiplatform.batchPredictionJobs.cancel``. ``anonymous = true`` sends no
token (the sandbox only).

Backend options::

    [backends.vertex-sandbox]
    type = "vertex-batch"
    base_url = "http://127.0.0.1:8388"   # default https://{location}-aiplatform.googleapis.com
    anonymous = true                     # sandbox: no Google credentials
    request_timeout = 30
    wait = 60

Inventory reference::

    {backend = "vertex-sandbox", project = "search-prod", location = "europe-west4",
     labels = {integration = "search-embeddings"}}

``state``: QUEUED / PENDING / RUNNING / PAUSED / UPDATING are running; CANCELLING; CANCELLED;
SUCCEEDED / FAILED / EXPIRED / PARTIALLY_SUCCEEDED have ended. Recorded per job: the job
name, ``inputConfig`` (GCS / BigQuery source), ``outputInfo`` and ``completionStats``
(``failedCount`` is the failed count).

Example runbook step::

    [[steps]]
    id = "cancel-batches"
    action = "batch.cancel"
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import ActionSpec
from adapters.batch_common import COMMON_OPTIONS, MAX_PAGES, BatchAdapter, HttpApi, action_spec
from console.errors import AdapterError, AuthError

__all__ = ["VertexBatchAdapter"]

DEFAULT_URL = "https://{location}-aiplatform.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_RUNNING = ("QUEUED", "PENDING", "RUNNING", "PAUSED", "UPDATING", "UNSPECIFIED")
_ENDED = ("SUCCEEDED", "FAILED", "EXPIRED", "PARTIALLY_SUCCEEDED")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class VertexBatchAdapter(BatchAdapter):
    """Cancel an integration's Vertex AI batch prediction jobs (found by labels)."""

    name: ClassVar[str] = "vertex-batch"
    provider: ClassVar[str] = "Vertex AI"
    PHASES: ClassVar[Mapping[str, str]] = {
        **{f"JOB_STATE_{s}": "running" for s in _RUNNING},
        "JOB_STATE_CANCELLING": "cancelling", "JOB_STATE_CANCELLED": "cancelled",
        **{f"JOB_STATE_{s}": "ended" for s in _ENDED}}
    OPTIONS: ClassVar[Mapping[str, str]] = {
        "base_url": f"API host; may contain {{location}} (default {DEFAULT_URL})",
        "anonymous": "true: send no credentials (sandbox only); default: Google ADC",
        **COMMON_OPTIONS,
    }
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = action_spec(
        ("aiplatform.batchPredictionJobs.list", "aiplatform.batchPredictionJobs.get",
         "aiplatform.batchPredictionJobs.cancel"),
        {"type": "object", "properties": {
            "backend": {"type": "string"}, "label": {"type": "string"},
            "project": {"type": "string"}, "location": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
         "required": ["project", "location", "labels"]})

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        url = str(self.options.get("base_url") or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise AdapterError(f"backend {backend!r}: base_url must be an http(s) URL, "
                               f"got {url!r}", where=backend)
        self.url_template = url
        anon = self.options.get("anonymous", False)
        self.anonymous = anon is True or str(anon).lower() in ("true", "1", "yes")
        self._apis: dict[str, HttpApi] = {}
        self._creds: Any = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Load Google credentials unless anonymous (no request is sent)."""
        if self.anonymous or self._creds is not None:
            return
        try:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._creds, _ = google.auth.default(scopes=[SCOPE])
            except DefaultCredentialsError as exc:
                raise AuthError(f"no Google credentials for backend {self.backend!r}: {exc}",
                                where=self.backend, hint="run `gcloud auth application-"
                                "default login` or set GOOGLE_APPLICATION_CREDENTIALS") from exc
        except ImportError as exc:  # pragma: no cover - google-auth ships with the console
            raise AuthError("google-auth is not installed", where=self.backend) from exc

    def close(self) -> None:
        """Close the HTTP clients."""
        for api in self._apis.values():
            api.close()
        self._apis.clear()

    def _token(self) -> dict[str, str]:
        if self.anonymous:
            return {}
        self.open()
        with self._lock:
            if not self._creds.valid:
                import google.auth.transport.requests
                try:
                    self._creds.refresh(google.auth.transport.requests.Request())
                except Exception as exc:  # noqa: BLE001 - google-auth raises many kinds
                    raise AuthError(f"cannot refresh Google credentials for backend "
                                    f"{self.backend!r}: {type(exc).__name__}",
                                    where=self.backend) from exc
            return {"Authorization": f"Bearer {self._creds.token}"}

    def _api(self, ref: Mapping[str, Any]) -> HttpApi:
        location = str(ref["location"])
        if location not in self._apis:
            self._apis[location] = HttpApi(
                self.provider, self.backend, self.url_template.replace("{location}", location)
                + "/v1", self.timeout, {},
                auth_hint="the console's Google credentials were rejected: refresh ADC")
        return self._apis[location]

    # -- hooks ----------------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        labels = ref.get("labels")
        ok = isinstance(labels, Mapping) and bool(labels) and all(
            _NAME.match(str(k)) and isinstance(v, str) for k, v in labels.items())
        if not ok or not ref.get("project") or not ref.get("location"):
            raise AdapterError("vertex-batch reference needs `project`, `location` and "
                               "`labels` (lower-case label keys, string values)",
                               where=self.backend,
                               hint='e.g. {backend = "...", project = "p", location = '
                               '"europe-west4", labels = {integration = "search-embeddings"}}')

    def _parent(self, ref: Mapping[str, Any]) -> str:
        return f"projects/{ref['project']}/locations/{ref['location']}"

    def _scope(self, ref: Mapping[str, Any]) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(dict(ref.get("labels") or {}).items()))
        return f"{self._parent(ref)} jobs labelled {labels}"

    def _mine(self, ref: Mapping[str, Any], j: Mapping[str, Any]) -> bool:
        have = j.get("labels") or {}
        return all(have.get(k) == v for k, v in dict(ref.get("labels") or {}).items())

    def _normal(self, j: Mapping[str, Any]) -> dict[str, Any]:
        stats = dict(j.get("completionStats") or {})
        inp = dict(j.get("inputConfig") or {})
        out = dict(j.get("outputInfo") or {})
        job = self.job(str(j.get("name") or ""), str(j.get("state") or ""),
                       name=str(j.get("displayName") or ""),
                       inputs={"inputConfig": inp},
                       outputs={"outputInfo": out,
                                "outputConfig": dict(j.get("outputConfig") or {})},
                       counts=stats, failed=int(stats.get("failedCount") or 0))
        return job

    def _target(self, job: Mapping[str, Any]) -> str:
        short = str(job["id"]).rsplit("/", 1)[-1]
        label = f" ({job['name']})" if job.get("name") else ""
        return f"{self.backend}:{self.provider} batch job {short}{label}"

    def _list(self, ref: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._check_ref(ref)
        flt = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(dict(ref["labels"]).items()))
        params: dict[str, Any] = {"filter": flt, "pageSize": 100}
        out: list[dict[str, Any]] = []
        target = f"{self.backend}:{self._scope(ref)}"
        for _ in range(MAX_PAGES):
            page = self._api(ref).request(
                "GET", f"/{self._parent(ref)}/batchPredictionJobs", target, params=params,
                headers=self._token()) or {}
            out += [self._normal(j) for j in page.get("batchPredictionJobs") or []
                    if isinstance(j, Mapping) and self._mine(ref, j)]
            token = page.get("nextPageToken")
            if not token:
                break
            params = {**params, "pageToken": token}
        return out

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        j = self._api(ref).request("GET", f"/{job_id}", f"{self.backend}:{job_id}",
                                   headers=self._token(), missing_ok=True)
        if j is None:
            return None
        if not self._mine(ref, j):
            raise AdapterError(f"job {job_id} no longer carries the labels "
                               f"{dict(ref.get('labels') or {})}; left alone",
                               where=self.backend)
        return self._normal(j)

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        if not job_id.startswith(self._parent(ref) + "/batchPredictionJobs/"):
            raise AdapterError(f"job {job_id} is outside {self._parent(ref)}; left alone",
                               where=self.backend)
        self._api(ref).request("POST", f"/{job_id}:cancel", f"{self.backend}:{job_id}",
                               body={}, headers=self._token())
