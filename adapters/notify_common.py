"""Shared by the notification adapters (Slack, PagerDuty): the message, secrets, HTTP base.

A notification says who (the operator), what (runbook, integration name and id, environment,
kill-switch owner), when (UTC, at planning) and which incident and run. It is built only
from the :class:`~adapters.base.PlanContext` (run id, incident, operator, runbook and the
inventory ``facts``) and the contact reference, never from a credential. Inventory text is
free text, so every value goes through :func:`redact` before it is quoted: key-shaped strings
(``sk-...``, ``xox?-...``, webhook URLs, bearer tokens, JWTs, ...) and the backend's own
secret (webhook URL, routing key) become ``[redacted]``. Adapters may import only
``console.errors`` from the console, so this is a small local guard rather than
``console.scrub`` (the audit writer still scrubs everything it stores).

The message fields are kept in ``Change.undo["message"]`` so the inverse (an all-clear or a
resolve) can quote the same integration without looking anything up again.

Chain head: every notification also quotes the audit trail's head *when it is sent*
(``Chain: seq 42, hash 3f2a9c0d1e2b4f56``), so that the people notified hold a witness of
the trail (a trail later found shorter, or different at that seq, was tampered with). The
head is not part of the plan (it does not exist yet when planning, and the saved plan, its
hash and each change's identity must not depend on it): the engine passes it at apply time
with :func:`call_with_chain_head`, which sets a context variable for the duration of one
``apply`` call in the worker thread that makes it; the adapters read it with
:func:`chain_text`. Outside the engine (no head) nothing is added.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from adapters.base import Adapter
from adapters.common import read_secret
from adapters.http import HttpApi, StatusRule
from console.errors import AdapterError

__all__ = [
    "REDACTED",
    "NotifyApi",
    "alert_text",
    "all_clear_text",
    "call_with_chain_head",
    "chain_text",
    "message_fields",
    "read_secret",
    "redact",
    "utcnow_iso",
]

REDACTED = "[redacted]"

T = TypeVar("T")

_CHAIN_HEAD: ContextVar[tuple[int, str] | None] = ContextVar("killswitch_chain_head",
                                                            default=None)


def call_with_chain_head(head: tuple[int, str] | None, fn: Callable[[], T]) -> T:
    """Call ``fn()`` with the audit chain head ``(seq, hash)`` visible to :func:`chain_text`.

    The engine wraps each ``apply`` in it, in the worker thread that runs the call: each
    thread has its own context, so concurrent applies never see each other's head.
    """
    token = _CHAIN_HEAD.set(head)
    try:
        return fn()
    finally:
        _CHAIN_HEAD.reset(token)


def chain_text() -> str:
    """``seq 42, hash 3f2a9c0d1e2b4f56`` for the head passed in, or "" when there is none."""
    head = _CHAIN_HEAD.get()
    if not head:
        return ""
    seq, digest = head
    return f"seq {int(seq)}, hash {re.sub(r'[^0-9a-f]', '', str(digest))[:16]}"

_PATTERNS = [
    re.compile(r"https?://hooks\.slack(?:-gov)?\.com/\S+"),
    re.compile(r"https?://\S*/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/\S+"),
    re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,}"),
    re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?<![A-Za-z0-9_./-])(?:hv[sbr]|sbr)\.[A-Za-z0-9_-]{24,}"),
    re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
               re.DOTALL),
    re.compile(r"(?i)(?:password|passwd|secret|token|api[_-]?key|routing[_-]?key)"
               r"\s*[:=]\s*\S+"),
    # A 32-character hex or alphanumeric run (PagerDuty integration keys) standing alone.
    re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{32}(?![A-Za-z0-9])"),
]


def redact(value: Any, secrets: Iterable[str] = ()) -> str:
    """``value`` as text with key-shaped substrings and the given secrets replaced.

    Args:
        value: Any value quoted in a message (an inventory fact, an id).
        secrets: Exact values that must never appear (the backend's webhook URL or key).

    Returns:
        The text, each secret-looking part replaced by ``[redacted]``.
    """
    text = "" if value is None else str(value)
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def utcnow_iso() -> str:
    """Now, UTC, to the second: ``2026-11-22T11:25:45Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return str(raw or "")
    extra = ", ".join(str(raw[k]) for k in ("role", "how") if raw.get(k))
    return f"{raw.get('name', '?')}" + (f" ({extra})" if extra else "")


def message_fields(ctx: Any, ref: Mapping[str, Any], secrets: Iterable[str] = (),
                   when: str | None = None) -> dict[str, str]:
    """The facts a notification quotes, redacted, as plain strings.

    Args:
        ctx: The :class:`~adapters.base.PlanContext` of the notify step.
        ref: The contact reference (``name``, ``role``, ``how``, ``backend``).
        secrets: The backend's own secret values, removed wherever they appear.
        when: UTC timestamp; default now.

    Returns:
        ``integration``, ``name``, ``environment``, ``provider``, ``owner``,
        ``kill_switch_owner``, ``incident``, ``run_id``, ``operator``, ``runbook``,
        ``contact``, ``when``, ``cause`` (missing facts are empty strings).
    """
    secrets = [s for s in secrets if s]
    facts = ctx.facts or {}
    raw = {
        "integration": ctx.integration,
        "name": facts.get("name") or ctx.integration,
        "environment": facts.get("environment") or "",
        "provider": facts.get("provider") or "",
        "owner": facts.get("owner") or "",
        "kill_switch_owner": _owner(facts.get("kill_switch_owner")),
        "incident": ctx.incident or "",
        "cause": getattr(ctx, "cause", "") or "other",
        "run_id": ctx.run_id or "",
        "operator": ctx.operator or "",
        "runbook": ctx.runbook or "",
        "contact": ref.get("name") or "",
        "when": when or utcnow_iso(),
    }
    return {k: redact(v, secrets)[:300] for k, v in raw.items()}


def _lines(f: Mapping[str, str]) -> list[str]:
    what = f"{f['name']} ({f['integration']}" + (f", {f['environment']}" if f["environment"]
                                                   else "") + ")"
    lines = [f"Integration: {what}"]
    if f.get("provider"):
        lines.append(f"Provider: {f['provider']}")
    if f.get("kill_switch_owner"):
        lines.append(f"Kill-switch owner: {f['kill_switch_owner']}")
    elif f.get("owner"):
        lines.append(f"Owner: {f['owner']}")
    lines.append(f"Incident: {f['incident'] or 'none given'}")
    if f.get("cause"):
        lines.append(f"Cause: {f['cause']}")
    return lines


def alert_text(f: Mapping[str, str]) -> str:
    """The notification of a kill-switch run (who / what / when, incident and run ids)."""
    head = (f"Killswitch: runbook {f['runbook'] or '?'} is running against "
            f"{f['name']} ({f['integration']})")
    body = [*_lines(f), f"Run: {f['run_id']}", f"Operator: {f['operator'] or '?'}",
            f"When: {f['when']} (UTC)"]
    return "\n".join([head, *body])


def all_clear_text(f: Mapping[str, str], when: str | None = None) -> str:
    """The all-clear sent by a restore: the run's changes to the integration are undone."""
    head = (f"Killswitch: all clear: run {f['run_id']} on {f['name']} ({f['integration']}) "
            "has been restored")
    body = [*_lines(f), f"Restored run: {f['run_id']} (runbook {f['runbook'] or '?'})",
            f"Originally started by: {f['operator'] or '?'}",
            f"When: {when or utcnow_iso()} (UTC)"]
    return "\n".join([head, *body])


class NotifyApi(HttpApi):
    """A notification endpoint: errors quote the provider's answer redacted (``secrets``, the
    backend's own secret values, set when the adapter opens) and never the URL (a webhook
    URL is the secret); a timeout says the message may have gone out.

    Attributes:
        secrets: The backend's secret values, removed from every error.
        source: Where the backend's secret came from (``environment variable X``).
    """

    TIMEOUT_NOTE: ClassVar[str] = "; the message may or may not have been delivered"

    def __init__(self, adapter: Adapter, provider: str, base_url: str = "", *,
                 timeout: float, hints: Mapping[type[AdapterError], str] | None = None,
                 statuses: Mapping[int, StatusRule] | None = None) -> None:
        super().__init__(adapter, provider, base_url, timeout=timeout, hints=hints,
                         statuses=statuses, secret_url=True)
        self.secrets: list[str] = []
        self.source = ""

    def redact(self, text: str, limit: int) -> str:
        """``text`` with the backend's secrets and key-shaped strings redacted, cut."""
        return redact(text, self.secrets)[:limit]
