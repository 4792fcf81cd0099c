"""Google Vertex AI batch prediction adapter (REST over httpx): ``batch.cancel``.

Jobs are found by label: ``GET /v1/projects/{p}/locations/{l}/batchPredictionJobs`` with
``filter=labels.<k>="<v>" AND ...`` (every pair of the reference), checked again client-side.
``POST .../batchPredictionJobs/{id}:cancel`` is asynchronous and best-effort: the job moves
``JOB_STATE_CANCELLING`` -> ``JOB_STATE_CANCELLED``, outputs already written remain.

**Project numbers.** A request made with the project ID is answered with resource names
that carry the project NUMBER (``projects/123456789012/locations/...``; Google's REST sample
for batch predictions shows the request with PROJECT_ID and the response with
PROJECT_NUMBER). A job is therefore matched by location and job id, and every get / cancel
is sent under the reference's own ``projects/{project}/locations/{location}``: a job of
another project or location is never addressed.

**Hosts by location** (default; ``base_url`` overrides): a region ``L`` is served by
``https://L-aiplatform.googleapis.com``, ``global`` by ``https://aiplatform.googleapis.com``
and the multi-regions ``us`` / ``eu`` by ``https://aiplatform.{us|eu}.rep.googleapis.com``
(https://cloud.google.com/vertex-ai/docs/general/locations and the "Multi-region endpoints"
table of https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations).

Every request carries ``User-Agent: killswitch/<version> run/<run id>``, so Cloud Audit Logs
(``requestMetadata.callerSuppliedUserAgent``) show which run acted.

The console authenticates with Google Application Default Credentials (scope
``cloud-platform``): the integration project's service account or a dedicated incident-
response account with ``aiplatform.batchPredictionJobs.cancel``. ``anonymous = true`` sends no
token (the sandbox only).

Backend options::

    [backends.vertex-sandbox]
    type = "vertex-batch"
    base_url = "http://127.0.0.1:8388"   # default: the location's own host (see above)
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
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import ActionSpec, Change, PlanContext
from adapters.batch_common import BatchAdapter, JobList
from adapters.gcp_keys import GoogleApi
from adapters.http import url_option
from adapters.specs.gcp import VERTEX_BATCH, VertexBatchOptions
from console.errors import AdapterError

__all__ = ["VertexBatchAdapter", "default_url"]

DEFAULT_URL = "https://{location}-aiplatform.googleapis.com"
"""The host of a region; ``global`` and the multi-regions differ (:func:`default_url`)."""
MULTI_REGIONS = ("us", "eu")
_RUNNING = ("QUEUED", "PENDING", "RUNNING", "PAUSED", "UPDATING", "UNSPECIFIED")
_ENDED = ("SUCCEEDED", "FAILED", "EXPIRED", "PARTIALLY_SUCCEEDED")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]*$")
_JOB = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"
                  r"batchPredictionJobs/(?P<id>[^/:]+)$")


def default_url(location: str) -> str:
    """The Vertex AI host that serves ``location``.

    Args:
        location: A region (``europe-west4``), ``global``, or a multi-region (``us``, ``eu``).

    Returns:
        ``https://aiplatform.googleapis.com`` for ``global``,
        ``https://aiplatform.{location}.rep.googleapis.com`` for ``us`` / ``eu``, else
        ``https://{location}-aiplatform.googleapis.com``.
    """
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return DEFAULT_URL.replace("{location}", location)


class VertexBatchAdapter(BatchAdapter):
    """Cancel an integration's Vertex AI batch prediction jobs (found by labels)."""

    name: ClassVar[str] = "vertex-batch"
    provider: ClassVar[str] = "Vertex AI"
    PHASES: ClassVar[Mapping[str, str]] = {
        **{f"JOB_STATE_{s}": "running" for s in _RUNNING},
        "JOB_STATE_CANCELLING": "cancelling", "JOB_STATE_CANCELLED": "cancelled",
        **{f"JOB_STATE_{s}": "ended" for s in _ENDED}}
    Options: ClassVar[type[VertexBatchOptions]] = VertexBatchOptions
    OPTIONS: ClassVar[Mapping[str, str]] = VertexBatchOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = VERTEX_BATCH.actions  # adapters/specs/gcp.py

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        base = self.options.get("base_url")
        self.url_template = url_option(backend, base) if base else ""
        """``base_url`` as configured ("" = the location's own host)."""
        anon = self.options.get("anonymous", False)
        self.anonymous = anon is True or str(anon).lower() in ("true", "1", "yes")
        self.api = GoogleApi(self, self.provider, timeout=self.timeout, anonymous=self.anonymous)
        """One client for every location: each request names its location's host."""

    def open(self) -> None:
        """Load Google credentials unless anonymous and build the client (no request)."""
        self.api.open()

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    def base_url(self, location: str) -> str:
        """The API root serving ``location``: ``base_url`` if set, else its own host."""
        if self.url_template:
            return self.url_template.replace("{location}", location)
        return default_url(location)

    def _url(self, ref: Mapping[str, Any], path: str) -> str:
        """The absolute URL of ``path`` (under ``/v1``) on the host of the ref's location."""
        return f"{self.base_url(str(ref['location']))}/v1/{path}"

    # -- hooks ----------------------------------------------------------------------------
    def _check_ref(self, ref: Mapping[str, Any]) -> None:
        labels = ref.get("labels")
        ok = isinstance(labels, Mapping) and bool(labels) and all(
            _NAME.match(str(k)) and isinstance(v, str) for k, v in labels.items())
        project, location = str(ref.get("project") or ""), str(ref.get("location") or "")
        if not ok or not project or "/" in project or not _LOCATION.match(location):
            raise AdapterError("vertex-batch reference needs `project`, `location` and "
                               "`labels` (lower-case label keys, string values)",
                               where=self.backend,
                               hint='e.g. {backend = "...", project = "p", location = '
                               '"europe-west4", labels = {integration = "search-embeddings"}}')

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """List the integration's jobs (see :meth:`BatchAdapter.plan`); quotes the run id."""
        self.run_id = self.run_id or ctx.run_id
        return super().plan(action, ref, ctx)

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

    def _list(self, ref: Mapping[str, Any]) -> JobList:
        raw = self._raw_jobs(ref)
        return JobList([self._normal(j) for j in raw], capped=raw.capped, pages=raw.pages)

    def _raw_jobs(self, ref: Mapping[str, Any]) -> JobList:
        self._check_ref(ref)
        flt = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(dict(ref["labels"]).items()))
        params: dict[str, Any] = {"filter": flt, "pageSize": 100}
        out = JobList(pages=self.LIST_PAGES)
        target = f"{self.backend}:{self._scope(ref)}"
        for _ in range(self.LIST_PAGES):
            page = self.api.request(
                "GET", self._url(ref, f"{self._parent(ref)}/batchPredictionJobs"), target,
                params=params) or {}
            out += [dict(j) for j in page.get("batchPredictionJobs") or []
                    if isinstance(j, Mapping) and self._mine(ref, j)]
            token = page.get("nextPageToken")
            if not token:
                break
            params = {**params, "pageToken": token}
        else:
            out.capped = True  # stopped at the cap with pages left: the plan says so
        return out

    def _job_path(self, ref: Mapping[str, Any], job_id: str) -> str:
        """The job's name under the reference's own project and location.

        Google answers with the project NUMBER where the reference names the project ID, so
        the job is matched by location and job id: a name in another location, or under a
        project that is neither the reference's nor a project number, is refused. The path
        returned always uses the reference's project, so a job of another project is never
        addressed (Google resolves the ID and the number to the same project).

        Raises:
            AdapterError: The job is outside the reference's location (left alone).
        """
        m = _JOB.match(job_id)
        if m is None or m["location"] != str(ref["location"]) or \
                not (m["project"] == str(ref["project"]) or m["project"].isdigit()):
            raise AdapterError(f"job {job_id} is outside {self._parent(ref)}; left alone",
                               where=self.backend)
        return f"{self._parent(ref)}/batchPredictionJobs/{m['id']}"

    def _get(self, ref: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        j = self.api.request("GET", self._url(ref, self._job_path(ref, job_id)),
                             f"{self.backend}:{job_id}", missing_ok=True)
        if j is None:
            return None
        if not self._mine(ref, j):
            raise AdapterError(f"job {job_id} no longer carries the labels "
                               f"{dict(ref.get('labels') or {})}; left alone",
                               where=self.backend)
        return self._normal(j)

    def _cancel(self, ref: Mapping[str, Any], job_id: str) -> None:
        path = self._job_path(ref, job_id)
        self.api.request("POST", self._url(ref, f"{path}:cancel"), f"{self.backend}:{job_id}",
                         body={})
