"""Evidence from the OpenAI and Anthropic Admin APIs: key metadata, usage and costs (read-only).

OpenAI (:class:`~adapters.openai_admin.OpenAIAdminAdapter`, admin key), per reference:

* ``keys``: the project API key (``GET /organization/projects/{p}/api_keys/{id}``): id,
  name, created_at, last_used_at, expires_at, owner, owner_project_access; for a service
  account reference the account (``.../service_accounts/{id}``) and every project key it
  owns (``GET .../api_keys?owner_project_access=any``, paged with ``after``). Never
  ``redacted_value``.
* ``usage`` / ``usage-embeddings``: ``GET /organization/usage/completions`` and
  ``/organization/usage/embeddings`` for the reference's project over the last 24 h:
  ``start_time``, ``end_time`` (Unix seconds), ``bucket_width=1h``, ``limit=24``,
  ``project_ids[]``, ``group_by[]=api_key_id`` and ``model``; pages follow ``next_page``
  while ``has_more`` (``page=``). Buckets ``{object: "bucket", start_time, end_time,
  results: [{object: "organization.usage.completions.result", input_tokens, output_tokens,
  num_model_requests, api_key_id, model, ...}]}``.
* ``costs``: ``GET /organization/costs`` (``bucket_width=1d``, ``project_ids[]``,
  ``group_by[]=line_item``), results ``{object: "organization.costs.result", amount:
  {value, currency}, line_item, project_id}``.

Paths, parameters (arrays as ``name[]``, openai-python's ``Querystring(array_format=
"brackets")``) and shapes: openai-python 3.54 ``resources/admin/organization/usage.py``
(``completions``, ``embeddings``, ``costs``) and ``types/admin/organization/
usage_*_response.py``; https://platform.openai.com/docs/api-reference/usage and the OpenAI
Cookbook "How to use the Usage API and Cost API".

Anthropic (:class:`~adapters.anthropic_admin.AnthropicAdminAdapter`, admin key):

* ``keys``: ``GET /v1/organizations/api_keys/{id}``: id, name, status, created_at,
  created_by, workspace_id, expires_at, scope. Never ``partial_key_hint``.
* ``usage``: ``GET /v1/organizations/usage_report/messages`` with ``starting_at`` /
  ``ending_at`` (RFC 3339), ``bucket_width=1h``, ``limit=24``, ``api_key_ids[]=<id>``,
  ``group_by[]=model``; pages follow ``next_page`` while ``has_more``.
* ``costs``: ``GET /v1/organizations/cost_report`` (daily buckets; ``group_by[]`` =
  ``workspace_id`` and ``description``), kept for the key's workspace: the cost report
  cannot filter by key.

Source: https://platform.claude.com/docs/en/api/admin/usage_report/retrieve_messages and
https://platform.claude.com/docs/en/api/admin/cost_report (anthropic-sdk-python 2.12 has no
binding for these two; arrays as ``name[]`` like its ``Querystring(array_format=
"brackets")``).

Permissions: OpenAI, an organization admin key (``api.management.read``, usage read);
Anthropic, an admin key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.evidence import EvidenceSink
from adapters.llm_http import ProviderApi
from adapters.preserve_common import MAX_PAGES, iso, pick, window, write_json

if TYPE_CHECKING:
    from adapters.anthropic_admin import AnthropicAdminAdapter
    from adapters.openai_admin import OpenAIAdminAdapter

__all__ = ["preserve_anthropic", "preserve_openai"]

OPENAI_KEY_FIELDS = ("object", "id", "name", "created_at", "last_used_at", "expires_at",
                     "owner", "owner_project_access", "scopes")
OPENAI_ACCOUNT_FIELDS = ("object", "id", "name", "role", "created_at")
ANTHROPIC_KEY_FIELDS = ("type", "id", "name", "status", "created_at", "created_by",
                        "workspace_id", "expires_at", "scope")


def report(api: ProviderApi, path: str, target: str,
           params: Mapping[str, Any]) -> dict[str, Any]:
    """Every bucket of a ``next_page`` / ``has_more`` report, up to :data:`MAX_PAGES`."""
    buckets: list[Any] = []
    pages, capped = 0, False
    query = dict(params)
    while True:
        body = api.request("GET", path, target, params=query) or {}
        buckets += [b for b in body.get("data") or [] if isinstance(b, Mapping)]
        pages += 1
        cursor = body.get("next_page")
        if not body.get("has_more") or not cursor:
            break
        if pages >= MAX_PAGES:
            capped = True
            break
        query = {**params, "page": cursor}
    return {"buckets": buckets, "pages": pages, "capped": capped}


# -- OpenAI ----------------------------------------------------------------------------------


def _openai_keys(adapter: OpenAIAdminAdapter, ref: Mapping[str, Any]) -> dict[str, Any]:
    kind, path, target, ident = adapter._ref(ref)
    project = str(ref["project"])
    obj = adapter.api.request("GET", path, target, missing_ok=True)
    if kind == "key":
        return {"project": project, "api_key_id": ident, "found": obj is not None,
                "key": pick(obj, OPENAI_KEY_FIELDS) if obj is not None else None}
    keys: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100, "owner_project_access": "any"}
    pages, capped = 0, False
    while True:
        page = adapter.api.request("GET", f"/organization/projects/{project}/api_keys",
                                   f"project {project} API keys", params=params) or {}
        data = [k for k in page.get("data") or [] if isinstance(k, Mapping)]
        keys += [pick(k, OPENAI_KEY_FIELDS) for k in data
                 if ((k.get("owner") or {}).get("service_account") or {}).get("id") == ident]
        pages += 1
        last = page.get("last_id") or (data[-1].get("id") if data else None)
        if not page.get("has_more") or not last:
            break
        if pages >= MAX_PAGES:
            capped = True
            break
        params = {**params, "after": last}
    return {"project": project, "service_account_id": ident, "found": obj is not None,
            "service_account": pick(obj, OPENAI_ACCOUNT_FIELDS) if obj is not None else None,
            "keys": keys, "capped": capped}


def _openai_usage(adapter: OpenAIAdminAdapter, project: str, what: str, path: str,
                  params: Mapping[str, Any]) -> dict[str, Any]:
    start, end = window()
    query = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()),
             "project_ids[]": [project], **params}
    out = report(adapter.api, path, f"{what} of project {project}", query)
    return {"endpoint": path, "project_id": project, "start_time": query["start_time"],
            "end_time": query["end_time"], "bucket_width": params["bucket_width"],
            "group_by": params["group_by[]"], **out}


def preserve_openai(adapter: OpenAIAdminAdapter, ref: Mapping[str, Any],
                    sink: EvidenceSink) -> None:
    """Key metadata, the project's usage (completions, embeddings) and costs, 24 h."""
    adapter._ref(ref)  # a malformed reference raises before any source
    project = str(ref["project"])
    hourly = {"bucket_width": "1h", "limit": 24, "group_by[]": ["api_key_id", "model"]}
    write_json(sink, "keys", "keys", lambda: _openai_keys(adapter, ref))
    write_json(sink, "usage-completions", "usage", lambda: _openai_usage(
        adapter, project, "completions usage", "/organization/usage/completions", hourly))
    write_json(sink, "usage-embeddings", "usage-embeddings", lambda: _openai_usage(
        adapter, project, "embeddings usage", "/organization/usage/embeddings", hourly))
    write_json(sink, "costs", "costs", lambda: _openai_usage(
        adapter, project, "costs", "/organization/costs",
        {"bucket_width": "1d", "limit": 2, "group_by[]": ["line_item"]}))


# -- Anthropic -------------------------------------------------------------------------------


def _anthropic_usage(adapter: AnthropicAdminAdapter, key_id: str) -> dict[str, Any]:
    start, end = window()
    params = {"starting_at": iso(start), "ending_at": iso(end), "bucket_width": "1h",
              "limit": 24, "api_key_ids[]": [key_id], "group_by[]": ["model"]}
    path = "/v1/organizations/usage_report/messages"
    out = report(adapter.api, path, f"messages usage of API key {key_id}", params)
    return {"endpoint": path, "api_key_id": key_id, "starting_at": params["starting_at"],
            "ending_at": params["ending_at"], "bucket_width": "1h", **out}


def _anthropic_costs(adapter: AnthropicAdminAdapter, workspace: str | None) -> dict[str, Any]:
    start, end = window()
    params = {"starting_at": iso(start), "ending_at": iso(end), "bucket_width": "1d",
              "limit": 2, "group_by[]": ["workspace_id", "description"]}
    path = "/v1/organizations/cost_report"
    out = report(adapter.api, path, "the organization's cost report", params)
    if workspace:
        for bucket in out["buckets"]:
            bucket["results"] = [r for r in bucket.get("results") or []
                                 if isinstance(r, Mapping) and r.get("workspace_id") == workspace]
    return {"endpoint": path, "workspace_id": workspace,
            "note": "" if workspace else "the key's workspace is unknown: every workspace",
            "starting_at": params["starting_at"], "ending_at": params["ending_at"], **out}


def preserve_anthropic(adapter: AnthropicAdminAdapter, ref: Mapping[str, Any],
                       sink: EvidenceSink) -> None:
    """Key metadata, the key's messages usage (24 h) and its workspace's costs."""
    key_id, path, target = adapter._ref(ref)
    seen: dict[str, Any] = {}

    def keys() -> dict[str, Any]:
        obj = adapter.api.request("GET", path, target, missing_ok=True)
        seen["workspace"] = (obj or {}).get("workspace_id")
        return {"api_key_id": key_id, "found": obj is not None,
                "key": pick(obj, ANTHROPIC_KEY_FIELDS) if obj is not None else None}

    write_json(sink, "keys", "keys", keys)
    write_json(sink, "usage-messages", "usage", lambda: _anthropic_usage(adapter, key_id))
    write_json(sink, "costs", "costs",
               lambda: _anthropic_costs(adapter, seen.get("workspace")))
