"""Postmortem timeline of a run or an incident, in Markdown, built only from the audit trail.

The trail is already scrubbed, so the report shows references and fingerprints, never secret
values. Sections: header (runs, incident, operator, host, mode, start/end, duration, chain
status), outcome summary, timeline (one row per event, with the duration of an operation on
the event that ends it), and attention items (failures with their messages, irreversible
changes, operations not done or never finished).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.audit import AuditLog
from console.errors import AuditError, UsageError

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["FAILED_OUTCOMES", "NOT_DONE_OUTCOMES", "render_report"]

FAILED_OUTCOMES = frozenset(
    {"failed", "failure", "error", "timeout", "refused", "drift", "aborted", "denied",
     "verify_failed", "verification_failed"}
)
"""Outcomes listed under failures."""

NOT_DONE_OUTCOMES = frozenset(
    {"skipped", "unsupported", "cancelled", "canceled", "not_done", "pending", "interrupted",
     "simulated"}
)
"""Outcomes listed as not done."""

_START = frozenset({"started", "start", "begin", "resumed"})
"""A phase or outcome that opens an operation (the engine writes ``outcome="started"``)."""
_NOT_FINAL = frozenset({"started", "start", "begin", "retrying", "pending"})
"""Outcomes that do not close an operation; any other outcome of the same op does."""


def _parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _text(value: Any) -> str:
    """One line of list text: no newlines, no backticks (they would break the code span)."""
    return " ".join(str(value).split()).replace("`", "'")


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _offset(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"+{int(minutes):02d}:{secs:06.3f}"


def _distinct(events: list[dict[str, Any]], field: str) -> str:
    values = list(dict.fromkeys(str(e[field]) for e in events if e.get(field)))
    return ", ".join(values) if values else "-"


def _message(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    for key in ("error", "message", "reason", "note"):
        if detail.get(key):
            return str(detail[key])
    return ""


def _is_irreversible(event: dict[str, Any]) -> bool:
    detail = event.get("detail") or {}
    return event.get("action") == "credential.destroy" or detail.get("reversible") is False


def _chain_status(audit: AuditLog, config: Config | None) -> str:
    try:
        if config is not None:
            from console.witness import verify_configured

            report = verify_configured(config)
        else:
            report = audit.verify()
    except AuditError as exc:
        return f"NOT VERIFIED ({exc.msg})"
    if report.ok:
        return f"verified ({report.count} events in the trail)"
    at = f" at seq {report.first_bad_seq}" if report.first_bad_seq else ""
    return f"BROKEN{at}: {report.reason}"


def render_report(
    audit: AuditLog, run_id: str | None = None, incident: str | None = None,
    config: Config | None = None,
) -> str:
    """Render the Markdown postmortem timeline of one run or of every run of an incident.

    Args:
        audit: The audit trail to read.
        run_id: The run to report on.
        incident: The incident to report on (all its runs); used when ``run_id`` is None.
        config: When given, the chain is verified against its witness and keying rules.

    Returns:
        The report as Markdown text.

    Raises:
        UsageError: Neither a run nor an incident was given, or it has no events.
    """
    if run_id is None and incident is None:
        raise UsageError("a report needs a run id or an incident id")
    events = audit.events(run_id=run_id, incident=incident if run_id is None else None)
    if run_id is not None and incident is not None:
        events = [e for e in events if e.get("incident") == incident]
    subject = f"run {run_id}" if run_id is not None else f"incident {incident}"
    if not events:
        raise UsageError(f"no audit events for {subject}",
                         hint="list runs with `killswitch audit show`")

    times = [_parse_ts(e["ts"]) for e in events]
    known = [t for t in times if t is not None]
    start, end = (min(known), max(known)) if known else (None, None)
    lines = [f"# Postmortem timeline: {_text(subject)}", ""]
    header = [
        ("Run(s)", _distinct(events, "run_id")),
        ("Incident", _distinct(events, "incident")),
        ("Operator", _distinct(events, "operator")),
        ("Host", _distinct(events, "host")),
        ("Mode", _distinct(events, "mode")),
        ("Start (UTC)", events[0]["ts"] if start is None else _iso(start)),
        ("End (UTC)", events[-1]["ts"] if end is None else _iso(end)),
        ("Duration", _duration((end - start).total_seconds()) if start and end else "-"),
        ("Events", f"{len(events)} (seq {events[0]['seq']}..{events[-1]['seq']})"),
        ("Audit chain", _chain_status(audit, config)),
    ]
    lines += [f"- **{name}:** {_text(value)}" for name, value in header]

    outcomes = Counter(e.get("outcome") or "(none)" for e in events)
    lines += ["", "## Outcomes", "", "| Outcome | Events |", "|---|---:|"]
    lines += [f"| {_cell(o)} | {n} |" for o, n in sorted(outcomes.items())]

    started: dict[str, datetime] = {}
    ended: set[str] = set()
    lines += [
        "", "## Timeline", "",
        "| Time (UTC) | Offset | Integration | Step | Action | Phase | Target | Outcome "
        "| Duration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for event, ts in zip(events, times, strict=True):
        op = event.get("op_id") or (event.get("phase") == "run" and event.get("run_id"))
        key = f"{op} ({event.get('phase') or '-'})" if op else ""
        phase = (event.get("phase") or "").lower()
        outcome = (event.get("outcome") or "").lower()
        took = ""
        if key and ts is not None and (outcome in _START or phase in _START):
            started[key] = ts
        elif key and ts is not None and key in started and outcome not in _NOT_FINAL:
            if key not in ended:
                took = _duration((ts - started[key]).total_seconds())
            ended.add(key)
        clock = ts.strftime("%H:%M:%S.%f")[:-3] if ts else _cell(event["ts"])
        offset = _offset((ts - start).total_seconds()) if ts and start else ""
        cells = [clock, offset, event.get("integration"), event.get("step"),
                 event.get("action"), event.get("phase"), event.get("target"),
                 event.get("outcome"), took]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    failures = [e for e in events if (e.get("outcome") or "").lower() in FAILED_OUTCOMES]
    irreversible = [e for e in events if _is_irreversible(e)]
    not_done = [e for e in events if (e.get("outcome") or "").lower() in NOT_DONE_OUTCOMES]
    unfinished = [op for op in started if op not in ended]
    lines += ["", "## Needs attention", ""]

    def item(e: dict[str, Any]) -> str:
        what = " ".join(_text(e[k]) for k in ("integration", "step", "action") if e.get(k))
        msg = _message(e)
        target = f" on `{_text(e['target'])}`" if e.get("target") else ""
        return (f"- seq {e['seq']} {what}{target}: **{_text(e.get('outcome') or '-')}**"
                + (f" — {_text(msg)}" if msg else ""))

    # what the plan said cannot be guaranteed (egress blocks and open connections, batch
    # cancels, scheduled deletions...): each distinct caveat once, with where it applies
    caveats: dict[str, list[str]] = {}
    for e in events:
        note = (e.get("detail") or {}).get("note") if e.get("phase") == "plan" else None
        if note and e.get("action") in ("egress.block", "batch.cancel") and e.get("target"):
            for sentence in str(note).split(". "):
                if any(w in sentence for w in ("outlive", "cannot be undone", "resubmit")):
                    caveats.setdefault(sentence.strip().rstrip(".") + ".", []).append(
                        str(e["target"]))
    sections = [
        ("Caveats", [f"- {_text(c)} (`{'`, `'.join(sorted(set(t)))}`)"
                     for c, t in caveats.items()]),
        ("Failures", [item(e) for e in failures]),
        ("Irreversible changes", [item(e) for e in irreversible]),
        ("Not done", [item(e) for e in not_done]),
        ("Started but never ended", [f"- `{_text(op)}`" for op in unfinished]),
    ]
    for title, items in sections:
        lines += [f"### {title}", ""] + (items or ["- none"]) + [""]
    return "\n".join(lines).rstrip() + "\n"
