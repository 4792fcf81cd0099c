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

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from adapters.base import ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import (
    env_flag_changes,
    env_flag_inverse,
    path_option,
    seconds_option,
)
from adapters.common import read_secret as _read_secret
from adapters.http import Credential, HttpApi, url_option
from adapters.retry import NotYet, poll
from adapters.specs.flags import UNLEASH, UnleashOptions
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    PermissionDenied,
)

__all__ = ["UnleashAdapter", "UnleashApi", "read_secret"]

PROVIDER = "Unleash"
DEFAULT_TOKEN_ENV = "UNLEASH_ADMIN_TOKEN"
DEFAULT_TIMEOUT = 30.0
CLIENT_LAG = 3.0
"""Seconds verify waits for the client API to agree with the admin API (a revision)."""


class UnleashApi(HttpApi):
    """Unleash's Admin and client APIs (errors ``{"name", "message"}``)."""

    NOT_FOUND: ClassVar[str] = "not found in {provider}: {target} ({said})"


def read_secret(env: str, file: Path | None) -> tuple[str, str]:
    """``(value, where it came from)`` from ``$env`` or ``file``; ``("", description)``."""
    return _read_secret(env, file, "token file")


def _token_environment(token: str) -> str:
    """The environment of an Unleash backend token ``project:environment.secret``."""
    head = token.split(".", 1)[0]
    return head.split(":", 1)[1] if ":" in head else ""


def _admin(source: str) -> Credential:
    return Credential(f"the admin token from {source}",
                      f"set {source} to a valid admin API token or personal access token")


class UnleashAdapter(Adapter):
    """Switch Unleash feature flags off per environment (undo: on where they were on).

    ``flag.disable`` turns the flag off in each chosen environment that is on, recording the
    prior ``enabled`` of each; its inverse ``flag.enable`` turns back on exactly those.
    """

    name: ClassVar[str] = "unleash"
    Options: ClassVar[type[UnleashOptions]] = UnleashOptions
    OPTIONS: ClassVar[Mapping[str, str]] = UnleashOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = UNLEASH.actions  # adapters/specs/flags.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.url = url_option(backend, self.options.get("url"), option="url",
                              example="http://127.0.0.1:4242")
        self.token_env = str(self.options.get("token_env") or DEFAULT_TOKEN_ENV)
        self.token_file = path_option(self.options, "token_file")
        self.project = str(self.options.get("project") or "default")
        self.client_token_env = str(self.options.get("client_token_env") or "")
        self.client_token_file = path_option(self.options, "client_token_file")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self.api = UnleashApi(self, PROVIDER, self.url, timeout=self.timeout, hints={
            PermissionDenied: "the token needs UPDATE_FEATURE_ENVIRONMENT in the "
                              "environment; change requests may also block direct toggles"})
        self.api.credential = _admin(f"environment variable {self.token_env}")

    # -- client ---------------------------------------------------------------------------

    def open(self) -> None:
        """Read the admin token and build the HTTP client (no request is sent).

        Raises:
            AuthError: No token in the environment variable or the token file.
        """
        if self.api.opened:
            return
        token, source = read_secret(self.token_env, self.token_file)
        if not token:
            raise AuthError(f"no {PROVIDER} admin token for backend {self.backend!r}: "
                            f"{source} is not set", where=self.backend,
                            hint=f"export {self.token_env}=<admin API token>; for the "
                            "sandbox run `killswitch sandbox start`")
        self.api.open({"Authorization": token, "Accept": "application/json"},
                      credential=_admin(source))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.api.close()

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
        body = self.api.request("GET", self._path(project, flag), target) or {}
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
            self.api.send("POST", path, f"{target} in {env}")
        return {"prior": dict(change.before)}

    def _client_token(self) -> tuple[str, str, str] | None:
        """``(token, its environment, where it came from)`` of the backend (SDK) token."""
        token, source = read_secret(self.client_token_env, self.client_token_file)
        return (token, _token_environment(token), source) if token else None

    def _client_enabled(self, flag: str, token: str, source: str) -> bool | None:
        """``enabled`` of the flag as an SDK with the backend token sees it (None: absent)."""
        target = f"{flag} (client API)"
        resp = self.api.send("GET", "/api/client/features", target, check=False,
                             headers={"Authorization": token, "Accept": "application/json"})
        if resp.status_code >= 400:
            raise self.api.error(resp, target, Credential(
                f"the backend token from {source}",
                f"set {source} to a backend (SDK) token of the environment"))
        for feature in self.api.decode(resp, target).get("features") or []:
            if feature.get("name") == flag:
                return bool(feature.get("enabled"))
        return None

    def verify(self, change: Change) -> Verdict:
        """Admin API read-back, plus the client API as an SDK sees it when a token is set
        (waiting up to :data:`CLIENT_LAG` seconds for it to catch up)."""
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
        client = self._client_token()
        if client is None or client[1] not in change.after:
            return Verdict(True, ok_word, detail)
        token, env, source = client
        want = bool(change.after[env])
        seen: list[bool] = []

        def agrees() -> bool:
            seen[:] = [bool(self._client_enabled(flag, token, source))]
            if seen[0] != want:
                raise NotYet(f"client API still {seen[0]}")
            return True

        try:
            poll(agrees, timeout=CLIENT_LAG, wait_initial=0.2, wait_max=0.2)
        except NotYet:
            return Verdict(False, "live" if not want else "off",
                           f"{detail}; but the client API ({env}) still evaluates it "
                           f"{'on' if seen[0] else 'off'}")
        return Verdict(True, ok_word, f"{detail}; client API ({env} SDK token) evaluates it "
                       f"{'on' if want else 'off'}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that puts back exactly the prior ``enabled`` of each environment."""
        return env_flag_inverse(change, applied)
