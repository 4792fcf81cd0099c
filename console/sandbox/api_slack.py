"""Slack incoming-webhook stand-in: a local receiver that records every message that arrived.

Served (provider-apis.md 8.2)::

    POST /services/{T...}/{B...}/{token}   {"text": ..., "blocks"?: [...]}   -> 200 ``ok``

Answers are plain text, like Slack's: ``ok``; 400 ``invalid_payload`` (not a JSON object),
``no_text`` (neither text nor blocks), ``invalid_blocks``; 404 ``no_service`` (unknown hook).
Fault injection (latency, 429 ``rate_limited`` with ``Retry-After``, 5xx ``rollup_error`` /
``service_unavailable``, hangs) comes from :class:`~console.sandbox.standin.StandIn`.

Every accepted message is kept in ``state["messages"]`` (GET /_sandbox/state): ``hook`` (the
path without its secret token), ``text``, ``blocks``, ``at``.

Seed: for every ``slack`` backend whose ``webhook_file`` lies in the sandbox folder, the file
is (re)written with ``http://127.0.0.1:<port>/services/T000/B000/<random token>`` (0600) and
the hook is registered.

The stand-in base JSON-encodes every body; Slack answers plain text, so :func:`serve` here
serves ``str`` bodies as ``text/plain`` (tests use it). Until ``standin.serve`` does the same,
the sandbox process answers ``"ok"`` JSON-quoted, which the adapter rejects.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from console.sandbox.standin import Request, Response, StandIn

__all__ = ["DEFAULT_PORT", "STANDIN", "SlackStandIn", "seed", "wanted"]

DEFAULT_PORT = 8393
TYPES = ("slack",)
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
_HOOK = re.compile(r"^/services/(T[A-Za-z0-9]+)/(B[A-Za-z0-9]+)/([A-Za-z0-9]+)$")


class SlackStandIn(StandIn):
    """Slack incoming webhooks from memory.

    State::

        {"hooks": ["/services/T000/B000/<token>"],
         "messages": [{"hook": "/services/T000/B000", "text": "...", "blocks": [...],
                       "at": 1700000000.0}]}
    """

    name: ClassVar[str] = "slack"

    def setup(self) -> None:
        """Register the webhook route."""
        self.state.setdefault("hooks", [])
        self.state.setdefault("messages", [])
        self.route("POST", r"/services/(?P<team>[^/]+)/(?P<bot>[^/]+)/(?P<token>[^/]+)",
                   self.post)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """Slack's errors are short plain-text strings."""
        if status == 429:
            return "rate_limited"
        if status == 500:
            return "rollup_error"
        if status >= 500:
            return "service_unavailable"
        if status == 404:
            return "no_service"
        return kind or message

    def error(self, status: int, message: str, kind: str = "",
              headers: dict[str, str] | None = None) -> Response:
        """A plain-text error response."""
        return Response(status, self.error_body(status, message, kind),
                        {**PLAIN, **(headers or {})})

    def post(self, req: Request) -> Response:
        """Accept one message on a known hook."""
        if req.path not in self.state["hooks"]:
            return self.error(404, "no_service", "no_service")
        body = req.body
        if not isinstance(body, dict):
            return self.error(400, "invalid_payload", "invalid_payload")
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            return self.error(400, "no_text", "no_text")
        if blocks is not None and not (isinstance(blocks, list) and all(
                isinstance(b, dict) and b.get("type") for b in blocks)):
            return self.error(400, "invalid_blocks", "invalid_blocks")
        if text is not None and not isinstance(text, str):
            return self.error(400, "invalid_payload", "invalid_payload")
        self.state["messages"].append({"hook": req.path.rsplit("/", 1)[0], "text": text,
                                       "blocks": blocks, "at": time.time()})
        return Response(200, "ok", dict(PLAIN))


STANDIN = SlackStandIn


def _webhook_files(config: Any) -> list[Path]:
    from console.sandbox.seedkeys import sandbox_dir

    root = sandbox_dir(config).resolve()
    out = []
    for b in config.backends.values():
        wf = b.options.get("webhook_file") if b.type in TYPES else None
        if not wf:
            continue
        path = Path(config.resolve(str(wf))).resolve()
        if path == root or root in path.parents:
            out.append(path)
    return out


def seed(config: Any) -> dict[str, Any]:
    """Initial state: one hook per sandbox Slack backend, its URL written to webhook_file."""
    from console.sandbox.standins import port_of

    port = port_of(config, sys.modules[__name__])
    state: dict[str, Any] = {"hooks": [], "messages": []}
    for path in _webhook_files(config):
        token = ""
        if path.is_file():
            m = _HOOK.match(urlsplit(path.read_text(encoding="utf-8").strip()).path)
            token = m.group(3) if m else ""
        token = token or secrets.token_hex(12)
        hook = f"/services/T000/B000/{token}"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"http://127.0.0.1:{port}{hook}\n")
        os.chmod(path, 0o600)
        state["hooks"].append(hook)
    return state


def wanted(config: Any) -> bool:
    """True when a ``slack`` backend's webhook_file lies in the sandbox folder."""
    return bool(_webhook_files(config))
