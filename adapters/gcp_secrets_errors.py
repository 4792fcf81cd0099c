"""Google Secret Manager errors: google-api-core, google-auth and requests exceptions mapped to
AdapterError subclasses (the REST transport's status and Retry-After kept)."""

from __future__ import annotations

import google.api_core.exceptions as gexc
import google.auth.exceptions
import requests

from adapters.common import parse_retry_after
from adapters.gcp_keys import google_error
from console.errors import AdapterError, AuthError, Timeout, Unavailable

__all__ = ["status_name", "translate_error"]


def status_name(exc: gexc.GoogleAPICallError) -> str:
    """Canonical status (FAILED_PRECONDITION, ...) from a REST error body or a gRPC code."""
    resp = exc.response
    if isinstance(resp, requests.Response):
        try:
            return str((resp.json().get("error") or {}).get("status") or "")
        except (ValueError, AttributeError):
            return ""
    code = getattr(exc, "grpc_status_code", None)
    return str(getattr(code, "name", "") or "")


def translate_error(exc: BaseException, target: str, endpoint: str) -> AdapterError | None:
    """Map a google-api-core / google-auth / requests exception to an :class:`AdapterError`.

    Args:
        exc: The driver exception.
        target: The secret (name) the call was about.
        endpoint: The API endpoint, for connection errors.

    Returns:
        The adapter error, or None when ``exc`` is not a driver error.
    """
    if isinstance(exc, gexc.GoogleAPICallError):
        resp = exc.response
        retry_after = parse_retry_after(resp.headers.get("Retry-After")) \
            if isinstance(resp, requests.Response) else None
        status = exc.code if isinstance(exc.code, int) else None
        return google_error(status, status_name(exc), exc.message, target,
                            retry_after=retry_after, api="Secret Manager")
    if isinstance(exc, gexc.RetryError):
        return Timeout(f"Secret Manager retries ran out for {target}: {exc.message}")
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return AuthError(f"no Google credentials for Secret Manager ({target}): {exc}",
                         hint="run `gcloud auth application-default login` or set "
                         "GOOGLE_APPLICATION_CREDENTIALS; for the sandbox set anonymous = true")
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return AuthError(f"Google credentials could not be refreshed for {target}: {exc}",
                         hint="run `gcloud auth application-default login`")
    if isinstance(exc, requests.Timeout):
        return Timeout(f"Secret Manager at {endpoint} did not answer in time for {target}")
    if isinstance(exc, requests.exceptions.SSLError):
        return AdapterError(f"TLS handshake with Secret Manager at {endpoint} failed for "
                            f"{target}", hint='a local endpoint needs the scheme: '
                            'endpoint = "http://127.0.0.1:8383"')
    if isinstance(exc, requests.ConnectionError | google.auth.exceptions.TransportError):
        return Unavailable(f"cannot reach Secret Manager for {target}: is {endpoint} up?")
    return None
