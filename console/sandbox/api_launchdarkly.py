"""LaunchDarkly stand-in: the REST API v2 flag read and semantic-patch calls Killswitch makes.

Served (provider-apis.md 7.1)::

    GET   /api/v2/flags/{projectKey}/{flagKey}[?env=E...]   -> the flag, environments.{E}.on
    PATCH /api/v2/flags/{projectKey}/{flagKey}              -> semantic patch, 200 + the flag

The PATCH accepts only ``Content-Type: application/json; domain-model=launchdarkly.semanticpatch``
(anything else is parsed as JSON Patch by the real API and fails with 400 here too), needs an
``environmentKey`` for ``turnFlagOn`` / ``turnFlagOff``, applies all instructions or none and
does nothing when the flag is already in the requested state. Every accepted patch is kept in
the flag's ``comments`` (environment, instruction kinds, comment), so tests and exercises can
check the incident id arrived. ``Authorization`` must be one of the seeded tokens, raw (a
``Bearer`` prefix, an ``sdk-`` or ``mob-`` key is refused with 401).

Approvals and conflicts, as the ``patchFeatureFlag`` documentation states them ("Required
approvals" / "Conflicts"):

* an environment whose ``approvalSettings.required`` is true (``projects.{p}.environments``)
  answers **405** to a direct change, unless the token is one of ``bypass_tokens`` (a role
  allowing ``bypassRequiredApproval``);
* a flag environment with ``pending`` scheduled changes or approval requests answers **400**
  to a change unless the query carries ``ignoreConflicts=true``. The real API refuses only
  changes that would make a pending one fail; the stand-in refuses every change while one is
  pending (stricter, never looser), and with ``ignoreConflicts=true`` keeps the pending ones.

Sources: LaunchDarkly's generated API clients document ``patchFeatureFlag`` (launchdarkly/
api-client-go ``api_feature_flags.go``; api-client-python / -ruby / -php
``docs/FeatureFlagsApi.md``), mirroring https://launchdarkly.com/docs/api/feature-flags/patch-feature-flag
and https://launchdarkly.com/docs/api (error shape ``{code, message, id}``).

Errors have LaunchDarkly's shape ``{"code": "...", "message": "...", "id": "..."}``. Fault
injection (latency, 429 with ``Retry-After`` and ``X-Ratelimit-Reset``, 5xx, hangs) comes
from :class:`~console.sandbox.standin.StandIn`.

Seed: every flag referenced on ``launchdarkly`` backends, on in every environment of its
project (``production``, ``test`` and any environment a reference names). The access token
is the sandbox's own, in ``<sandbox dir>/launchdarkly-admin.key``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

from console.sandbox.standin import Request, Response, StandIn

__all__ = ["DEFAULT_PORT", "STANDIN", "LaunchDarklyStandIn", "new_flag", "seed", "wanted"]

DEFAULT_PORT = 8391
TYPES = ("launchdarkly",)
DEFAULT_ENVIRONMENTS = ("production", "test")
SEMANTIC = "domain-model=launchdarkly.semanticpatch"

_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "optimistic_locking_error",
          429: "rate_limited", 500: "internal_server_error", 503: "service_unavailable"}
_KINDS = ("turnFlagOn", "turnFlagOff")


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_flag(environments: list[str] | tuple[str, ...], on: bool = True) -> dict[str, Any]:
    """State of one boolean flag, ``on`` in every environment of ``environments``."""
    return {"version": 1, "comments": [],
            "environments": {e: {"on": on, "version": 1, "lastModified": _now_ms()}
                             for e in environments}}


class LaunchDarklyStandIn(StandIn):
    """LaunchDarkly flags from memory.

    State::

        {"tokens": ["<access token>", ...],
         "bypass_tokens": ["<token whose role may bypassRequiredApproval>", ...],
         "projects": {"ai": {
             "environments": {"production": {"approvalSettings": {"required": true}}},
             "flags": {"support-bot-enabled": {
                 "version": 3,
                 "environments": {"production": {"on": true, "version": 2,
                                                 "lastModified": ms,
                                                 "pending": [{"kind": "scheduledChange",
                                                              "_id": "...",
                                                              "instructions": [...]}]}},
                 "comments": [{"environmentKey", "kinds", "comment", "at"}]}}}}}
    """

    name: ClassVar[str] = "launchdarkly"

    def setup(self) -> None:
        """Register the flag routes."""
        self.state.setdefault("tokens", [])
        self.state.setdefault("bypass_tokens", [])
        self.state.setdefault("projects", {})
        flag = r"/api/v2/flags/(?P<project>[^/]+)/(?P<flag>[^/]+)"
        self.route("GET", flag, self.get_flag)
        self.route("PATCH", flag, self.patch_flag)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """LaunchDarkly's error shape."""
        code = kind if kind and kind in _CODES.values() else _CODES.get(status, "error")
        return {"code": code, "message": message, "id": secrets.token_hex(12)}

    def error(self, status: int, message: str, kind: str = "",
              headers: dict[str, str] | None = None) -> Response:
        """An error response; 429 also carries ``X-Ratelimit-Reset`` (epoch ms)."""
        headers = dict(headers or {})
        if status == 429:
            wait = float(headers.get("Retry-After") or self.faults.retry_after)
            headers.setdefault("X-Ratelimit-Reset", str(_now_ms() + int(wait * 1000)))
            headers.setdefault("X-Ratelimit-Route-Remaining", "0")
        return Response(status, self.error_body(status, message, kind), headers)

    # -- helpers ------------------------------------------------------------------------
    def _auth(self, req: Request) -> Response | None:
        token = req.headers.get("authorization", "").strip()
        if not token or token not in [*self.state["tokens"],
                                      *self.state.get("bypass_tokens", [])]:
            why = "Invalid access token"
            if token.lower().startswith("bearer "):
                why += " (send the token without the Bearer prefix)"
            elif token.startswith(("sdk-", "mob-")):
                why += " (SDK and mobile keys cannot call the REST API)"
            return self.error(401, why, "unauthorized")
        return None

    def _flag(self, req: Request) -> tuple[dict[str, Any] | None, Response | None]:
        project = self.state["projects"].get(req.params["project"])
        if project is None:
            return None, self.error(404, f"Unknown project {req.params['project']}")
        flag = project["flags"].get(req.params["flag"])
        if flag is None:
            return None, self.error(404, f"Unknown flag {req.params['flag']}")
        return flag, None

    def _render(self, req: Request, flag: dict[str, Any], envs: list[str] | None) -> Any:
        key = req.params["flag"]
        shown = {k: {"on": v["on"], "archived": False, "version": v["version"],
                     "lastModified": v["lastModified"], "_environmentName": k.title(),
                     "_site": {"href": f"/{req.params['project']}/{k}/features/{key}"}}
                 for k, v in flag["environments"].items() if not envs or k in envs}
        return {"key": key, "name": key, "kind": "boolean", "_version": flag["version"],
                "archived": False, "temporary": False,
                "variations": [{"value": True}, {"value": False}],
                "environments": shown}

    # -- routes -------------------------------------------------------------------------
    def get_flag(self, req: Request) -> Response:
        """GET a flag, optionally filtered to ``env`` query parameters."""
        denied = self._auth(req)
        if denied:
            return denied
        flag, missing = self._flag(req)
        if missing or flag is None:
            return missing or self.error(404, "Unknown flag")
        return Response(200, self._render(req, flag, req.query.get("env")))

    def patch_flag(self, req: Request) -> Response:
        """PATCH with a semantic patch: turnFlagOn / turnFlagOff, all or nothing."""
        denied = self._auth(req)
        if denied:
            return denied
        if SEMANTIC not in req.headers.get("content-type", "").replace(" ", ""):
            return self.error(400, "Invalid JSON Patch: the body must be a JSON array of "
                              "operations (send Content-Type: application/json; "
                              "domain-model=launchdarkly.semanticpatch for semantic patches)")
        flag, missing = self._flag(req)
        if missing or flag is None:
            return missing or self.error(404, "Unknown flag")
        body = req.body if isinstance(req.body, dict) else None
        instructions = (body or {}).get("instructions")
        if not isinstance(instructions, list) or not instructions:
            return self.error(400, "semantic patch needs a non-empty `instructions` array")
        env = (body or {}).get("environmentKey")
        kinds = [i.get("kind") if isinstance(i, dict) else None for i in instructions]
        bad = [k for k in kinds if k not in _KINDS]
        if bad:
            return self.error(400, f"unsupported instruction kind {bad[0]!r}")
        if not env:
            return self.error(400, "environmentKey is required for turnFlagOn / turnFlagOff")
        if env not in flag["environments"]:
            return self.error(404, f"Unknown environment {env}")
        comment = (body or {}).get("comment")
        if comment is not None and not isinstance(comment, str):
            return self.error(400, "comment must be a string")
        refused = self._approvals(req, env) or self._conflicts(req, flag, env)
        if refused:
            return refused
        target = flag["environments"][env]
        want = target["on"]
        for kind in kinds:
            want = kind == "turnFlagOn"
        if want != target["on"]:
            target.update(on=want, version=target["version"] + 1, lastModified=_now_ms())
            flag["version"] += 1
        flag["comments"].append({"environmentKey": env, "kinds": kinds,
                                 "comment": comment or "", "at": _now_ms()})
        return Response(200, self._render(req, flag, None))


    def _approvals(self, req: Request, env: str) -> Response | None:
        """405 when ``env`` requires approvals and the token may not bypass them."""
        project = self.state["projects"].get(req.params["project"]) or {}
        settings = ((project.get("environments") or {}).get(env) or {}).get(
            "approvalSettings") or {}
        token = req.headers.get("authorization", "").strip()
        if settings.get("required") and token not in self.state.get("bypass_tokens", []):
            return self.error(405, f"Approval is required to make changes to this flag in "
                              f"environment {env}: create an approval request",
                              "method_not_allowed")
        return None

    def _conflicts(self, req: Request, flag: dict[str, Any], env: str) -> Response | None:
        """400 while ``env`` has pending changes, unless ``ignoreConflicts=true``."""
        pending = flag["environments"][env].get("pending") or []
        if not pending or (req.arg("ignoreConflicts") or "").lower() == "true":
            return None
        kinds = sorted({str(p.get("kind") or "scheduledChange") for p in pending})
        return self.error(400, f"This change would cause {len(pending)} pending change(s) "
                          f"({', '.join(kinds)}) in environment {env} to fail; set "
                          "ignoreConflicts=true to make it anyway", "invalid_request")


STANDIN = LaunchDarklyStandIn


def _backends(config: Any) -> dict[str, dict[str, Any]]:
    return {name: b.options for name, b in config.backends.items() if b.type in TYPES}


def seed(config: Any) -> dict[str, Any]:
    """Initial state: every referenced flag, on in every environment; the sandbox token."""
    from console.sandbox.seedkeys import sandbox_admin_key

    backends = _backends(config)
    state: dict[str, Any] = {"tokens": [], "projects": {}}
    if backends:
        state["tokens"].append(sandbox_admin_key(config, "launchdarkly"))
    refs = [(ref.fields(), backends[ref.backend]) for integ in config.integrations
            for ref in integ.flags if ref.backend in backends]
    for fields, options in refs:
        project_key = str(fields.get("project") or options.get("project") or "default")
        flag_key = str(fields.get("flag") or "")
        if not flag_key:
            continue
        raw = fields.get("environments") or []
        named = [raw] if isinstance(raw, str) else [str(e) for e in raw]
        project = state["projects"].setdefault(project_key, {"flags": {}})
        envs = list(dict.fromkeys([*DEFAULT_ENVIRONMENTS, *named]))
        flag = project["flags"].setdefault(flag_key, new_flag(envs))
        for env in envs:
            flag["environments"].setdefault(env, new_flag([env])["environments"][env])
    return state


def wanted(config: Any) -> bool:
    """True when the config has a ``launchdarkly`` backend."""
    return bool(_backends(config))
