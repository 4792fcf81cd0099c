"""Declarations of the notification adapters: Slack incoming webhook, PagerDuty Events v2.

Their references are the integration's contacts that name the backend; what they need is a
secret URL or key of the channel or service, never a user token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, EnvName, FilePath, HttpUrl, Seconds
from adapters.specs import AdapterSpec, Grant

__all__ = ["PAGERDUTY", "SLACK", "PagerDutyOptions", "SlackOptions"]


class SlackOptions(AdapterOptions):
    """Options of a ``slack`` backend (the webhook URL is a secret: env var or file)."""

    webhook_env: EnvName = "KILLSWITCH_SLACK_WEBHOOK_URL"
    """Env var NAME holding the incoming-webhook URL (default KILLSWITCH_SLACK_WEBHOOK_URL)."""
    webhook_file: FilePath = ""
    """Fallback file holding the webhook URL (optional)."""
    request_timeout: Seconds = 10.0
    """Seconds per HTTP call (default 10)."""


class PagerDutyOptions(AdapterOptions):
    """Options of a ``pagerduty`` backend (the routing key is a secret: env var or file)."""

    base_url: HttpUrl = ""
    """Events API root (default https://events.pagerduty.com)."""
    routing_key_env: EnvName = "KILLSWITCH_PAGERDUTY_ROUTING_KEY"
    """Env var NAME holding the integration (routing) key (default
    KILLSWITCH_PAGERDUTY_ROUTING_KEY)."""
    routing_key_file: FilePath = ""
    """Fallback file holding the routing key (optional)."""
    severity: Literal["critical", "error", "warning", "info"] = "critical"
    """Alert severity: critical | error | warning | info (default critical)."""
    source: str = "killswitch"
    """payload.source (default killswitch)."""
    request_timeout: Seconds = 10.0
    """Seconds per HTTP call (default 10)."""


def _contact(name: str, how: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["name", "backend"],
            "properties": {"backend": {"type": "string"},
                           "name": {"type": "string", "minLength": 1, "description": name},
                           "role": {"type": "string"},
                           "how": {"type": "string", "description": how}}}


SLACK_REF = _contact("channel or team the webhook posts to",
                     "e.g. slack:#ai-incidents (for people)")
PAGERDUTY_REF = _contact("service or team paged", "e.g. pagerduty:ai-platform")

_SLACK_PERMS = ("an incoming-webhook URL of a Slack app installed in the channel "
                "(POST https://hooks.slack.com/services/T.../B.../...)",)
_PD_PERMS = ("an Events API v2 integration (routing) key of the PagerDuty service: "
             "POST /v2/enqueue (trigger, resolve)",)


def _slack_grants(action: str, ref: Mapping[str, Any], options: Any,
                  step: Mapping[str, Any]) -> list[Grant]:
    channel = str(ref.get("how") or ref.get("name") or "the channel")
    return [Grant(f"Slack incoming-webhook URL of an app installed in {channel} (scope "
                  "incoming-webhook; no bot or user token)",
                  "POST https://hooks.slack.com/services/T.../B.../...",
                  note="the alert, and the all-clear on restore")]


def _pd_grants(action: str, ref: Mapping[str, Any], options: Any,
               step: Mapping[str, Any]) -> list[Grant]:
    return [Grant(f"PagerDuty Events API v2 integration (routing) key of service "
                  f"{ref.get('name', '?')} (no REST API key)",
                  "POST /v2/enqueue", note="trigger; resolve on restore")]


SLACK = AdapterSpec(
    name="slack",
    options=SlackOptions,
    actions={"notify": ActionSpec("notify", "contacts", True, "notify", _SLACK_PERMS,
                                  SLACK_REF)},
    iam="token",
    grants=_slack_grants,
)
"""The slack adapter's declarations."""

PAGERDUTY = AdapterSpec(
    name="pagerduty",
    options=PagerDutyOptions,
    actions={"notify": ActionSpec("notify", "contacts", True, "notify", _PD_PERMS,
                                  PAGERDUTY_REF)},
    iam="token",
    grants=_pd_grants,
)
"""The pagerduty adapter's declarations."""
