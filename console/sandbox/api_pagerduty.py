"""PagerDuty Events API v2 stand-in: a local receiver that records every event that arrived.

Served (provider-apis.md 8.1)::

    POST /v2/enqueue   {"routing_key", "event_action", "dedup_key"?, "payload"?}
        -> 202 {"status": "success", "message": "Event processed", "dedup_key": ...}

``trigger`` needs ``payload.summary`` (at most 1024 characters), ``payload.source`` and a
valid ``payload.severity``; ``acknowledge`` and ``resolve`` need a ``dedup_key``. A routing
key that is not one of the seeded keys, or a malformed event, gets 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``.
Events with the same ``dedup_key`` update one alert; after a resolve a new trigger reopens it.
Fault injection (latency, 429 with ``Retry-After``, 5xx, hangs) comes from
:class:`~console.sandbox.standin.StandIn`.

State (GET /_sandbox/state): ``events`` (every accepted event, without its routing key) and
``alerts`` by dedup key (``status`` triggered / acknowledged / resolved, ``summary``,
``severity``, ``custom_details``, ``triggers``).

Seed: for every ``pagerduty`` backend whose ``base_url`` is on this machine, a 32-character
routing key in its ``routing_key_file`` (created 0600 when missing, default
``<sandbox dir>/pagerduty-routing.key``).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from console.sandbox.standin import Request, Response, StandIn

__all__ = ["DEFAULT_PORT", "STANDIN", "PagerDutyStandIn", "seed", "wanted"]

DEFAULT_PORT = 8394
TYPES = ("pagerduty",)
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


class PagerDutyStandIn(StandIn):
    """PagerDuty's Events API v2 from memory.

    State::

        {"routing_keys": ["<32 chars>"],
         "events": [{"event_action", "dedup_key", "payload", "at"}],
         "alerts": {"<dedup key>": {"status": "triggered", "summary": "...", ...}}}
    """

    name: ClassVar[str] = "pagerduty"

    def setup(self) -> None:
        """Register the enqueue route."""
        self.state.setdefault("routing_keys", [])
        self.state.setdefault("events", [])
        self.state.setdefault("alerts", {})
        self.route("POST", r"/v2/enqueue", self.enqueue)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """PagerDuty's error shape."""
        word = "throttle event" if status == 429 else "invalid event" if status == 400 \
            else "error"
        return {"status": word, "message": message, "errors": [message]}

    def _invalid(self, *errors: str) -> Response:
        return Response(400, {"status": "invalid event", "message": "Event object is invalid",
                              "errors": list(errors)})

    def enqueue(self, req: Request) -> Response:
        """Accept one event."""
        body = req.body
        if not isinstance(body, dict):
            return self._invalid("Event object is not a JSON object")
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            return self._invalid("Length of 'routing_key' is incorrect (should be 32 "
                                 "characters)")
        if key not in self.state["routing_keys"]:
            return self._invalid("Invalid routing key")
        action = body.get("event_action")
        if action not in ACTIONS:
            return self._invalid("'event_action' is invalid (must be one of trigger, "
                                 "acknowledge, resolve)")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
            return self._invalid("'dedup_key' must be a string of 1 to 255 characters")
        payload = body.get("payload")
        if action == "trigger":
            problems = self._check_payload(payload)
            if problems:
                return self._invalid(*problems)
            dedup = dedup or uuid.uuid4().hex
        elif not dedup:
            return self._invalid(f"'dedup_key' is required for {action}")
        self.state["events"].append({"event_action": action, "dedup_key": dedup,
                                     "payload": payload, "at": time.time()})
        self._update_alert(action, dedup, payload)
        return Response(202, {"status": "success", "message": "Event processed",
                              "dedup_key": dedup})

    @staticmethod
    def _check_payload(payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        out = []
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            out.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            out.append("'payload.summary' is longer than 1024 characters")
        if not payload.get("source"):
            out.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            out.append("'payload.severity' is invalid (must be one of critical, error, "
                       "warning, info)")
        return out

    def _update_alert(self, action: str, dedup: str, payload: Any) -> None:
        alerts = self.state["alerts"]
        alert = alerts.get(dedup)
        if action == "trigger":
            if alert is None or alert["status"] == "resolved":
                triggers = alert["triggers"] if alert else 0
                alert = alerts[dedup] = {"triggers": triggers}
            alert.update(status="triggered", summary=payload.get("summary"),
                         severity=payload.get("severity"),
                         custom_details=payload.get("custom_details") or {})
            alert["triggers"] = alert.get("triggers", 0) + 1
        elif alert is not None and alert["status"] != "resolved":
            alert["status"] = "acknowledged" if action == "acknowledge" else "resolved"


STANDIN = PagerDutyStandIn


def _key_files(config: Any) -> list[Path]:
    from console.sandbox.seedkeys import sandbox_backends, sandbox_dir

    out = []
    for name in sandbox_backends(config, "pagerduty"):
        kf = config.backends[name].options.get("routing_key_file")
        out.append(Path(config.resolve(str(kf))) if kf
                   else sandbox_dir(config) / "pagerduty-routing.key")
    return out


def seed(config: Any) -> dict[str, Any]:
    """Initial state: the routing key of every sandbox PagerDuty backend (created if missing)."""
    state: dict[str, Any] = {"routing_keys": [], "events": [], "alerts": {}}
    for path in _key_files(config):
        key = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        if len(key) != 32:
            key = secrets.token_hex(16)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
            os.chmod(path, 0o600)
        if key not in state["routing_keys"]:
            state["routing_keys"].append(key)
    return state


def wanted(config: Any) -> bool:
    """True when a ``pagerduty`` backend's base_url is on this machine (the sandbox)."""
    return bool(_key_files(config))
