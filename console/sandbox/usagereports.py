"""Usage and cost reports for the OpenAI and Anthropic stand-ins (seeded hourly usage).

**OpenAI** (``api_openai``; admin key), from openai-python 3.54
``resources/admin/organization/usage.py`` and ``types/admin/organization/
usage_{completions,embeddings,costs}_response.py`` (https://platform.openai.com/docs/
api-reference/usage)::

    GET /v1/organization/usage/completions   start_time (required, Unix s), end_time,
    GET /v1/organization/usage/embeddings    bucket_width 1m|1h|1d (default 1d), limit,
    GET /v1/organization/costs               project_ids, api_key_ids, models, group_by,
                                             page; costs: bucket_width 1d only

Array parameters arrive as ``name[]=a&name[]=b`` (openai-python's ``Querystring(
array_format="brackets")``); plain repeated ``name=`` is accepted too. ``limit`` counts
buckets (1d: default 7, max 31; 1h: 24, max 168; 1m: 60, max 1440; costs: default 7, max
180). The answer is ``{object: "page", data: [{object: "bucket", start_time, end_time,
results: [...]}], has_more, next_page}``: one bucket per period of the range (results empty
when nothing was used), results aggregated per ``group_by`` combination with the fields not
grouped on set to null. Results: ``organization.usage.completions.result`` (input_tokens,
output_tokens, input_cached_tokens, num_model_requests, ...),
``organization.usage.embeddings.result`` (input_tokens, num_model_requests),
``organization.costs.result`` (``amount: {value, currency: "usd"}``, line_item such as
``"gpt-4o, input_tokens"`` as the SDK docstring spells it, project_id). Bucket edges are
aligned to the width in UTC [unconfirmed: the docs do not say where the first bucket
starts]. A bad parameter answers 400 ``invalid_request_error``.

**Anthropic** (``api_anthropic``; admin key), from https://platform.claude.com/docs/en/api/
admin/usage_report/retrieve_messages and https://platform.claude.com/docs/en/api/admin/
cost_report::

    GET /v1/organizations/usage_report/messages   starting_at (required, RFC 3339),
                                                  ending_at, bucket_width 1m|1h|1d, limit,
                                                  api_key_ids[], workspace_ids[], models[],
                                                  group_by[], page
    GET /v1/organizations/cost_report              starting_at, ending_at, bucket_width 1d,
                                                  group_by[] (workspace_id, description),
                                                  limit (1-31, default 7), page

answering ``{data: [{starting_at, ending_at, results: [...]}], has_more, next_page}``.
Usage results: uncached_input_tokens, cache_creation {ephemeral_1h_input_tokens,
ephemeral_5m_input_tokens}, cache_read_input_tokens, output_tokens, server_tool_use
{web_search_requests}, and api_key_id / workspace_id / model / service_tier /
context_window (null unless grouped). Cost results: currency ``USD``, ``amount`` a decimal
string in cents, workspace_id, description, cost_type ``tokens``, model, token_type,
service_tier, context_window (null unless grouped or implied by ``description``).

The seed: per key, hourly usage over the 30 hours before the stand-in was seeded, with a
burst in the last three hours (the pattern of a leaked key put to work).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from console.sandbox.standin import Request, Response, StandIn

__all__ = ["anthropic_routes", "openai_routes", "seed_usage"]

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
HOURS = 30
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6),
          "text-embedding-3-small": (0.02, 0.0), "claude-sonnet-4-5": (3.0, 15.0),
          "claude-haiku-4-5": (1.0, 5.0)}
"""USD per million input / output tokens (sandbox figures)."""


def seed_usage(keys: Iterable[tuple[str, str]], models: tuple[str, ...],
               now: float | None = None, embeddings: str = "") -> list[dict[str, Any]]:
    """Hourly usage records of ``(owner, key id)`` pairs (owner: project or workspace).

    Deterministic per key id; the last three hours carry a burst.
    """
    end = int((now or time.time()) // 3600 * 3600)
    out: list[dict[str, Any]] = []
    for owner, key in keys:
        rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
        for h in range(HOURS, 0, -1):
            t = end - h * 3600
            burst = 8 if h <= 3 else 1
            if rng.random() < 0.25 and burst == 1:
                continue
            for model in models:
                n = rng.randint(2, 30) * burst
                out.append({"t": t, "owner": owner, "api_key_id": key, "model": model,
                            "kind": "completions", "requests": n,
                            "input": n * rng.randint(400, 1800),
                            "output": n * rng.randint(80, 600),
                            "cached": n * rng.randint(0, 200)})
            if embeddings:
                n = rng.randint(1, 10) * burst
                out.append({"t": t, "owner": owner, "api_key_id": key, "model": embeddings,
                            "kind": "embeddings", "requests": n,
                            "input": n * rng.randint(200, 800), "output": 0, "cached": 0})
    return out


class BadParam(ValueError):
    """A parameter the provider would refuse (answered 400)."""


def _many(req: Request, name: str) -> list[str]:
    """Values of an array parameter: ``name[]`` (SDKs) and ``name`` (plain) both."""
    return [*(req.query.get(f"{name}[]") or []), *(req.query.get(name) or [])]


def _int(req: Request, name: str, default: int | None = None) -> int | None:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadParam(f"Invalid value for '{name}': expected an integer") from None


def _rfc3339(req: Request, name: str) -> int | None:
    raw = req.arg(name)
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(f"{name}: invalid RFC 3339 timestamp {raw!r}") from None
    if moment.tzinfo is None:
        raise BadParam(f"{name}: the timestamp must carry a time zone")
    return int(moment.timestamp())


def _rfc(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token(t: int) -> str:
    return "page_" + base64.urlsafe_b64encode(str(t).encode()).decode().rstrip("=")


def _untoken(raw: str) -> int:
    try:
        body = raw.removeprefix("page_")
        return int(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode())
    except (ValueError, binascii.Error):
        raise BadParam("page: invalid page token") from None


def _buckets(start: int, end: int, width: int, limit: int,
             page: str | None) -> tuple[list[tuple[int, int]], str | None]:
    first = start // width * width
    if page:
        first = _untoken(page)
    edges: list[tuple[int, int]] = []
    t = first
    while t < end and len(edges) < limit:
        edges.append((t, t + width))
        t += width
    return edges, (_token(t) if t < end else None)


def _group(records: list[dict[str, Any]], keys: list[str]) -> list[tuple[dict[str, Any],
                                                                        list[dict[str, Any]]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return [(dict(zip(keys, k, strict=True)), rs) for k, rs in sorted(
        groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]


def _cost(r: dict[str, Any], part: str) -> float:
    price_in, price_out = PRICES.get(r["model"], (1.0, 1.0))
    tokens = float(r["input"] if part == "input_tokens" else r["output"])
    return tokens * (price_in if part == "input_tokens" else price_out) / 1e6


# -- OpenAI ----------------------------------------------------------------------------------

_OPENAI_GROUPS = {
    "completions": {"project_id", "user_id", "api_key_id", "model", "batch", "service_tier",
                    "api_source"},
    "embeddings": {"project_id", "user_id", "api_key_id", "model"},
    "costs": {"project_id", "user_id", "line_item", "api_key_id", "api_source"},
}


def _openai_results(kind: str, records: list[dict[str, Any]],
                    group_by: list[str]) -> list[dict[str, Any]]:
    if kind == "costs":
        rows = [{**r, "line_item": f"{r['model']}, {part}", "part": part}
                for r in records for part in ("input_tokens", "output_tokens")
                if r["input" if part == "input_tokens" else "output"]]
        out = []
        for fields, rs in _group([{**r, "project_id": r["owner"]} for r in rows], group_by):
            out.append({"object": "organization.costs.result",
                        "amount": {"value": round(sum(_cost(r, r["part"]) for r in rs), 6),
                                   "currency": "usd"},
                        "line_item": fields.get("line_item"),
                        "project_id": fields.get("project_id"),
                        "api_key_id": fields.get("api_key_id"), "user_id": None})
        return out
    out = []
    for fields, rs in _group([{**r, "project_id": r["owner"]} for r in records], group_by):
        res: dict[str, Any] = {
            "object": f"organization.usage.{kind}.result",
            "input_tokens": sum(r["input"] for r in rs),
            "num_model_requests": sum(r["requests"] for r in rs),
            "project_id": fields.get("project_id"), "user_id": None,
            "api_key_id": fields.get("api_key_id"), "model": fields.get("model")}
        if kind == "completions":
            res.update(output_tokens=sum(r["output"] for r in rs),
                       input_cached_tokens=sum(r["cached"] for r in rs),
                       input_audio_tokens=0, output_audio_tokens=0,
                       batch=False if "batch" in group_by else None)
        out.append(res)
    return out


def _openai_report(app: StandIn, kind: str) -> Callable[[Request], Response]:
    def handler(req: Request) -> Response:
        try:
            start = _int(req, "start_time")
            if start is None:
                raise BadParam("Missing required parameter: 'start_time'.")
            end = _int(req, "end_time", int(time.time()))
            assert end is not None
            width_name = req.arg("bucket_width") or "1d"
            if width_name not in WIDTHS or (kind == "costs" and width_name != "1d"):
                allowed = "'1d'" if kind == "costs" else "'1m', '1h', '1d'"
                raise BadParam(f"Invalid value for 'bucket_width': expected one of {allowed}.")
            default, most = (7, 180) if kind == "costs" else LIMITS[width_name]
            limit = _int(req, "limit", default)
            assert limit is not None
            if not 1 <= limit <= most:
                raise BadParam(f"Invalid value for 'limit': must be between 1 and {most}.")
            group_by = _many(req, "group_by")
            bad = [g for g in group_by if g not in _OPENAI_GROUPS[kind]]
            if bad:
                raise BadParam(f"Invalid value for 'group_by': {bad[0]!r}.")
            if end <= start:
                raise BadParam("'end_time' must be after 'start_time'.")
            edges, nxt = _buckets(start, end, WIDTHS[width_name], limit, req.arg("page"))
        except BadParam as exc:
            return app.error(400, str(exc), "invalid_request_error")
        projects, keys, models = (_many(req, n) for n in ("project_ids", "api_key_ids",
                                                           "models"))
        want = "completions" if kind == "costs" else kind
        records = [r for r in app.state.get("usage") or [] if r["kind"] in
                   ((want, "embeddings") if kind == "costs" else (want,))
                   and (not projects or r["owner"] in projects)
                   and (not keys or r["api_key_id"] in keys)
                   and (not models or r["model"] in models)]
        data = [{"object": "bucket", "start_time": a, "end_time": b, "results":
                 _openai_results(kind, [r for r in records if a <= r["t"] < b], group_by)}
                for a, b in edges]
        return Response(200, {"object": "page", "data": data, "has_more": nxt is not None,
                              "next_page": nxt})

    return handler


def openai_routes(app: StandIn) -> None:
    """Register the usage and costs routes on the OpenAI stand-in (admin auth is its own)."""
    app.route("GET", r"/v1/organization/usage/completions", _openai_report(app, "completions"))
    app.route("GET", r"/v1/organization/usage/embeddings", _openai_report(app, "embeddings"))
    app.route("GET", r"/v1/organization/costs", _openai_report(app, "costs"))


# -- Anthropic -------------------------------------------------------------------------------

_ANTHROPIC_GROUPS = {"api_key_id", "workspace_id", "model", "service_tier", "context_window",
                     "inference_geo", "speed", "account_id", "service_account_id"}


def _anthropic_usage(records: list[dict[str, Any]], group_by: list[str]) -> list[dict[str, Any]]:
    out = []
    rows = [{**r, "workspace_id": r["owner"], "service_tier": "standard",
             "context_window": "0-200k"} for r in records]
    for fields, rs in _group(rows, group_by):
        out.append({
            "uncached_input_tokens": sum(r["input"] - r["cached"] for r in rs),
            "cache_creation": {"ephemeral_1h_input_tokens": 0,
                               "ephemeral_5m_input_tokens": 0},
            "cache_read_input_tokens": sum(r["cached"] for r in rs),
            "output_tokens": sum(r["output"] for r in rs),
            "server_tool_use": {"web_search_requests": 0},
            **{k: fields.get(k) for k in ("api_key_id", "workspace_id", "model",
                                          "service_tier", "context_window")}})
    return out


def _anthropic_costs(records: list[dict[str, Any]], group_by: list[str]) -> list[dict[str, Any]]:
    out = []
    rows = [{**r, "workspace_id": r["owner"], "part": part,
             "description": f"{r['model']}, {part.replace('_', ' ')}"}
            for r in records for part in ("input_tokens", "output_tokens")]
    for fields, rs in _group(rows, group_by):
        described = "description" in group_by
        amount = sum(_cost(r, r["part"]) for r in rs) * 100
        out.append({"currency": "USD", "amount": f"{amount:.2f}",
                    "workspace_id": fields.get("workspace_id"),
                    "description": fields.get("description"),
                    "cost_type": "tokens" if described else None,
                    "context_window": "0-200k" if described else None,
                    "model": rs[0]["model"] if described else None,
                    "service_tier": "standard" if described else None,
                    "token_type": (("uncached_input_tokens" if rs[0]["part"] == "input_tokens"
                                    else "output_tokens") if described else None)})
    return out


def _anthropic_report(app: StandIn, kind: str) -> Callable[[Request], Response]:
    groups = _ANTHROPIC_GROUPS if kind == "usage" else {"workspace_id", "description"}

    def handler(req: Request) -> Response:
        try:
            start = _rfc3339(req, "starting_at")
            if start is None:
                raise BadParam("starting_at: Field required")
            end = _rfc3339(req, "ending_at") or int(time.time())
            width_name = req.arg("bucket_width") or "1d"
            if width_name not in WIDTHS or (kind == "costs" and width_name != "1d"):
                raise BadParam(f"bucket_width: Input should be "
                               f"{'1d' if kind == 'costs' else '1d, 1h or 1m'}")
            default, most = LIMITS[width_name]
            limit = _int(req, "limit", default)
            assert limit is not None
            if not 1 <= limit <= most:
                raise BadParam(f"limit: must be between 1 and {most}")
            group_by = _many(req, "group_by")
            bad = [g for g in group_by if g not in groups]
            if bad:
                raise BadParam(f"group_by: invalid value {bad[0]!r}")
            if end <= start:
                raise BadParam("ending_at must be after starting_at")
            edges, nxt = _buckets(start, end, WIDTHS[width_name], limit, req.arg("page"))
        except BadParam as exc:
            return app.error(400, str(exc), "invalid_request_error")
        keys, workspaces, models = (_many(req, n) for n in ("api_key_ids", "workspace_ids",
                                                             "models"))
        records = [r for r in app.state.get("usage") or [] if r["kind"] == "completions"
                   and (kind == "costs" or not keys or r["api_key_id"] in keys)
                   and (kind == "costs" or not workspaces or r["owner"] in workspaces)
                   and (kind == "costs" or not models or r["model"] in models)]
        build = _anthropic_usage if kind == "usage" else _anthropic_costs
        data = [{"starting_at": _rfc(a), "ending_at": _rfc(b),
                 "results": build([r for r in records if a <= r["t"] < b], group_by)}
                for a, b in edges]
        return Response(200, {"data": data, "has_more": nxt is not None, "next_page": nxt})

    return handler


def anthropic_routes(app: StandIn) -> None:
    """Register the usage and cost report routes on the Anthropic stand-in."""
    app.route("GET", r"/v1/organizations/usage_report/messages",
              _anthropic_report(app, "usage"))
    app.route("GET", r"/v1/organizations/cost_report", _anthropic_report(app, "costs"))
