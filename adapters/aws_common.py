"""Shared AWS plumbing for the ``aws-*`` adapters: client factory, error translator, helpers.

Backend options (every ``aws-*`` backend)::

    [backends.aws-sandbox-sm]
    type = "aws-secrets"                  # or aws-ssm / aws-iam
    region = "us-east-1"                  # default: the profile's / AWS_REGION, else us-east-1
    endpoint_url = "http://127.0.0.1:5055"  # moto or a VPC endpoint (optional)
    profile = "incident-response"         # named profile (optional)
    credentials_file = ".sandbox/aws-credentials"  # shared-credentials file for the profile,
                                          # like ~/.aws/credentials (optional; the sandbox)
    access_key_env = "KS_AWS_ACCESS_KEY_ID"      # env var NAMES (optional; sandbox)
    secret_key_env = "KS_AWS_SECRET_ACCESS_KEY"
    session_token_env = "KS_AWS_SESSION_TOKEN"   # optional

Without ``access_key_env`` the console's credentials come from botocore's standard chain
(environment, profile, SSO, instance role). botocore's own retries are off
(``total_max_attempts = 1``): the engine retries, and every attempt starts with a read.

Errors (:func:`translate_error`): throttling codes -> RateLimited (with Retry-After when sent),
5xx and connection failures -> Unavailable, timeouts -> Timeout, not-found codes -> NotFound,
access-denied codes -> PermissionDenied, rejected or missing credentials -> AuthError,
invalid-state codes -> Conflict; the message always carries AWS's own words and the target.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from adapters.base import map_errors
from adapters.common import parse_retry_after, user_agent
from adapters.retry import retry_call
from adapters.secretvalue import json_object, pick_field
from console.errors import (
    AdapterError,
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unavailable,
)

T = TypeVar("T")

__all__ = [
    "AwsClients",
    "TOMBSTONE_BY",
    "digest",
    "finish",
    "is_tombstone",
    "pick_value",
    "string_fields",
    "tombstone_value",
    "translate_error",
]

TOMBSTONE_BY = "killswitch"
"""The ``revoked_by`` marker of a tombstone value."""

_THROTTLE = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "TooManyUpdates",
    "RequestLimitExceeded", "SlowDown",
    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded",
})
_NOT_FOUND = frozenset({
    "ResourceNotFoundException", "NoSuchEntity", "NoSuchEntityException",
    "ParameterNotFound", "ParameterVersionNotFound", "NotFoundException",
    # EC2 answers 400 with a dotted code for a missing security group (errors-overview:
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)
    "InvalidGroup.NotFound",
})
_DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
    "AuthorizationError", "AuthorizationErrorException",
})
_AUTH = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
    "ExpiredTokenException", "SignatureDoesNotMatch", "InvalidSignatureException",
    "IncompleteSignature", "MissingAuthenticationToken", "InvalidAccessKeyId",
})
_CONFLICT = frozenset({
    "InvalidRequestException", "ResourceExistsException", "ConflictException",
    "ParameterAlreadyExists", "EntityAlreadyExists", "ParameterMaxVersionLimitExceeded",
    "PreconditionNotMetException", "DeleteConflict", "LimitExceeded",
    "LimitExceededException",  # quotas, not throttling: retrying does not help
})
_UNAVAILABLE = frozenset({
    "InternalFailure", "InternalServiceError", "InternalServerError", "ServiceFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalServiceErrorException",
})


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    return parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))


def translate_error(exc: BaseException, target: str, service: str,
                    endpoint: str = "") -> AdapterError | None:
    """Map a botocore exception to the matching :class:`AdapterError`.

    Args:
        exc: The driver exception.
        target: Human-readable target (secret name, parameter, user); never a value.
        service: AWS service name for the message (``Secrets Manager``).
        endpoint: The endpoint override, if any, for connection errors.

    Returns:
        The adapter error, or None when ``exc`` is not a botocore error.
    """
    from botocore import exceptions as bx

    where = f" at {endpoint}" if endpoint else ""
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error") or {}
        meta = exc.response.get("ResponseMetadata") or {}
        code = str(err.get("Code") or "")
        said = " ".join(str(err.get("Message") or err.get("message") or code).split())
        status = int(meta.get("HTTPStatusCode") or 0) or None
        retry_after = _retry_after(meta.get("HTTPHeaders") or {})
        op = getattr(exc, "operation_name", "") or ""
        msg = f"{service} refused {op} on {target}: {code}: {said}"
        kw: dict[str, Any] = {"status": status}
        if code in _THROTTLE or status == 429:
            return RateLimited(msg, retry_after=retry_after, **kw)
        if code in _NOT_FOUND or (status == 404 and code not in _AUTH):
            return NotFound(f"not found in {service}: {target} ({code}: {said})", **kw)
        if code in _AUTH:
            return AuthError(msg, hint="the console's AWS credentials were rejected: refresh "
                             "them (aws sso login, new session token)", **kw)
        if code in _DENIED or status == 403:
            return PermissionDenied(msg, hint="grant the console's role the permissions "
                                    "listed for this action", **kw)
        if code in _UNAVAILABLE or (status is not None and status >= 500):
            return Unavailable(msg, retry_after=retry_after, **kw)
        if code in _CONFLICT:
            return Conflict(msg, **kw)
        return AdapterError(msg, **kw)
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError):
        return Timeout(f"{service}{where} did not answer in time for {target}")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError |
                  bx.HTTPClientError):
        return Unavailable(f"cannot reach {service}{where} for {target}: {exc}")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError |
                  bx.ProfileNotFound | bx.TokenRetrievalError |
                  bx.CredentialRetrievalError):
        return AuthError(f"no usable AWS credentials for {target}: {exc}",
                         hint="configure a profile, environment credentials or SSO for the "
                         "console (never put keys in the inventory)")
    if isinstance(exc, bx.NoRegionError):
        return AdapterError(f"no AWS region for {target}: set option region")
    if isinstance(exc, bx.BotoCoreError):
        return AdapterError(f"{service} call failed for {target}: {exc}")
    return None


_LOADER: Any = None


def _shared_loader() -> Any:
    """One botocore data loader per process: it caches the parsed service models (the
    JSON files behind every client), which a fresh botocore session would parse again for
    each backend. Credentials and config stay per backend (one session each)."""
    global _LOADER  # noqa: PLW0603 - a process-wide cache
    if _LOADER is None:
        from botocore.loaders import create_loader

        _LOADER = create_loader()
    return _LOADER

class AwsClients:
    """A boto3 session built from backend options; one client per service, opened lazily.

    Args:
        backend: Backend name (for error messages).
        options: The backend options (see the module docstring).

    Raises:
        AdapterError: An option has the wrong type. No I/O happens here.
    """

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        self.backend = backend
        self.region = str(options.get("region") or "") or None
        self.endpoint_url = str(options.get("endpoint_url") or "").rstrip("/") or None
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise AdapterError(f"backend {backend!r}: endpoint_url must be an http(s) URL, "
                               f"got {self.endpoint_url!r}", where=backend)
        self.profile = str(options.get("profile") or "") or None
        cf = str(options.get("credentials_file") or "")
        self.credentials_file = os.path.expanduser(cf) if cf else None
        self.access_key_env = str(options.get("access_key_env") or "") or None
        self.secret_key_env = str(options.get("secret_key_env") or "") or None
        self.session_token_env = str(options.get("session_token_env") or "") or None
        try:
            self.timeout = float(options.get("timeout") or 10.0)
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"backend {backend!r}: timeout must be a number",
                               where=backend) from exc
        self.pool_size = max(10, int(options.get("max_concurrency") or 0))
        """Connections per client: the backend's concurrency cap (botocore's default 10 at
        least), so that calls up to the cap never wait for a pooled connection."""
        self._clients: dict[str, Any] = {}
        self.run_id_source: Callable[[], str] = lambda: ""
        """Where the run id comes from (the adapter's ``run_id``: it changes per phase)."""

    def _name_the_run(self, request: Any, **_: Any) -> None:
        """``before-send``: append ``killswitch/<version> run/<run id>`` to the User-Agent so
        CloudTrail's ``userAgent`` shows which run acted (not a signed header in SigV4)."""
        ours = user_agent(self.run_id_source())
        raw = request.headers.get("User-Agent") or ""
        current = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if ours not in current:
            request.headers["User-Agent"] = f"{current} {ours}".strip()

    def _credentials(self) -> dict[str, str]:
        if not self.access_key_env:
            return {}
        key = os.environ.get(self.access_key_env, "")
        secret = os.environ.get(self.secret_key_env or "", "")
        if not key or not secret:
            missing = [n for n, v in ((self.access_key_env, key),
                                      (self.secret_key_env or "secret_key_env", secret)) if not v]
            raise AuthError(f"no AWS credentials for backend {self.backend!r}: environment "
                            f"variable(s) {', '.join(missing)} not set", where=self.backend,
                            hint="export them, or drop access_key_env to use the standard "
                            "chain (profile, SSO, role)")
        out = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        token = os.environ.get(self.session_token_env or "", "")
        if token:
            out["aws_session_token"] = token
        return out

    def client(self, service: str) -> Any:
        """The boto3 client for ``service`` (built on first use; no request is sent)."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            with map_errors(self.backend, lambda e: translate_error(e, self.backend, service)):
                import botocore.session

                core = botocore.session.Session()
                core.register_component("data_loader", _shared_loader())
                if self.credentials_file:
                    if not os.path.isfile(self.credentials_file):
                        raise AuthError(f"AWS credentials file {self.credentials_file} does "
                                        "not exist", where=self.backend, hint="for the "
                                        "sandbox run `killswitch sandbox start`")
                    core.set_config_variable("credentials_file", self.credentials_file)
                session = boto3.session.Session(profile_name=self.profile,
                                                botocore_session=core, **self._credentials())
                region = self.region or session.region_name or "us-east-1"
                self._clients[service] = session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url,
                    config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                  connect_timeout=self.timeout, read_timeout=self.timeout,
                                  max_pool_connections=self.pool_size))
                self._clients[service].meta.events.register("before-send",
                                                            self._name_the_run)
        return self._clients[service]

    def close(self) -> None:
        """Close every client's connection pool."""
        for c in self._clients.values():
            close = getattr(c, "close", None)
            if close is not None:
                close()
        self._clients.clear()

    def errors(self, target: str, service: str) -> AbstractContextManager[None]:
        """Context manager translating botocore errors about ``target``."""
        return map_errors(self.backend,
                          lambda e: translate_error(e, target, service, self.endpoint_url or ""))


def finish(call: Callable[[], T], target: str, service: str, attempts: int = 8) -> T:
    """Run a follow-up call of a multi-call apply, retrying throttling / 5xx locally.

    Once the first write of an apply has happened, the rest must follow in the same apply:
    an error escaping half-way would leave a state that is neither the plan's ``before`` nor
    its ``after``, and the engine would then refuse the retry as drift. Retries go through
    :func:`adapters.retry.retry_call`, with :func:`translate_error` deciding what is
    retryable and how long AWS asked to wait.

    Raises:
        botocore errors: The last one, when every attempt failed or it is not retryable.
    """
    return retry_call(call, attempts=attempts,
                      classify=lambda exc: translate_error(exc, target, service))


def digest(value: str | bytes | None) -> str:
    """SHA-256 of a value, hex; used in memory only to compare values without keeping them."""
    if value is None:
        return ""
    raw = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()


def tombstone_value(run_id: str, op_id: str, **extra: str) -> str:
    """The tombstone written over a revoked copy: JSON naming the run, never a secret."""
    return json.dumps({"revoked_by": TOMBSTONE_BY, "run": run_id or "-", "op": op_id, **extra},
                      sort_keys=True, separators=(",", ":"))


def is_tombstone(value: str | None) -> dict[str, Any] | None:
    """The parsed tombstone when ``value`` is one written by Killswitch, else None."""
    if not value or not value.startswith("{"):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("revoked_by") == TOMBSTONE_BY:
        return data
    return None


def pick_value(raw: str | None, field: str | None) -> str | None:
    """The key inside a stored value, per :meth:`adapters.base.Adapter.reveal`.

    A JSON object yields ``field`` if named, else its only string value, else the first of
    ``api_key``, ``key``, ``token``, ``value`` (:func:`adapters.secretvalue.pick_field`);
    anything else is returned as is (None when a ``field`` was asked for). A tombstone
    holds no key.
    """
    if raw is None or is_tombstone(raw):
        return None
    data = json_object(raw)
    if data is None:
        return None if field else raw
    return pick_field(data, field)


def string_fields(raw: str) -> list[tuple[str | None, str]]:
    """Every (field, value) a stored value holds, for scans: JSON string fields or the whole."""
    try:
        data = json.loads(raw) if raw.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        return [(k, v) for k, v in data.items() if isinstance(v, str) and v]
    return [(None, raw)] if raw else []

