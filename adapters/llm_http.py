"""Shared httpx plumbing of the LLM provider admin adapters (OpenAI, Anthropic).

The provider-neutral parts (Retry-After, status and transport error mapping, key files)
live in :mod:`adapters.common`; ``retry_after`` and ``translate_error`` are re-exported.

What lives here, so both adapters behave alike::

    admin_key(...)        the console's admin key: env var NAME first, then a key file
    build_client(...)     httpx.Client with base_url, timeout and the given headers (auth,
                          version, ``User-Agent: killswitch/<version> run/<run id>``)
    ProviderApi           one provider's admin API: request() returns JSON or raises typed
    error_for(...)        an error response -> AuthError / PermissionDenied / NotFound /
                          Conflict / RateLimited / Unavailable / AdapterError, retryable
                          exactly where both official SDKs retry (below)
    translate_error(...)  httpx exceptions -> Timeout / Unavailable (naming the URL)
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
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from adapters.base import Verdict
from adapters.common import (
    http_errors,
    require_key,
    retry_after,
    status_error,
    translate_error,
)
from console.errors import AdapterError

__all__ = [
    "DEFAULT_TIMEOUT",
    "ProviderApi",
    "admin_key",
    "build_client",
    "error_for",
    "probe_key",
    "provider_message",
    "retry_after",
    "translate_error",
]

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


def build_client(base_url: str, timeout: float, headers: Mapping[str, str]) -> httpx.Client:
    """An httpx client for one provider API (no request is sent)."""
    return httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                        headers=dict(headers), follow_redirects=False)


def provider_message(response: httpx.Response) -> str:
    """The provider's own error message from its JSON error shape, else the reason phrase.

    OpenAI: ``{"error": {"message", "type", "code"}}``; Anthropic:
    ``{"type": "error", "error": {"type", "message"}}``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            kind = err.get("type") or err.get("code")
            msg = str(err["message"]).strip()
            return f"{msg} ({kind})" if kind else msg
        if isinstance(err, str) and err:
            return err
        if body.get("message"):
            return str(body["message"])
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _request_id(response: httpx.Response) -> str:
    rid = response.headers.get("x-request-id") or response.headers.get("request-id") or ""
    return f" [request id {rid}]" if rid else ""


def error_for(response: httpx.Response, provider: str, target: str) -> AdapterError:
    """The typed error for a non-2xx answer, with the provider's message and the target.

    Retryable where the official SDKs retry: ``x-should-retry`` first, then 408, 409, 429
    and 5xx (see the module docstring).
    """
    said = provider_message(response) + _request_id(response)
    err = status_error(
        response.status_code, f"{provider} refused the call on {target}: {said}",
        not_found=f"not found at {provider}: {target} ({said})",
        auth_hint=f"the {provider} admin key was rejected: check the "
        "environment variable / key file the backend names",
        denied_hint="the admin key lacks the permission listed by `killswitch` for this action",
        retry=retry_after(response.headers), conflict_retryable=True)
    if response.status_code == 408:
        err.retryable, err.retry_after = True, retry_after(response.headers)
    should = response.headers.get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        err.retryable = should == "true"
    return err


class ProviderApi:
    """One provider's admin API over httpx: JSON in, JSON out, typed errors.

    Args:
        provider: Display name (``OpenAI``, ``Anthropic``).
        backend: Configured backend name (``where`` of errors).
        base_url: API root; request paths are relative to it.
        timeout: Seconds per call.
        headers: Auth and version headers of every admin call.
    """

    def __init__(self, provider: str, backend: str, base_url: str, timeout: float,
                 headers: Mapping[str, str]) -> None:
        self.provider = provider
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self.client = build_client(self.base_url, timeout, headers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()

    def errors(self, target: str) -> AbstractContextManager[None]:
        """Translate transport exceptions raised inside into typed adapter errors."""
        return http_errors(self.provider, self.backend, target, self.base_url)

    def request(self, method: str, path: str, target: str, *, body: Any = None,
                missing_ok: bool = False) -> dict[str, Any] | None:
        """Send one admin call.

        Args:
            method: HTTP method.
            path: Path relative to the base URL (``/organization/...``).
            target: Human-readable target for errors.
            body: JSON body, if any.
            missing_ok: Return None on 404 instead of raising NotFound.

        Returns:
            The decoded JSON object (empty dict for an empty body), or None on a tolerated 404.

        Raises:
            AdapterError: A typed subclass for every failure.
        """
        with self.errors(target):
            resp = self.client.request(method, path, json=body)
            if resp.status_code == 404 and missing_ok:
                return None
            if resp.status_code >= 400:
                err = error_for(resp, self.provider, target)
                err.where = self.backend
                raise err
            if not resp.content:
                return {}
            try:
                data = resp.json()
            except ValueError as exc:
                raise AdapterError(f"{self.provider} answered non-JSON for {target} "
                                   f"(HTTP {resp.status_code})", where=self.backend) from exc
            return data if isinstance(data, dict) else {"data": data}


def probe_key(provider: str, base_url: str, path: str, headers: Mapping[str, str],
              value: str, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Proof of death: one GET with the application's credentials in ``headers``.

    Needs no admin key: it calls the API exactly as the application holding ``value`` would.

    Returns:
        ``Verdict(True, "revoked")`` on 401/403, ``Verdict(False, "live")`` on 2xx,
        ``Verdict(False, "unknown", reason)`` otherwise. No text holds ``value``.
    """
    url = base_url.rstrip("/")
    try:
        resp = httpx.get(f"{url}{path}", headers=dict(headers), timeout=timeout,
                         follow_redirects=False)
    except httpx.HTTPError as exc:
        mapped = translate_error(exc, provider, "the probe", url)
        return Verdict(False, "unknown", _scrub(mapped.msg if mapped else type(exc).__name__,
                                                value))
    status = resp.status_code
    if status in (401, 403):
        return Verdict(True, "revoked", f"{provider} GET {path} with the key answered "
                       f"{status}: the key is refused")
    if 200 <= status < 300:
        return Verdict(False, "live", f"{provider} GET {path} with the key answered "
                       f"{status}: the key still works")
    return Verdict(False, "unknown", _scrub(
        f"{provider} GET {path} answered {status}: {provider_message(resp)}", value))


def _scrub(text: str, value: str) -> str:
    return text.replace(value, "[key]") if value else text
