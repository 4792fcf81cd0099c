"""The LLM provider layer (OpenAI, Anthropic) on top of :mod:`adapters.http`.

What lives here, so the admin and batch adapters of both providers behave alike::

    admin_key(...)        the console's admin key: env var NAME first, then a key file
    admin_hints(...)      the hints of a rejected admin call (401, 403)
    ProviderApi           :class:`~adapters.http.HttpApi` with the providers' retry rules
    probe_key(...)        proof of death: 401/403 revoked, 2xx live, else unknown

Errors carry the provider's own message (``{"error": {"message": ...}}``, the shape both
providers use) and the target, never a request header, a key or a key value.

Retryable, as both official SDKs decide (``BaseClient._should_retry`` in openai-python 3.54
and anthropic-sdk-python 2.12 ``_base_client.py``): a response header ``x-should-retry:
true|false`` wins; else 408, 409 (a conflicting concurrent change, "lock timeouts"), 429 and
every 5xx are retried. The engine then waits as for any retryable error (Retry-After first).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import httpx

from adapters.base import Verdict
from adapters.common import require_key
from adapters.http import STATUS_ERRORS, Credential, HttpApi, StatusRule
from console.errors import AdapterError, AuthError, Conflict, PermissionDenied

__all__ = ["DEFAULT_TIMEOUT", "ProviderApi", "admin_hints", "admin_key", "probe_key"]

DEFAULT_TIMEOUT = 30.0
"""Seconds an admin or probe call may take when the backend sets no ``timeout``."""


def admin_key(backend: str, provider: str, key_env: str, key_file: Path | None) -> str:
    """The console's admin key: ``$key_env``, else the first line of ``key_file``.

    Raises:
        AuthError: Neither holds a key; the message names the variable (never a value).
    """
    return require_key(
        backend, provider, key_env, key_file, what="admin key", file_option="admin_key_file",
        hint=f"export {key_env}=<admin key> (an organization admin key, not a project key); "
        "for the sandbox run `killswitch sandbox start`")


class ProviderApi(HttpApi):
    """An OpenAI or Anthropic API: 408 and 409 retried, ``x-should-retry`` obeyed."""

    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = {
        **STATUS_ERRORS, 408: (AdapterError, True), 409: (Conflict, True)}

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of the status map; ``x-should-retry: true|false`` decides last."""
        err = super().error(response, target, credential)
        should = response.headers.get("x-should-retry", "").strip().lower()
        if should in ("true", "false"):
            err.retryable = should == "true"
        return err


def probe_key(api: HttpApi, path: str, headers: Mapping[str, str], value: str) -> Verdict:
    """Proof of death: one GET with the application's credentials in ``headers``.

    It calls the API exactly as the application holding ``value`` would: the console's admin
    credentials do not go along (:meth:`~adapters.http.HttpApi.probe`).

    Returns:
        ``Verdict(True, "revoked")`` on 401/403, ``Verdict(False, "live")`` on 2xx,
        ``Verdict(False, "unknown", reason)`` otherwise. No text holds ``value``.
    """
    provider = api.provider
    try:
        resp = api.probe("GET", path, headers)
    except httpx.HTTPError as exc:
        return Verdict(False, "unknown", _scrub(api.transport_error(exc, "the probe").msg,
                                                value))
    status = resp.status_code
    if status in (401, 403):
        return Verdict(True, "revoked", f"{provider} GET {path} with the key answered "
                       f"{status}: the key is refused")
    if 200 <= status < 300:
        return Verdict(False, "live", f"{provider} GET {path} with the key answered "
                       f"{status}: the key still works")
    return Verdict(False, "unknown", _scrub(
        f"{provider} GET {path} answered {status}: {api.said(resp)}", value))


def _scrub(text: str, value: str) -> str:
    return text.replace(value, "[key]") if value else text


def admin_hints(provider: str) -> dict[type[AdapterError], str]:
    """Hints of a rejected admin call: which key to check, which permission is missing."""
    return {AuthError: f"the {provider} admin key was rejected: check the environment "
                       "variable / key file the backend names",
            PermissionDenied: "the admin key lacks the permission listed by `killswitch` "
                              "for this action"}
