"""Unleash adapter (Admin API over httpx): switch a feature flag off per environment, exactly.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

Backend options::

    [backends.unleash-sandbox]
    type = "unleash"
    url = "http://127.0.0.1:4242"                # Unleash base URL (no /api)
    token_env = "UNLEASH_ADMIN_TOKEN"            # env var NAME holding an admin API token
    token_file = ".sandbox/unleash.token"        # fallback file (optional)
    project = "default"                          # project of refs that name none (default)
    client_token_env = "UNLEASH_CLIENT_TOKEN"    # backend (SDK) token for verify (optional)
    client_token_file = ".sandbox/unleash-client.token"  # fallback file (optional)
    request_timeout = 30                         # seconds per HTTP call

Inventory reference (``environments`` optional: default every environment of the flag, and
only those that are on get switched off; ``project`` optional)::

    {backend = "unleash-sandbox", flag = "code-review-agent", environments = ["production"]}

One change per environment (each a single atomic call, so a retried apply never sees a
half-done change); environments already in the wanted state are reported as no-ops. State
shape (``before`` / ``after`` / :meth:`UnleashAdapter.read`), ``enabled`` of the change's
environment::

    {"production": true}

``flag.disable`` sends ``POST /api/admin/projects/{p}/features/{f}/environments/{env}/off``
for each environment that is on; ``undo`` (``flag.enable``) sends ``.../on`` for exactly the
environments that were on before, leaving the others off. A standalone ``flag.enable`` needs
``environments`` on the reference (it never guesses where a flag should be on). Verify reads
``GET /api/admin/projects/{p}/features/{f}`` ``environments[].enabled`` and, when a backend
token is configured, ``GET /api/client/features`` the way an SDK in that token's environment
would, to show the flag evaluates off (or back on).

Example runbook step::

    [[steps]]
    id = "flags-off"
    action = "flag.disable"
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from adapters.base import ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import (
    env_flag_changes,
    env_flag_inverse,
    http_errors,
    path_option,
    retry_after,
    seconds_option,
    status_error,
    user_agent,
)
from adapters.common import read_secret as _read_secret
from adapters.specs.flags import UNLEASH, UnleashOptions
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
)

__all__ = ["UnleashAdapter", "error_for", "read_secret"]

PROVIDER = "Unleash"
DEFAULT_TOKEN_ENV = "UNLEASH_ADMIN_TOKEN"
DEFAULT_TIMEOUT = 30.0


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        name = body.get("name")
        return f"{body['message']} ({name})" if name else str(body["message"])
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def error_for(response: httpx.Response, target: str, token_source: str) -> AdapterError:
    """The typed error for a non-2xx Unleash answer (provider message, target, no token)."""
    said = _said(response)
    msg = f"{PROVIDER} refused the call on {target}: {said}"
    return status_error(
        response.status_code, msg, not_found=f"not found in {PROVIDER}: {target} ({said})",
        auth_msg=f"{msg}; the admin token from {token_source} was rejected",
        auth_hint=f"set {token_source} to a valid admin API token or personal access token",
        denied_hint="the token needs UPDATE_FEATURE_ENVIRONMENT in the environment; change "
        "requests may also block direct toggles",
        retry=retry_after(response.headers))


def read_secret(env: str, file: Path | None) -> tuple[str, str]:
    """``(value, where it came from)`` from ``$env`` or ``file``; ``("", description)``."""
    return _read_secret(env, file, "token file")


def _token_environment(token: str) -> str:
    """The environment of an Unleash backend token ``project:environment.secret``."""
    head = token.split(".", 1)[0]
    return head.split(":", 1)[1] if ":" in head else ""


class UnleashAdapter(Adapter):
    """Switch Unleash feature flags off per environment (undo: on where they were on).

    ``flag.disable`` turns the flag off in each chosen environment that is on, recording the
    prior ``enabled`` of each; its inverse ``flag.enable`` turns back on exactly those.
    """

    name: ClassVar[str] = "unleash"
    Options: ClassVar[type[UnleashOptions]] = UnleashOptions
    OPTIONS: ClassVar[Mapping[str, str]] = UnleashOptions.help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = UNLEASH.actions  # adapters/specs/flags.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        url = str(self.options.get("url") or "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise AdapterError(f"backend {backend!r}: option url must be an http(s) URL, "
                               f"got {url!r}", where=backend,
                               hint='e.g. url = "http://127.0.0.1:4242"')
        self.url = url
        self.token_env = str(self.options.get("token_env") or DEFAULT_TOKEN_ENV)
        self.token_file = path_option(self.options, "token_file")
        self.project = str(self.options.get("project") or "default")
        self.client_token_env = str(self.options.get("client_token_env") or "")
        self.client_token_file = path_option(self.options, "client_token_file")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self._http: httpx.Client | None = None
        self._token_source = f"environment variable {self.token_env}"

    # -- client ---------------------------------------------------------------------------

    def open(self) -> None:
        """Read the admin token and build the HTTP client (no request is sent).

        Raises:
            AuthError: No token in the environment variable or the token file.
        """
        if self._http is not None:
            return
        token, source = read_secret(self.token_env, self.token_file)
        if not token:
            raise AuthError(f"no {PROVIDER} admin token for backend {self.backend!r}: "
                            f"{source} is not set", where=self.backend,
                            hint=f"export {self.token_env}=<admin API token>; for the "
                            "sandbox run `killswitch sandbox start`")
        self._token_source = source
        self._http = httpx.Client(base_url=self.url, timeout=self.timeout,
                                  headers={"Authorization": token,
                                           "Accept": "application/json",
                                           "User-Agent": user_agent(self.run_id)},
                                  follow_redirects=False)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> httpx.Client:
        """The admin API client, opened on first use."""
        if self._http is None:
            self.open()
        assert self._http is not None
        return self._http

    def _errors(self, target: str) -> AbstractContextManager[None]:
        return http_errors(PROVIDER, self.backend, target, self.url)

    def _call(self, method: str, path: str, target: str) -> httpx.Response:
        with self._errors(target):
            resp = self.http.request(method, path)
            if resp.status_code >= 400:
                err = error_for(resp, target, self._token_source)
                err.where = self.backend
                raise err
            return resp

    # -- references -----------------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, str, list[str], str]:
        flag = str(ref.get("flag") or "")
        if not flag:
            raise AdapterError("unleash flag reference needs `flag`", where=self.backend)
        project = str(ref.get("project") or self.project)
        raw = ref.get("environments") or ref.get("environment") or []
        envs = [raw] if isinstance(raw, str) else [str(e) for e in raw]
        return project, flag, envs, f"{self.backend}:{project}/{flag}"

    def _path(self, project: str, flag: str) -> str:
        return f"/api/admin/projects/{quote(project, safe='')}/features/{quote(flag, safe='')}"

    def _environments(self, project: str, flag: str, target: str) -> dict[str, bool]:
        """``enabled`` of every environment of the flag, by name."""
        body = self._call("GET", self._path(project, flag), target).json()
        return {str(e["name"]): bool(e.get("enabled")) for e in body.get("environments") or []}

    def _pick(self, state: Mapping[str, bool], envs: list[str], target: str) -> list[str]:
        missing = [e for e in envs if e not in state]
        if missing:
            raise NotFound(f"{target} has no environment {', '.join(missing)} (it has "
                           f"{', '.join(sorted(state)) or 'none'})", where=self.backend)
        return envs or sorted(state)

    # -- phases ---------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Read the flag's environments; one change per environment (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the unleash adapter does not offer {action}",
                               where=self.backend)
        project, flag, wanted, target = self._ref(ref)
        if action == "flag.enable" and not wanted:
            raise AdapterError(f"flag.enable on {target} needs `environments` on the "
                               "reference", where=self.backend,
                               hint="to undo a disable exactly, use `killswitch restore RUN`")
        state = self._environments(project, flag, target)
        envs = self._pick(state, wanted, target)
        word = "on" if action == "flag.enable" else "off"
        return env_flag_changes(self, action, ref, ctx, flag=flag, target=target, state=state,
                                envs=envs, undo={"project": project},
                                note=lambda env: f"turns {flag} {word} in {env}")

    def read(self, change: Change) -> dict[str, Any]:
        """``enabled`` of each environment of the change, now."""
        project, flag, _, target = self._ref(change.ref)
        project = str(change.undo.get("project") or project)
        envs = list(change.undo.get("environments") or change.before or change.after)
        state = self._environments(project, flag, target)
        return {e: state.get(e) for e in envs}

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST ``.../environments/{env}/on|off`` for the change's environment.

        The engine reads the state just before and skips a change already in effect; the
        toggle itself is idempotent (toggling to the current state changes nothing), so a
        retried apply is safe without another read.
        """
        project, flag, _, target = self._ref(change.ref)
        project = str(change.undo.get("project") or project)
        for env, want in change.after.items():
            path = f"{self._path(project, flag)}/environments/{quote(env, safe='')}/" \
                   f"{'on' if want else 'off'}"
            self._call("POST", path, f"{target} in {env}")
        return {"prior": dict(change.before)}

    def _client_state(self, flag: str) -> tuple[str, bool | None] | None:
        """``(environment, enabled)`` as an SDK with the backend token sees the flag."""
        token, _ = read_secret(self.client_token_env, self.client_token_file)
        if not token:
            return None
        env = _token_environment(token)
        with self._errors(f"{flag} (client API)"):
            resp = httpx.get(f"{self.url}/api/client/features", timeout=self.timeout,
                             headers={"Authorization": token, "Accept": "application/json",
                                      "User-Agent": user_agent(self.run_id)})
            if resp.status_code >= 400:
                raise error_for(resp, f"{flag} (client API)", "the backend token")
            for feature in resp.json().get("features") or []:
                if feature.get("name") == flag:
                    return env, bool(feature.get("enabled"))
        return env, None

    def verify(self, change: Change) -> Verdict:
        """Admin API read-back, plus the client API as an SDK sees it when a token is set."""
        _, flag, _, _ = self._ref(change.ref)
        state = self.read(change)
        shown = ", ".join(f"{e} {'on' if v else 'off'}" for e, v in sorted(state.items()))
        ok_word = "off" if change.action == "flag.disable" else "restored"
        if state != change.after:
            return Verdict(False, "live" if change.action == "flag.disable" else "off",
                           f"admin API: {flag} is {shown}; expected "
                           + ", ".join(f"{e} {'on' if v else 'off'}"
                                       for e, v in sorted(change.after.items())))
        detail = f"admin API: {flag} is {shown}"
        client = self._client_state(flag)
        if client is not None and client[0] in change.after:
            env, want = client[0], change.after[client[0]]
            deadline = time.monotonic() + 3.0
            while bool(client[1]) != want and time.monotonic() < deadline:
                time.sleep(0.2)  # the client API may lag the admin API by a revision
                client = self._client_state(flag) or client
            seen = bool(client[1])
            if seen != want:
                return Verdict(False, "live" if not want else "off",
                               f"{detail}; but the client API ({env}) still evaluates it "
                               f"{'on' if seen else 'off'}")
            detail += f"; client API ({env} SDK token) evaluates it {'on' if seen else 'off'}"
        return Verdict(True, ok_word, detail)

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that puts back exactly the prior ``enabled`` of each environment."""
        return env_flag_inverse(change, applied)
