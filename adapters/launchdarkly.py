"""LaunchDarkly adapter (REST API v2, semantic patch over httpx): flags off per environment.

Backend options::

    [backends.launchdarkly-sandbox]
    type = "launchdarkly"
    base_url = "http://127.0.0.1:8391"          # default https://app.launchdarkly.com
    token_env = "LD_API_TOKEN"                  # env var NAME holding an API access token
    token_file = ".sandbox/launchdarkly-admin.key"  # fallback file (optional)
    project = "default"                         # project key of refs that name none
    request_timeout = 30                        # seconds per HTTP call

Inventory reference (``environments`` optional: default every environment of the flag, and
only those that are on get switched off; ``project`` optional)::

    {backend = "launchdarkly-sandbox", project = "ai", flag = "support-bot-enabled",
     environments = ["production"]}

One change per environment (each a single semantic patch, so a retried apply never sees
a half-done change); environments already in the wanted state are reported as no-ops. State
shape (``before`` / ``after`` / :meth:`LaunchDarklyAdapter.read`), ``on`` of the change's
environment::

    {"production": true}

Each flip is one ``PATCH /api/v2/flags/{project}/{flag}`` with
``Content-Type: application/json; domain-model=launchdarkly.semanticpatch`` and body
``{"environmentKey": env, "comment": "<incident> <run>: <reason>", "instructions":
[{"kind": "turnFlagOff"}]}`` (``turnFlagOn`` for undo, only where the flag was on) and the
query ``ignoreConflicts=true``: a change that would make a pending scheduled change or
approval request fail is otherwise refused with 400, and a kill must not wait for someone
else's schedule. The comment lands in LaunchDarkly's audit log; the reason is the runbook
step option ``reason`` (default ``killswitch``). Reads are ``GET
/api/v2/flags/{project}/{flag}?env=...`` ``environments.{env}.on``. The token is sent raw in
``Authorization`` (no ``Bearer``), with ``LD-API-Version: 20240415`` and ``User-Agent:
killswitch/<version> run/<run id>``. 429 honours ``Retry-After`` (seconds) or
``X-Ratelimit-Reset`` (epoch milliseconds); 409 (concurrent update) is retried. 405 means the
environment requires approvals for flag changes: the error says so and how to proceed (an
approved approval request, or a token whose role may ``bypassRequiredApproval``).

Sources: the ``patchFeatureFlag`` documentation ("Required approvals": 405; "Conflicts": 400
unless ``ignoreConflicts=true``) in LaunchDarkly's generated API clients
(launchdarkly/api-client-go ``api_feature_flags.go``, api-client-python / -ruby / -php
``docs/FeatureFlagsApi.md``), mirroring https://launchdarkly.com/docs/api/feature-flags/patch-feature-flag;
roles: https://launchdarkly.com/docs/home/account/roles/role-actions (``bypassRequiredApproval``).

Example runbook step::

    [[steps]]
    id = "flags-off"
    action = "flag.disable"
    options = { reason = "suspected key leak" }
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from adapters.base import ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import (
    env_flag_changes,
    env_flag_inverse,
    path_option,
    read_secret,
    seconds_option,
)
from adapters.http import STATUS_ERRORS, Credential, HttpApi, StatusRule, url_option
from adapters.specs.flags import LAUNCHDARKLY, LaunchDarklyOptions
from console.errors import (
    AdapterError,
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
)

__all__ = ["APPROVALS_HINT", "SEMANTIC_PATCH", "LaunchDarklyAdapter", "LaunchDarklyApi",
           "patch_body"]

PROVIDER = "LaunchDarkly"
DEFAULT_BASE_URL = "https://app.launchdarkly.com"
DEFAULT_TOKEN_ENV = "LD_API_TOKEN"
API_VERSION = "20240415"
DEFAULT_TIMEOUT = 30.0
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
"""Content type of a semantic patch; without it LaunchDarkly parses JSON Patch (400)."""


def patch_body(env: str, on: bool, comment: str) -> dict[str, Any]:
    """The semantic patch that turns the flag on or off in ``env``."""
    return {"environmentKey": env, "comment": comment,
            "instructions": [{"kind": "turnFlagOn" if on else "turnFlagOff"}]}


APPROVALS_HINT = (
    "a kill cannot wait for a review, so either (1) request approval of the change in "
    "LaunchDarkly (the flag's Targeting tab > Review and save > Request approval, or POST "
    "/api/v2/projects/{project}/flags/{flag}/environments/{env}/approval-requests with the "
    "same instruction) and apply it once approved, or (2) have an admin give the console's "
    "token a custom role allowing bypassRequiredApproval in this environment, then run the "
    "runbook again")
"""What to do when an environment requires approvals (405); ``str.format`` fills in
``project``, ``flag`` and ``env``."""


class LaunchDarklyApi(HttpApi):
    """LaunchDarkly's REST API v2: errors ``{code, message, id}``; 405 means the environment
    requires approvals (a PermissionDenied that says how to proceed, :data:`APPROVALS_HINT`);
    409 (a concurrent update) is retried; a 429 without ``Retry-After`` waits for
    ``X-Ratelimit-Reset`` (epoch milliseconds)."""

    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = {
        **STATUS_ERRORS, 405: (PermissionDenied, False), 409: (Conflict, True)}
    NOT_FOUND: ClassVar[str] = "not found in {provider}: {target} ({said})"

    def retry_after(self, response: httpx.Response) -> float | None:
        """``Retry-After`` seconds, else (on a 429) ``X-Ratelimit-Reset`` minus now."""
        delay = super().retry_after(response)
        reset = response.headers.get("x-ratelimit-reset")
        if delay is not None or response.status_code != 429 or not reset:
            return delay
        try:
            return max(0.0, float(reset) / 1000.0 - time.time())
        except ValueError:
            return None

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of the status map; a 405 says approvals are required."""
        if response.status_code != 405:
            return super().error(response, target, credential)
        return PermissionDenied(
            f"{PROVIDER} refused the change on {target}: the environment requires approvals "
            "for flag changes, so the console's token cannot change it directly "
            f"({self.said(response)})", hint=APPROVALS_HINT, status=405, where=self.backend)


def _access(source: str) -> Credential:
    return Credential(f"the access token from {source}",
                      f"set {source} to an API access token (personal or service token, "
                      "not an SDK key)")


class LaunchDarklyAdapter(Adapter):
    """Switch LaunchDarkly flags off per environment with a semantic patch (undo: back on).

    ``flag.disable`` sends ``turnFlagOff`` to each chosen environment that is on, with a
    comment carrying the incident id, run id and reason; its inverse ``flag.enable`` sends
    ``turnFlagOn`` to exactly the environments that were on.
    """

    name: ClassVar[str] = "launchdarkly"
    Options: ClassVar[type[LaunchDarklyOptions]] = LaunchDarklyOptions
    OPTIONS: ClassVar[Mapping[str, str]] = LaunchDarklyOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = LAUNCHDARKLY.actions  # adapters/specs/flags.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.base_url = url_option(backend, self.options.get("base_url"),
                                   default=DEFAULT_BASE_URL)
        self.token_env = str(self.options.get("token_env") or DEFAULT_TOKEN_ENV)
        self.token_file = path_option(self.options, "token_file")
        self.project = str(self.options.get("project") or "default")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self.api = LaunchDarklyApi(self, PROVIDER, self.base_url, timeout=self.timeout, hints={
            PermissionDenied: "the token's role must allow updateOn in the environment; "
                              "environments requiring approvals refuse direct changes"})
        self.api.credential = _access(f"environment variable {self.token_env}")

    # -- client ---------------------------------------------------------------------------

    def open(self) -> None:
        """Read the access token and build the HTTP client (no request is sent).

        Raises:
            AuthError: No token in the environment variable or the token file.
        """
        if self.api.opened:
            return
        token, source = read_secret(self.token_env, self.token_file, "token file")
        if not token:
            raise AuthError(f"no {PROVIDER} access token for backend {self.backend!r}: "
                            f"{source} is not set", where=self.backend,
                            hint=f"export {self.token_env}=<API access token>; for the "
                            "sandbox run `killswitch sandbox start`")
        self.api.open({"Authorization": token, "LD-API-Version": API_VERSION,
                       "Accept": "application/json"}, credential=_access(source))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.api.close()

    # -- references -----------------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, str, list[str], str]:
        flag = str(ref.get("flag") or "")
        if not flag:
            raise AdapterError("launchdarkly flag reference needs `flag`", where=self.backend)
        project = str(ref.get("project") or self.project)
        raw = ref.get("environments") or ref.get("environment") or []
        envs = [raw] if isinstance(raw, str) else [str(e) for e in raw]
        return project, flag, envs, f"{self.backend}:{project}/{flag}"

    def _path(self, project: str, flag: str) -> str:
        return f"/api/v2/flags/{quote(project, safe='')}/{quote(flag, safe='')}"

    def _environments(self, project: str, flag: str, envs: list[str],
                      target: str) -> dict[str, bool]:
        """``on`` per environment (``envs`` only, when given)."""
        params = [("env", e) for e in envs]
        body = self.api.request("GET", self._path(project, flag), target, params=params) or {}
        found = body.get("environments") or {}
        missing = [e for e in envs if e not in found]
        if missing:
            raise NotFound(f"{target} has no environment {', '.join(missing)}",
                           where=self.backend)
        return {str(k): bool((v or {}).get("on")) for k, v in found.items()
                if not envs or k in envs}

    @staticmethod
    def _comment(ctx: PlanContext) -> str:
        ids = " ".join(x for x in (ctx.incident, ctx.run_id) if x) or "killswitch"
        reason = str(ctx.options.get("reason") or "killswitch").strip()
        return f"{ids}: {reason}"

    # -- phases ---------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Read the flag's environments; one change per environment (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the launchdarkly adapter does not offer {action}",
                               where=self.backend)
        project, flag, wanted, target = self._ref(ref)
        if action == "flag.enable" and not wanted:
            raise AdapterError(f"flag.enable on {target} needs `environments` on the "
                               "reference", where=self.backend,
                               hint="to undo a disable exactly, use `killswitch restore RUN`")
        state = self._environments(project, flag, wanted, target)
        envs = wanted or sorted(state)
        kind = "turnFlagOn" if action == "flag.enable" else "turnFlagOff"
        return env_flag_changes(self, action, ref, ctx, flag=flag, target=target, state=state,
                                envs=envs, undo={"project": project,
                                                 "comment": self._comment(ctx)},
                                note=lambda env: f"{kind} for {flag} in {env}")

    def read(self, change: Change) -> dict[str, Any]:
        """``on`` of each environment of the change, now."""
        project, flag, _, target = self._ref(change.ref)
        project = str(change.undo.get("project") or project)
        envs = list(change.undo.get("environments") or change.before or change.after)
        return self._environments(project, flag, envs, target)

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One semantic patch for the change's environment.

        The engine reads the state just before and skips a change already in effect; a
        semantic patch does nothing when the flag is already in the requested state, so a
        retried apply is safe without another read.
        """
        project, flag, _, target = self._ref(change.ref)
        project = str(change.undo.get("project") or project)
        comment = str(change.undo.get("comment") or "killswitch")
        for env, want in change.after.items():
            try:
                self.api.request("PATCH", self._path(project, flag), f"{target} in {env}",
                                 params={"ignoreConflicts": "true"},
                                 body=patch_body(env, bool(want), comment),
                                 headers={"Content-Type": SEMANTIC_PATCH})
            except PermissionDenied as exc:
                if exc.status == 405:
                    exc.hint = APPROVALS_HINT.format(project=project, flag=flag, env=env)
                raise
        return {"prior": dict(change.before)}

    def verify(self, change: Change) -> Verdict:
        """Read back ``environments.{env}.on`` for each environment of the change."""
        _, flag, _, _ = self._ref(change.ref)
        state = self.read(change)
        shown = ", ".join(f"{e} {'on' if v else 'off'}" for e, v in sorted(state.items()))
        if state == change.after:
            return Verdict(True, "off" if change.action == "flag.disable" else "restored",
                           f"read back: {flag} is {shown}")
        return Verdict(False, "live" if change.action == "flag.disable" else "off",
                       f"read back: {flag} is {shown}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that turns back on exactly the environments that were on."""
        ids = str(change.undo.get("comment") or "killswitch").split(":", 1)[0]
        return env_flag_inverse(change, applied,
                                {"comment": f"{ids}: restore (undo of {change.op_id})"})
