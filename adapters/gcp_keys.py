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

import random
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

import httpx

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict, map_errors
from adapters.common import parse_retry_after, seconds_option, toggle_inverse, user_agent
from adapters.specs.gcp import GCP_KEYS, GcpKeysOptions
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

__all__ = ["GcpServiceAccountKeyAdapter", "google_error", "parse_retry_after",
           "sandbox_endpoint", "with_completion"]

T = TypeVar("T")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_SA_RE = re.compile(r"^[^@\s/]+@[^@\s/]+$")
_DELETE_NOTE = ("irreversible: a deleted service-account key cannot be recovered; restore "
                "means creating a new key and redistributing it")

# options, reference schema and permissions: adapters/specs/gcp.py


def google_error(status: int | None, status_name: str, message: str, target: str, *,
                 retry_after: float | None = None, api: str = "Google Cloud") -> AdapterError:
    """The :class:`AdapterError` for a Google API error (HTTP status + canonical status name).

    Args:
        status: HTTP status code.
        status_name: Canonical status (``NOT_FOUND``, ``FAILED_PRECONDITION``, ...) or "".
        message: The provider's message.
        target: What the call was about (for the message).
        retry_after: Seconds from Retry-After, if any.
        api: Which API answered (for the message).
    """
    said = f"{message} ({status_name})" if status_name else message
    msg = f"{api} refused the call on {target}: {said}"
    kw: dict[str, Any] = {"status": status}
    if status == 429 or status_name == "RESOURCE_EXHAUSTED":
        return RateLimited(msg, retry_after=retry_after, **kw)
    if status == 401 or status_name == "UNAUTHENTICATED":
        return AuthError(msg, hint="the console's Google credentials were rejected: run "
                         "`gcloud auth application-default login` or fix "
                         "GOOGLE_APPLICATION_CREDENTIALS", **kw)
    if status == 403 or status_name == "PERMISSION_DENIED":
        return PermissionDenied(msg, hint="grant the console's principal the permissions "
                                "`killswitch` lists for this action", **kw)
    if status == 404 or status_name == "NOT_FOUND":
        return NotFound(f"not found in {api}: {target} ({message})", **kw)
    if status == 409 or status_name in ("FAILED_PRECONDITION", "ABORTED", "ALREADY_EXISTS"):
        return Conflict(msg, **kw)
    if status == 504 or status_name == "DEADLINE_EXCEEDED":
        return Timeout(msg, retry_after=retry_after, **kw)
    if (status or 0) >= 500 or status_name in ("UNAVAILABLE", "INTERNAL"):
        return Unavailable(msg, retry_after=retry_after, **kw)
    return AdapterError(msg, **kw)


def with_completion(items: list[str], call: Callable[[str], T], *, attempts: int = 6,
                    cap: float = 10.0) -> list[T]:
    """Call ``call`` on every item; once one call has landed, retry transient errors in place.

    A change made of several calls must not stop half-way on a 429 / 5xx: the engine would
    then see a state that is neither ``before`` nor ``after`` and refuse to retry as drift.
    Errors before the first call lands propagate unchanged (nothing happened; the engine
    retries the whole change).
    """
    out: list[T] = []
    for item in items:
        for attempt in range(1, attempts + 1):
            try:
                out.append(call(item))
                break
            except AdapterError as exc:
                if not out or not exc.retryable or attempt == attempts:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else \
                    0.2 * 2 ** (attempt - 1) * (1 - random.random() * 0.25)
                time.sleep(min(cap, wait))
    return out


def sandbox_endpoint(value: Any, backend: str, default: str) -> str:
    """Validate an ``endpoint`` option: an http(s) URL (the scheme decides plain HTTP)."""
    endpoint = str(value or default).rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise AdapterError(f"backend {backend!r}: option endpoint must start with http:// or "
                           f"https://, got {endpoint!r}", where=backend,
                           hint='e.g. endpoint = "http://127.0.0.1:8383" for the sandbox '
                           "(without a scheme Google clients use HTTPS)")
    return endpoint


class GcpServiceAccountKeyAdapter(Adapter):
    """Disable, enable or delete GCP service-account keys (Vertex AI callers).

    ``credential.disable`` disables the key (or every user-managed key of the account);
    undo (``credential.enable``) enables exactly the keys it disabled. ``credential.destroy``
    deletes them: irreversible.
    """

    name: ClassVar[str] = "gcp-keys"
    Options: ClassVar[type[GcpKeysOptions]] = GcpKeysOptions
    OPTIONS: ClassVar[Mapping[str, str]] = GcpKeysOptions.help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = GCP_KEYS.actions  # adapters/specs/gcp.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    run_id: str = ""
    """The run this adapter acts for (set by the engine's Runtime); quoted in User-Agent."""

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.endpoint = sandbox_endpoint(self.options.get("endpoint"), backend,
                                         "https://iam.googleapis.com")
        self.anonymous = bool(self.options.get("anonymous", False))
        self.project = str(self.options.get("project") or "")
        self.request_timeout = seconds_option(backend, self.options, 30.0, ("request_timeout",))
        self._http: httpx.Client | None = None
        self._creds: Any = None

    # -- clients --------------------------------------------------------------------------

    def open(self) -> None:
        """Build the HTTP client and, unless anonymous, load Google ADC."""
        if self._http is not None:
            return
        if not self.anonymous:
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
        self._http = httpx.Client(base_url=self.endpoint, timeout=self.request_timeout)

    def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _headers(self) -> dict[str, str]:
        ua = {"User-Agent": user_agent(self.run_id)}
        if self._creds is None:
            return ua
        if not self._creds.valid:
            import google.auth.exceptions
            import google.auth.transport.requests

            try:
                self._creds.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.GoogleAuthError as exc:
                raise AuthError(f"cannot get a Google access token for backend "
                                f"{self.backend!r}: {exc}", where=self.backend,
                                hint="run `gcloud auth application-default login`") from exc
        return {**ua, "Authorization": f"Bearer {self._creds.token}"}

    def _errors(self, target: str) -> AbstractContextManager[None]:
        return map_errors(self.backend, lambda exc: self._translate(exc, target))

    def _translate(self, exc: BaseException, target: str) -> AdapterError | None:
        if isinstance(exc, httpx.TimeoutException):
            return Timeout(f"IAM at {self.endpoint} did not answer in time for {target}")
        if isinstance(exc, httpx.TransportError):
            return Unavailable(f"cannot reach IAM for {target}: is {self.endpoint} up? "
                               f"({type(exc).__name__})")
        return None

    def _call(self, method: str, path: str, target: str,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._http is None:
            self.open()
        assert self._http is not None
        try:
            resp = self._http.request(method, f"/v1/{path}", params=params,
                                      headers=self._headers(),
                                      json={} if method == "POST" else None)
        except httpx.HTTPError as exc:
            raise (self._translate(exc, target) or
                   AdapterError(f"{type(exc).__name__}: {exc}")) from exc
        if resp.status_code >= 400:
            try:
                err = resp.json().get("error") or {}
            except ValueError:
                err = {}
            if not isinstance(err, dict):
                err = {"message": str(err)}
            raise google_error(resp.status_code, str(err.get("status") or ""),
                               str(err.get("message") or resp.reason_phrase), target,
                               retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                               api="GCP IAM")
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

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
        project, sa, key, target = self._ref(change.ref)
        with self._errors(target):
            current = self._keys(project, sa, key, target)
        ids = list((change.before.get("keys") or {}).keys()) or list(current)
        return {"keys": {k: current.get(k, {"deleted": True}) for k in ids}}

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the key(s) and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the gcp-keys adapter does not offer {action}",
                               where=self.backend)
        self.run_id = self.run_id or ctx.run_id
        project, sa, key, target = self._ref(ref)
        base: dict[str, Any] = {
                "op_id": ctx.op_id(0), "integration": ctx.integration, "step": ctx.step,
                "action": action, "backend": self.backend, "adapter": self.name,
                "target": f"{self.backend}:{target}", "ref": dict(ref)}
        with self._errors(target):
            keys = self._keys(project, sa, key, target)
        if key and keys[key].get("deleted"):
            raise NotFound(f"not found in GCP IAM: {target} (no user-managed key {key})",
                           where=self.backend)
        before = {"keys": keys}
        live = [k for k, v in keys.items() if not v.get("deleted")]
        if action == "credential.destroy":
            after = {"keys": {k: {"deleted": True} for k in keys}}
            if not live:
                return [Change(**base, before=before, after=after, reversible=False,
                               status=NOOP, note=f"no user-managed key left on {target}")]
            return [Change(**base, before=before, after=after, reversible=False,
                           undo={"keys": live},
                           note=f"deletes key(s) {', '.join(live)} of {sa}: {_DELETE_NOTE}")]
        disable = action == "credential.disable"
        todo = [k for k in live if keys[k]["disabled"] != disable]
        after = {"keys": {k: ({"disabled": disable} if k in todo else v)
                          for k, v in keys.items()}}
        word = "disabled" if disable else "enabled"
        if not todo:
            return [Change(**base, before=before, after=after, undo={"keys": []}, status=NOOP,
                           note=f"every user-managed key of {target} is already {word}"
                           if live else f"{target} has no user-managed key")]
        verb = "disables" if disable else "enables"
        note = f"{verb} key(s) {', '.join(todo)} of {sa}"
        if disable:
            note += "; undo enables exactly those"
        return [Change(**base, before=before, after=after, undo={"keys": todo}, note=note)]

    # -- apply ----------------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Disable / enable / delete the planned keys (idempotent); returns ``{"keys": [...]}``."""
        project, sa, key, target = self._ref(change.ref)
        ids = [str(k) for k in change.undo.get("keys") or []]
        path = f"projects/{project}/serviceAccounts/{sa}/keys"
        with self._errors(target):
            now = self._keys(project, sa, key, target)
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
        return toggle_inverse(change, applied, ids_key="keys", noun="key(s)",
                              irreversible=_DELETE_NOTE,
                              irreversible_hint="create a new key and redistribute it")
