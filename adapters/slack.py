"""Slack incoming-webhook adapter: tell a channel that a kill-switch run started (and ended).

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

Backend options (the webhook URL is a secret: it is read from the environment or a file,
never from the inventory, and never appears in a Change, Verdict, error or log)::

    [backends.slack-sandbox]
    type = "slack"
    webhook_env = "KILLSWITCH_SLACK_WEBHOOK_URL"    # env var NAME holding the webhook URL
    webhook_file = ".sandbox/slack-webhook.url"      # fallback file (optional)
    request_timeout = 10                             # seconds per HTTP call

Inventory reference: a contact of the integration with this backend::

    [[integrations.contacts]]
    name = "AI incident channel"
    role = "incident channel"
    how = "slack:#ai-incidents"
    backend = "slack-sandbox"

``notify`` posts ``{"text": ..., "blocks": [section]}`` (provider-apis.md 8.2); success is
HTTP 200 with the plain-text body ``ok``. 429 (``Retry-After``) and 5xx are retried by the
engine; other answers fail with Slack's own error string (``invalid_payload``,
``no_service``, ``channel_is_archived``, ...).

State shape: ``before`` = :meth:`SlackWebhookAdapter.read` = ``{"sent": false}`` (a webhook
cannot be read back); ``after`` = ``{"sent": true, "text": <the exact text that will be
sent>}``; when the engine sends it, one line is added: ``Chain: seq N, hash <16 hex>``, the
audit trail's head at that moment (see :mod:`adapters.notify_common`). Every run with a
notify step notifies once: a second plan is not a no-op. After an unknown outcome (a
timeout) the engine retries and the message may arrive twice: a duplicate notification is
better than a missing one. ``verify`` reports the 200 ``ok`` recorded by
apply in this session. The inverse (``killswitch restore``) posts an all-clear message.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import path_option, plan_context, seconds_option
from adapters.http import STATUS_ERRORS, Credential, StatusRule
from adapters.notify_common import (
    NotifyApi,
    alert_text,
    all_clear_text,
    chain_text,
    message_fields,
    read_secret,
    redact,
    utcnow_iso,
)
from adapters.specs.notify import SLACK, SlackOptions
from console.errors import (
    AdapterError,
    AuthError,
    NotFound,
    UndoUnsupported,
)

__all__ = ["DEFAULT_WEBHOOK_ENV", "SlackWebhookAdapter", "slack_payload"]

PROVIDER = "Slack"
DEFAULT_WEBHOOK_ENV = "KILLSWITCH_SLACK_WEBHOOK_URL"
DEFAULT_TIMEOUT = 10.0

# options, reference schema and permissions: adapters/specs/notify.py

def slack_payload(text: str) -> dict[str, Any]:
    """The webhook body: ``text`` (always, the fallback) plus one mrkdwn section block."""
    first, _, rest = text.partition("\n")
    mrkdwn = f"*{first}*" + (f"\n{rest}" if rest else "")
    return {"text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn[:3000]}}]}


class SlackApi(NotifyApi):
    """A Slack incoming webhook: success is 200 ``ok``; errors are Slack's own plain-text
    strings (``invalid_payload``, ``no_service``, ...); 403 ``invalid_token`` or
    ``action_prohibited`` means the webhook was revoked; 404 and 410 mean it is gone."""

    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = {**STATUS_ERRORS,
                                                         410: (NotFound, False)}
    REFUSED: ClassVar[str] = "Slack refused the message for {target}: {said} (HTTP {status})"
    NOT_FOUND: ClassVar[str] = REFUSED

    def said(self, response: httpx.Response) -> str:
        """Slack's plain-text answer, redacted."""
        return self.redact(response.text.strip(), 200) or f"HTTP {response.status_code}"

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of the status map; a revoked webhook is an AuthError."""
        status, said = response.status_code, self.said(response)
        if status == 200:
            return AdapterError(f"Slack answered HTTP 200 without `ok` for {target}: {said}",
                                status=status, where=self.backend)
        if status == 403 and said in ("invalid_token", "action_prohibited"):
            return AuthError(self.REFUSED.format(target=target, said=said, status=status),
                             hint=f"the webhook URL in {self.source} was revoked or its app "
                             "removed: create a new incoming webhook", status=status,
                             where=self.backend)
        return super().error(response, target, credential)


class SlackWebhookAdapter(Adapter):
    """Post the who / what / when of a kill-switch run to a Slack incoming webhook.

    ``notify`` sends the alert; its inverse (used by restore) sends an all-clear.
    """

    name: ClassVar[str] = "slack"
    Options: ClassVar[type[SlackOptions]] = SlackOptions
    OPTIONS: ClassVar[Mapping[str, str]] = SlackOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = SLACK.actions  # adapters/specs/notify.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.webhook_env = str(self.options.get("webhook_env") or DEFAULT_WEBHOOK_ENV)
        self.webhook_file = path_option(self.options, "webhook_file")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self._url = ""
        self.api = SlackApi(self, PROVIDER, timeout=self.timeout)
        self._delivered: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- client ---------------------------------------------------------------------------

    def open(self) -> None:
        """Read the webhook URL and build the HTTP client (no request is sent).

        Raises:
            AuthError: No URL in the environment variable or the file, or not an http(s) URL.
        """
        if self.api.opened:
            return
        url, source = read_secret(self.webhook_env, self.webhook_file)
        if not url:
            raise AuthError(f"no Slack webhook URL for backend {self.backend!r}: {source} "
                            "is not set", where=self.backend,
                            hint=f"export {self.webhook_env}=<incoming-webhook URL>; for the "
                            "sandbox run `killswitch sandbox start`")
        if not url.startswith(("http://", "https://")):
            raise AuthError(f"the Slack webhook URL in {source} is not an http(s) URL",
                            where=self.backend)
        self._url = url
        self.api.secrets, self.api.source = self._secrets(), source
        self.api.hints[NotFound] = f"the webhook in {source} or its channel is gone"
        self.api.open()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.api.close()

    def _secrets(self) -> list[str]:
        if not self._url:
            return []
        token = self._url.rstrip("/").rsplit("/", 1)[-1]
        return [self._url, token] if len(token) >= 8 else [self._url]

    def _target(self, ref: Mapping[str, Any]) -> str:
        name = redact(ref.get("name") or ref.get("how") or "channel", self._secrets())
        return f"{self.backend}:{name}"

    # -- phases ---------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """The message this run will post, verbatim (read-only: nothing is sent)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the slack adapter does not offer {action}", where=self.backend)
        self.open()
        fields = message_fields(ctx, ref, self._secrets())
        text = alert_text(fields)
        ctx = plan_context(self, action, ref, ctx)
        return [ctx.change(
            self._target(ref), {"sent": False}, {"sent": True, "text": text},
            undo={"message": fields, "kind": "alert"},
            note="posts this message once per run (a webhook cannot be read back: after an "
                 "unknown outcome it may be posted twice); restore posts an all-clear")]

    def read(self, change: Change) -> dict[str, Any]:
        """Always ``{"sent": false}``: an incoming webhook cannot be read back."""
        return {"sent": False}

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST the planned text (plus the audit chain head, when the engine passes one);
        success is HTTP 200 with body ``ok``."""
        text = str(change.after.get("text") or "")
        chain = chain_text()
        if chain:
            text += f"\nChain: {chain}"
        self.open()
        resp = self.api.send("POST", self._url, change.target, json=slack_payload(text),
                             check=False)
        if resp.status_code == 200 and resp.text.strip() == "ok":
            at = utcnow_iso()
            with self._lock:
                self._delivered[change.op_id] = at
            return {"delivered_at": at, "status": 200, **({"chain": chain} if chain else {})}
        raise self.api.error(resp, change.target)

    def verify(self, change: Change) -> Verdict:
        """Slack's 200 ``ok`` recorded by apply (a webhook offers no read-back)."""
        with self._lock:
            at = self._delivered.get(change.op_id)
        if at:
            word = "sent" if change.undo.get("kind") != "all-clear" else "restored"
            return Verdict(True, word, f"Slack answered 200 ok at {at} (UTC)")
        return Verdict(False, "unknown", "a webhook cannot be read back and this session "
                       "recorded no 200 ok for it (see the run's apply event)")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """An all-clear message to the same channel, quoting the restored run."""
        if change.status == NOOP or change.undo.get("kind") == "all-clear":
            raise UndoUnsupported(f"an all-clear on {change.target} cannot be undone: run the "
                                  "kill-switch again", where=change.target)
        fields = dict(change.undo.get("message") or {})
        text = all_clear_text(fields)
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action="notify", backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before={"sent": False}, after={"sent": True, "text": text},
            undo={"message": fields, "kind": "all-clear"},
            note="posts an all-clear: the run was restored", inverse_of=change.op_id)
