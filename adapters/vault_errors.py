"""Vault / OpenBao errors: hvac and requests exceptions mapped to AdapterError subclasses.

The hvac adapter below keeps the HTTP status and Retry-After on the raised error (hvac drops
response headers), so throttling is retried after the server's own delay.
"""

from __future__ import annotations

from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import requests

from adapters.common import parse_retry_after
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unavailable,
)

__all__ = ["RetryAfterAdapter", "translate_error"]


# hvac ships no type information (no stubs, no py.typed): its JSONAdapter is Any to mypy
class RetryAfterAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """JSONAdapter that keeps the status and Retry-After header on the raised VaultError."""

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)
        except hvac.exceptions.VaultError as exc:
            exc.ks_status = response.status_code
            exc.ks_retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise


def translate_error(exc: BaseException, target: str, url: str) -> AdapterError | None:
    """Map an hvac / requests exception to the matching :class:`AdapterError`.

    The message carries the provider's own words and the target, never a token or a value.

    Args:
        exc: The driver exception.
        target: Human-readable target (``secret/ai/bot``, ``token accessor ...``).
        url: The Vault server URL, for connection errors.

    Returns:
        The adapter error, or None when ``exc`` is not a driver error.
    """
    if isinstance(exc, hvac.exceptions.VaultError):
        status = getattr(exc, "ks_status", None)
        retry_after = getattr(exc, "ks_retry_after", None)
        said = ", ".join(str(e).strip() for e in exc.errors) if exc.errors else ""
        said = said or type(exc).__name__
        msg = f"Vault refused the call on {target}: {said}"
        kw: dict[str, Any] = {"status": status}
        if isinstance(exc, hvac.exceptions.Forbidden):
            return PermissionDenied(
                msg, hint="check that the token is valid and its policy grants the "
                "capabilities listed by `killswitch` for this action", **kw)
        if isinstance(exc, hvac.exceptions.Unauthorized):
            return AuthError(msg, hint="the Vault token was rejected; log in again", **kw)
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return NotFound(f"not found in Vault: {target} ({said})", **kw)
        if isinstance(exc, hvac.exceptions.RateLimitExceeded):
            return RateLimited(msg, retry_after=retry_after, **kw)
        if isinstance(exc, hvac.exceptions.VaultNotInitialized | hvac.exceptions.VaultDown):
            return Unavailable(f"Vault at {url} is unavailable (sealed, standby or not "
                               f"initialised) for {target}: {said}", retry_after=retry_after, **kw)
        if isinstance(exc, hvac.exceptions.InternalServerError | hvac.exceptions.BadGateway):
            return Unavailable(msg, retry_after=retry_after, **kw)
        return AdapterError(msg, **kw)
    if isinstance(exc, requests.Timeout):
        return Timeout(f"Vault at {url} did not answer in time for {target}")
    if isinstance(exc, requests.exceptions.SSLError):
        return AdapterError(f"TLS handshake with Vault at {url} failed for {target}",
                            hint="fix the CA bundle, or set verify_tls = false for a lab server")
    if isinstance(exc, requests.ConnectionError):
        return Unavailable(f"cannot reach Vault for {target}: is the Vault server at {url} "
                           "running?")
    return None
