"""GCP IAM service-account keys (the keys Vertex AI callers hold), over the IAM REST API (httpx).

``credential.disable`` disables the key(s) (undo: ``credential.enable`` enables exactly those);
``credential.destroy`` deletes them, which is permanent. There is no reveal: the private key
material is only returned when a key is created. ``google-cloud-iam`` ships gRPC transports
only, so this adapter speaks REST itself. Every request carries
``User-Agent: killswitch/<version> run/<run id>`` (Cloud Audit Logs record it as
``requestMetadata.callerSuppliedUserAgent``), so the provider's log shows which run acted.

Backend options::

    [backends.gcp-keys]
    type = "gcp-keys"
    endpoint = "https://iam.googleapis.com"   # default; "http://127.0.0.1:8383" for the sandbox
    anonymous = false                        # sandbox only: send no Authorization header
    request_timeout = 30.0                   # seconds per HTTP call
    # otherwise the console authenticates with Google ADC (scope cloud-platform):
    # GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, metadata server

Inventory references::

    {backend = "gcp-keys", service_account = "sa@p.iam.gserviceaccount.com", key = "<key id>"}
    {backend = "gcp-keys", service_account = "sa@p.iam.gserviceaccount.com"}  # all user keys

State shape (``before`` / ``after`` / :meth:`GcpServiceAccountKeyAdapter.read`)::

    {"keys": {"<key id>": {"disabled": false}}}          a deleted key: {"deleted": true}

Example runbook step::

    [[steps]]
    id = "disable-gcp-keys"
    action = "credential.disable"
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any, ClassVar, TypeVar

import httpx

from adapters import gcp_keys_rotation
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import (
    parse_retry_after,
    plan_context,
    seconds_option,
    toggle_inverse,
)
from adapters.evidence import EvidenceSink
from adapters.http import STATUS_ERRORS, Credential, HttpApi, StatusRule, classify, url_option
from adapters.retry import retry_call
from adapters.rotation import ISSUE, RETIRE
from adapters.rotation_help import as_disable, retire_inverse
from adapters.specs.gcp import GCP_KEYS, GcpKeysOptions
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    PermissionDenied,
    Timeout,
)

__all__ = ["GOOGLE_ERRORS", "GcpServiceAccountKeyAdapter", "GoogleApi", "GoogleAuth",
           "google_error", "parse_retry_after", "sandbox_endpoint", "with_completion"]

T = TypeVar("T")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_SA_RE = re.compile(r"^[^@\s/]+@[^@\s/]+$")
_DELETE_NOTE = ("irreversible: a deleted service-account key cannot be recovered; restore "
                "means creating a new key and redistributing it")

# options, reference schema and permissions: adapters/specs/gcp.py

# -- Google APIs over adapters.http (shared with vertex_batch and gcp_secrets) ---------------

GOOGLE_STATUS: Mapping[str, int] = {
    "RESOURCE_EXHAUSTED": 429, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404, "FAILED_PRECONDITION": 409, "ABORTED": 409, "ALREADY_EXISTS": 409,
    "DEADLINE_EXCEEDED": 504, "UNAVAILABLE": 503, "INTERNAL": 500}
"""Google's canonical status names and the HTTP status whose row of the map they take
(https://cloud.google.com/apis/design/errors#handling_errors; FAILED_PRECONDITION, a state
that refuses the call, counts as a Conflict like ABORTED and ALREADY_EXISTS)."""

GOOGLE_ERRORS: Mapping[int, StatusRule] = {**STATUS_ERRORS, 504: (Timeout, True)}
"""The status map of Google APIs: DEADLINE_EXCEEDED (504) is a Timeout."""

GOOGLE_HINTS: Mapping[type[AdapterError], str] = {
    AuthError: "the console's Google credentials were rejected: run `gcloud auth "
               "application-default login` or fix GOOGLE_APPLICATION_CREDENTIALS",
    PermissionDenied: "grant the console's principal the permissions `killswitch` lists "
                      "for this action"}


def google_error(status: int | None, status_name: str, message: str, target: str, *,
                 retry_after: float | None = None, api: str = "Google Cloud") -> AdapterError:
    """The :class:`AdapterError` for a Google API error (HTTP status + canonical status name).

    The canonical name, when Google sends a known one, decides the row of
    :data:`GOOGLE_ERRORS`; else the HTTP status does.

    Args:
        status: HTTP status code.
        status_name: Canonical status (``NOT_FOUND``, ``FAILED_PRECONDITION``, ...) or "".
        message: The provider's message.
        target: What the call was about (for the message).
        retry_after: Seconds from Retry-After, if any (kept on retryable errors).
        api: Which API answered (for the message).
    """
    cls, retryable = classify(GOOGLE_STATUS.get(status_name) or status or 0, GOOGLE_ERRORS)
    said = f"{message} ({status_name})" if status_name else message
    msg = (f"not found in {api}: {target} ({message})" if cls is NotFound
           else f"{api} refused the call on {target}: {said}")
    return cls(msg, retryable=retryable, status=status, hint=GOOGLE_HINTS.get(cls, ""),
               retry_after=retry_after if retryable else None)


class GoogleApi(HttpApi):
    """A Google REST API: Application Default Credentials (:class:`GoogleAuth`) unless
    ``anonymous`` (the sandbox), errors from ``{"error": {"code", "message", "status"}}``."""

    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = GOOGLE_ERRORS

    def __init__(self, adapter: Adapter, provider: str, base_url: str = "", *,
                 timeout: float, anonymous: bool = False) -> None:
        super().__init__(adapter, provider, base_url, timeout=timeout)
        self.auth = None if anonymous else GoogleAuth(adapter.backend)

    def open(self, headers: Mapping[str, str] | None = None, *,
             auth: httpx.Auth | None = None, credential: Credential | None = None) -> None:
        """Load Google ADC unless anonymous, then build the client (no request is sent).

        Raises:
            AuthError: No Google credentials are configured.
        """
        if self.auth is not None and not self.opened:
            self.auth.load()
        super().open(headers, auth=auth or self.auth, credential=credential)

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of a Google error answer (canonical status name first)."""
        try:
            err = response.json().get("error") or {}
        except (ValueError, AttributeError):
            err = {}
        if not isinstance(err, dict):
            err = {"message": str(err)}
        exc = google_error(response.status_code, str(err.get("status") or ""),
                           str(err.get("message") or response.reason_phrase), target,
                           retry_after=self.retry_after(response), api=self.provider)
        exc.where = self.backend
        return exc


class GoogleAuth(httpx.Auth):
    """Google Application Default Credentials (scope ``cloud-platform``) as a bearer token.

    :meth:`load` finds the credentials (GOOGLE_APPLICATION_CREDENTIALS, ``gcloud auth
    application-default login``, the metadata server) without a request; every request then
    carries the token, refreshed under a lock once it has expired.

    Args:
        backend: Backend name (``where`` of errors).
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._creds: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Find the credentials (no request).

        Raises:
            AuthError: No Google credentials are configured.
        """
        if self._creds is not None:
            return
        import google.auth
        import google.auth.exceptions

        try:
            self._creds, _ = google.auth.default(scopes=[SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise AuthError(f"no Google credentials for backend {self.backend!r}: {exc}",
                            where=self.backend,
                            hint="run `gcloud auth application-default login` or set "
                            "GOOGLE_APPLICATION_CREDENTIALS; for the sandbox set "
                            "anonymous = true") from exc

    def token(self) -> str:
        """A valid access token (refreshed when expired).

        Raises:
            AuthError: The credentials cannot be loaded or refreshed.
        """
        self.load()
        with self._lock:
            if not self._creds.valid:
                import google.auth.transport.requests

                try:
                    self._creds.refresh(google.auth.transport.requests.Request())
                except Exception as exc:  # noqa: BLE001 - google-auth raises many kinds
                    raise AuthError(f"cannot get a Google access token for backend "
                                    f"{self.backend!r}: {type(exc).__name__}",
                                    where=self.backend,
                                    hint="run `gcloud auth application-default login`"
                                    ) from exc
            return str(self._creds.token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response,
                                                              None]:
        """Add ``Authorization: Bearer <token>`` to the request."""
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


def with_completion(items: list[str], call: Callable[[str], T], *, attempts: int = 6,
                    cap: float = 10.0) -> list[T]:
    """Call ``call`` on every item; once one call has landed, retry transient errors in place.

    A change made of several calls must not stop half-way on a 429 / 5xx: the engine would
    then see a state that is neither ``before`` nor ``after`` and refuse to retry as drift.
    Errors before the first call lands propagate unchanged (nothing happened; the engine
    retries the whole change). The retries are :func:`adapters.retry.retry_call`'s
    (Retry-After honoured up to ``cap`` seconds).
    """
    out: list[T] = []
    for item in items:
        one = functools.partial(call, item)
        out.append(retry_call(one, attempts=attempts, max_wait=cap, wait_initial=0.2,
                              wait_max=cap) if out else one())
    return out


def sandbox_endpoint(value: Any, backend: str, default: str) -> str:
    """Validate an ``endpoint`` option: an http(s) URL (the scheme decides plain HTTP)."""
    return url_option(backend, value, option="endpoint", default=default,
                      example="http://127.0.0.1:8383")


class GcpServiceAccountKeyAdapter(Adapter):
    """Disable, enable or delete GCP service-account keys (Vertex AI callers).

    ``credential.disable`` disables the key (or every user-managed key of the account);
    undo (``credential.enable``) enables exactly the keys it disabled. ``credential.destroy``
    deletes them: irreversible.
    """

    name: ClassVar[str] = "gcp-keys"
    Options: ClassVar[type[GcpKeysOptions]] = GcpKeysOptions
    OPTIONS: ClassVar[Mapping[str, str]] = GcpKeysOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = GCP_KEYS.actions  # adapters/specs/gcp.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.endpoint = sandbox_endpoint(self.options.get("endpoint"), backend,
                                         "https://iam.googleapis.com")
        self.anonymous = bool(self.options.get("anonymous", False))
        self.project = str(self.options.get("project") or "")
        self.request_timeout = seconds_option(backend, self.options, 30.0, ("request_timeout",))
        self.api = GoogleApi(self, "GCP IAM", self.endpoint, timeout=self.request_timeout,
                             anonymous=self.anonymous)

    # -- clients --------------------------------------------------------------------------

    def open(self) -> None:
        """Load Google ADC unless anonymous and build the HTTP client (no request)."""
        self.api.open()

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    def _call(self, method: str, path: str, target: str,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.api.request(method, f"/v1/{path}", target, params=params,
                                body={} if method == "POST" else None) or {}

    # -- references -----------------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, str, str, str]:
        """(project, email, key id or "", target) of a reference."""
        sa = str(ref.get("service_account") or "").strip()
        if not _SA_RE.match(sa):
            raise AdapterError("gcp-keys reference needs `service_account` (the account's "
                               f"email), got {sa!r}", where=self.backend)
        m = re.search(r"@([^.]+)\.iam\.gserviceaccount\.com$", sa)
        project = str(ref.get("project") or (m.group(1) if m else "") or self.project or "-")
        key = str(ref.get("key") or "").strip()
        if key and not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise AdapterError(f"gcp-keys reference: invalid key id {key!r}", where=self.backend)
        target = f"{sa} key {key}" if key else f"{sa} (every user-managed key)"
        return project, sa, key, target

    def _keys(self, project: str, sa: str, key: str, target: str) -> dict[str, dict[str, bool]]:
        path = f"projects/{project}/serviceAccounts/{sa}/keys"
        body = self._call("GET", path, target, {"keyTypes": "USER_MANAGED"})
        keys = {str(k.get("name", "")).rsplit("/", 1)[-1]: {"disabled": bool(k.get("disabled"))}
                for k in body.get("keys") or [] if k.get("keyType", "USER_MANAGED") ==
                "USER_MANAGED"}
        if key:
            return {key: keys.get(key, {"deleted": True})}
        return keys

    def read(self, change: Change) -> dict[str, Any]:
        """Current state: ``{"keys": {id: {"disabled": bool} | {"deleted": true}}}``."""
        if change.action == ISSUE:
            return gcp_keys_rotation.read_issue(self, change)
        project, sa, key, target = self._ref(change.ref)
        current = self._keys(project, sa, key, target)
        ids = list((change.before.get("keys") or {}).keys()) or list(current)
        return {"keys": {k: current.get(k, {"deleted": True}) for k in ids}}

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the key(s) and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the gcp-keys adapter does not offer {action}",
                               where=self.backend)
        self.run_id = self.run_id or ctx.run_id  # called outside the engine's runtime
        if action == ISSUE:
            return gcp_keys_rotation.plan_issue(self, ref, ctx)
        if action == RETIRE:
            return gcp_keys_rotation.plan_retire(self, ref, ctx)
        project, sa, key, target = self._ref(ref)
        ctx = plan_context(self, action, ref, ctx)
        name = f"{self.backend}:{target}"
        keys = self._keys(project, sa, key, target)
        if key and keys[key].get("deleted"):
            raise NotFound(f"not found in GCP IAM: {target} (no user-managed key {key})",
                           where=self.backend)
        before = {"keys": keys}
        live = [k for k, v in keys.items() if not v.get("deleted")]
        if action == "credential.destroy":
            after = {"keys": {k: {"deleted": True} for k in keys}}
            if not live:
                return [ctx.change(name, before, after, reversible=False, status=NOOP,
                                   note=f"no user-managed key left on {target}")]
            return [ctx.change(name, before, after, reversible=False, undo={"keys": live},
                               note=f"deletes key(s) {', '.join(live)} of {sa}: "
                               f"{_DELETE_NOTE}")]
        disable = action == "credential.disable"
        todo = [k for k in live if keys[k]["disabled"] != disable]
        after = {"keys": {k: ({"disabled": disable} if k in todo else v)
                          for k, v in keys.items()}}
        word = "disabled" if disable else "enabled"
        if not todo:
            return [ctx.change(name, before, after, undo={"keys": []}, status=NOOP,
                               note=f"every user-managed key of {target} is already {word}"
                               if live else f"{target} has no user-managed key")]
        verb = "disables" if disable else "enables"
        note = f"{verb} key(s) {', '.join(todo)} of {sa}"
        if disable:
            note += "; undo enables exactly those"
        return [ctx.change(name, before, after, undo={"keys": todo}, note=note)]

    # -- apply ----------------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Disable / enable / delete the planned keys (idempotent); returns ``{"keys": [...]}``.

        ``current`` (the engine's read just before) says which keys still need the call;
        without it the keys are listed first.
        """
        if change.action == ISSUE:
            return gcp_keys_rotation.apply_issue(self, change)
        if change.action == RETIRE:  # the old key(s) go only once the new one checks out
            gcp_keys_rotation.guard_retire(self, change)
        change = as_disable(change)
        project, sa, key, target = self._ref(change.ref)
        ids = [str(k) for k in change.undo.get("keys") or []]
        path = f"projects/{project}/serviceAccounts/{sa}/keys"
        now: Mapping[str, Any] = (current.get("keys") or {}) if current is not None \
            else self._keys(project, sa, key, target)
        if change.action == "credential.destroy":
            todo = [k for k in ids if not now.get(k, {"deleted": True}).get("deleted")]
            with_completion(todo, lambda k: self._call("DELETE", f"{path}/{k}", target))
        else:
            disable = change.action == "credential.disable"
            verb = "disable" if disable else "enable"
            gone = [k for k in ids if now.get(k, {"deleted": True}).get("deleted")]
            if gone:
                raise NotFound(f"key(s) {', '.join(gone)} of {sa} no longer exist; cannot "
                               f"{verb} them", where=self.backend)
            todo = [k for k in ids if now[k]["disabled"] != disable]
            with_completion(todo, lambda k: self._call("POST", f"{path}/{k}:{verb}", target))
        return {"keys": ids}

    # -- verify ---------------------------------------------------------------------------

    def verify(self, change: Change) -> Verdict:
        """Read the keys back: disabled / deleted keys can no longer mint tokens."""
        if change.action == ISSUE:
            return gcp_keys_rotation.verify_issue(self, change)
        change = as_disable(change)
        state = self.read(change)
        ids = [str(k) for k in change.undo.get("keys") or []] or list(state["keys"])
        if change.action == "credential.destroy":
            left = [k for k in ids if not state["keys"].get(k, {}).get("deleted")]
            if left:
                return Verdict(False, "live", f"key(s) {', '.join(left)} still listed")
            return Verdict(True, "dead", f"key(s) {', '.join(ids)} no longer listed")
        disable = change.action == "credential.disable"
        wrong = [k for k in ids if state["keys"].get(k, {}).get("disabled") is not disable]
        if disable:
            if wrong:
                return Verdict(False, "live", f"key(s) {', '.join(wrong)} not disabled")
            return Verdict(True, "dead", f"key(s) {', '.join(ids)} listed as disabled: "
                           "they can no longer sign token requests")
        if wrong:
            return Verdict(False, "dead", f"key(s) {', '.join(wrong)} not enabled")
        return Verdict(True, "restored", f"key(s) {', '.join(ids)} listed as enabled")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Enable exactly the keys a disable disabled (or vice versa).

        Raises:
            UndoUnsupported: delete (permanent) and changes that did nothing.
        """
        if change.action == ISSUE:
            return gcp_keys_rotation.inverse_issue(self, change, applied)
        if change.action == RETIRE:
            return retire_inverse(change, self.inverse(as_disable(change), applied))
        return toggle_inverse(change, applied, ids_key="keys", noun="key(s)",
                              irreversible=_DELETE_NOTE,
                              irreversible_hint="create a new key and redistribute it")

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: every key of the service account, metadata only (never
        ``privateKeyData``; :mod:`adapters.preserve_stores`)."""
        from adapters.preserve_stores import preserve_gcp_keys

        preserve_gcp_keys(self, ref, sink)
