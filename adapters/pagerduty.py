"""PagerDuty Events API v2 adapter: page the on-call of a kill-switch run, resolve on restore.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

Backend options (the routing key, a 32-character integration key, is a secret: it is read
from the environment or a file and never appears in a Change, Verdict, error or log)::

    [backends.pagerduty-sandbox]
    type = "pagerduty"
    base_url = "http://127.0.0.1:8394"            # default https://events.pagerduty.com
    routing_key_env = "KILLSWITCH_PAGERDUTY_ROUTING_KEY"  # env var NAME of the routing key
    routing_key_file = ".sandbox/pagerduty-routing.key"  # fallback file (optional)
    severity = "critical"                         # critical | error | warning | info
    source = "killswitch"                         # payload.source
    request_timeout = 10                          # seconds per HTTP call

Inventory reference: a contact of the integration with this backend::

    [[integrations.contacts]]
    name = "AI platform on-call"
    role = "on-call"
    backend = "pagerduty-sandbox"

``notify`` sends ``POST {base_url}/v2/enqueue`` with ``event_action`` ``trigger`` and
``dedup_key`` ``killswitch-<run id>-<integration>``, so a retried trigger updates the same
alert instead of opening a second one (provider-apis.md 8.1). The payload carries the
summary (who / what / when), ``source``, ``severity``, ``timestamp`` and ``custom_details``
(incident, run, operator, runbook, integration, name, environment, kill-switch owner, and
``chain``: the audit trail's head when the engine sends it, ``seq N, hash <16 hex>``).
Success is 202 with ``status`` ``success``. 429 and 5xx are retried by the engine; 400 fails
with PagerDuty's own message. The inverse (``killswitch restore``) sends ``resolve`` with the
same ``dedup_key``.

State shape: ``before`` = :meth:`PagerDutyAdapter.read` = ``{"sent": false}`` (events cannot
be read back with an integration key); ``after`` = ``{"sent": true, "event_action": ...,
"dedup_key": ..., "summary": ..., "severity": ...}``. Every run with a notify step pages once
(its own dedup key). ``verify`` reports the 202 recorded by apply in this session.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import path_option, plan_context, seconds_option
from adapters.http import STATUS_ERRORS, Credential, StatusRule, url_option
from adapters.notify_common import (
    NotifyApi,
    alert_text,
    chain_text,
    message_fields,
    read_secret,
    redact,
    utcnow_iso,
)
from adapters.specs.notify import PAGERDUTY, PagerDutyOptions
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    PermissionDenied,
    UndoUnsupported,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_ROUTING_KEY_ENV", "PagerDutyAdapter", "dedup_key",
           "event_body"]

PROVIDER = "PagerDuty"
DEFAULT_BASE_URL = "https://events.pagerduty.com"
DEFAULT_ROUTING_KEY_ENV = "KILLSWITCH_PAGERDUTY_ROUTING_KEY"
DEFAULT_TIMEOUT = 10.0
SEVERITIES = ("critical", "error", "warning", "info")
_DETAILS = ("incident", "cause", "run_id", "operator", "runbook", "integration", "name",
            "environment", "provider", "kill_switch_owner", "contact")

# options, reference schema and permissions: adapters/specs/notify.py

def dedup_key(run_id: str, integration: str) -> str:
    """``killswitch-<run id>-<integration>``, at most 255 characters."""
    return f"killswitch-{run_id or 'run'}-{integration}"[:255]


def event_body(routing_key: str, after: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The Events API v2 body for a planned event (``trigger`` or ``resolve``)."""
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": after["event_action"],
                            "dedup_key": after["dedup_key"]}
    if after["event_action"] == "trigger":
        body["payload"] = {"summary": after["summary"], "source": source,
                           "severity": after["severity"], "timestamp": after["timestamp"],
                           "component": after.get("integration", ""),
                           "group": "killswitch", "class": "ai-kill-switch",
                           "custom_details": dict(after.get("custom_details") or {})}
        body["client"] = "Killswitch"
    return body


class PagerDutyApi(NotifyApi):
    """The Events API v2: success is 202 ``status: success``; errors ``{status, message,
    errors}``; 401 and 403 refuse the console; a 400 about the routing key means the key is
    not an Events API v2 integration key."""

    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = {
        **STATUS_ERRORS, 401: (PermissionDenied, False)}
    REFUSED: ClassVar[str] = "PagerDuty refused the event for {target}: {said} (HTTP {status})"
    NOT_FOUND: ClassVar[str] = REFUSED

    def said(self, response: httpx.Response) -> str:
        """PagerDuty's message and errors, redacted."""
        body = _json(response)
        parts = [str(body.get("message") or "")] + [str(e) for e in body.get("errors") or []]
        return self.redact("; ".join(p for p in parts if p) or
                           f"HTTP {response.status_code} {response.reason_phrase}", 400)

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of the status map; a 400 about the routing key is an AuthError."""
        err = super().error(response, target, credential)
        if response.status_code == 400 and "routing" in self.said(response).lower():
            return AuthError(err.msg, hint=f"the routing key in {self.source} is not a valid "
                             "Events API v2 integration key", status=400, where=self.backend)
        return err


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class PagerDutyAdapter(Adapter):
    """Trigger a PagerDuty alert for a kill-switch run; resolve it when the run is restored.

    ``notify`` sends ``trigger`` with a dedup key per run and integration; its inverse sends
    ``resolve`` with the same key.
    """

    name: ClassVar[str] = "pagerduty"
    Options: ClassVar[type[PagerDutyOptions]] = PagerDutyOptions
    OPTIONS: ClassVar[Mapping[str, str]] = PagerDutyOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = PAGERDUTY.actions  # adapters/specs/notify.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.base_url = url_option(backend, self.options.get("base_url"),
                                   default=DEFAULT_BASE_URL)
        self.key_env = str(self.options.get("routing_key_env") or DEFAULT_ROUTING_KEY_ENV)
        self.key_file = path_option(self.options, "routing_key_file")
        self.severity = str(self.options.get("severity") or "critical")
        if self.severity not in SEVERITIES:
            raise AdapterError(f"backend {backend!r}: severity must be one of "
                               f"{', '.join(SEVERITIES)}, got {self.severity!r}", where=backend)
        self.source = str(self.options.get("source") or "killswitch")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self._key = ""
        self.api = PagerDutyApi(self, PROVIDER, self.base_url, timeout=self.timeout, hints={
            NotFound: f"is base_url {self.base_url} the Events API?"})
        self._delivered: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- client ---------------------------------------------------------------------------

    def open(self) -> None:
        """Read the routing key and build the HTTP client (no request is sent).

        Raises:
            AuthError: No routing key in the environment variable or the file.
        """
        if self.api.opened:
            return
        key, source = read_secret(self.key_env, self.key_file)
        if not key:
            raise AuthError(f"no PagerDuty routing key for backend {self.backend!r}: {source} "
                            "is not set", where=self.backend,
                            hint=f"export {self.key_env}=<Events API v2 integration key>; "
                            "for the sandbox run `killswitch sandbox start`")
        self._key = key
        self.api.secrets, self.api.source = [key], source
        self.api.open()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.api.close()

    def _target(self, ref: Mapping[str, Any]) -> str:
        name = redact(ref.get("name") or "service", [self._key])
        return f"{self.backend}:{name}"

    # -- phases ---------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """The event this run will send, verbatim but for the routing key (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the pagerduty adapter does not offer {action}",
                               where=self.backend)
        self.open()
        fields = message_fields(ctx, ref, [self._key])
        summary = alert_text(fields).split("\n", 1)[0]
        summary = f"{summary}; incident {fields['incident'] or 'none given'}, run " \
                  f"{fields['run_id']}, operator {fields['operator'] or '?'}"
        key = dedup_key(ctx.run_id, ctx.integration)
        after = {"sent": True, "event_action": "trigger", "dedup_key": key,
                 "summary": summary[:1024], "severity": self.severity,
                 "timestamp": fields["when"], "integration": ctx.integration,
                 "custom_details": {k: fields[k] for k in _DETAILS if fields.get(k)}}
        ctx = plan_context(self, action, ref, ctx)
        return [ctx.change(
            self._target(ref), {"sent": False}, after,
            undo={"dedup_key": key, "message": fields, "kind": "trigger"},
            note=f"triggers a {self.severity} alert with dedup_key {key} (a retry updates the "
                 "same alert); restore resolves it")]

    def read(self, change: Change) -> dict[str, Any]:
        """Always ``{"sent": false}``: events cannot be read back with a routing key."""
        return {"sent": False}

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST the planned event (a trigger also carries the audit chain head, when the
        engine passes one) to /v2/enqueue; success is 202 ``status: success``."""
        self.open()
        body = event_body(self._key, change.after, self.source)
        chain = chain_text()
        if chain and "payload" in body:
            body["payload"]["custom_details"]["chain"] = chain
        resp = self.api.send("POST", "/v2/enqueue", change.target, json=body, check=False)
        answer = _json(resp)
        if resp.status_code == 202 and answer.get("status") == "success":
            at = utcnow_iso()
            with self._lock:
                self._delivered[change.op_id] = at
            return {"delivered_at": at, "status": 202,
                    "dedup_key": str(answer.get("dedup_key") or change.after["dedup_key"]),
                    **({"chain": chain} if chain and "payload" in body else {})}
        raise self.api.error(resp, change.target)

    def verify(self, change: Change) -> Verdict:
        """PagerDuty's 202 recorded by apply (events offer no read-back)."""
        with self._lock:
            at = self._delivered.get(change.op_id)
        action = change.after.get("event_action", "trigger")
        if at:
            word = "resolved" if action == "resolve" else "sent"
            return Verdict(True, word, f"PagerDuty accepted the {action} "
                           f"({change.after.get('dedup_key')}) with 202 at {at} (UTC)")
        return Verdict(False, "unknown", f"events cannot be read back and this session "
                       f"recorded no 202 for the {action}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """``resolve`` with the same dedup key."""
        if change.status == NOOP or change.after.get("event_action") != "trigger":
            raise UndoUnsupported(f"a resolve on {change.target} cannot be undone: run the "
                                  "kill-switch again", where=change.target)
        key = str(applied.get("dedup_key") or change.undo.get("dedup_key")
                  or change.after["dedup_key"])
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action="notify", backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before={"sent": False},
            after={"sent": True, "event_action": "resolve", "dedup_key": key},
            undo={"dedup_key": key, "message": dict(change.undo.get("message") or {}),
                  "kind": "resolve"},
            note=f"resolves the alert {key}: the run was restored", inverse_of=change.op_id)
