"""Postmortem timeline of a run or an incident, built only from the audit trail.

The trail is already scrubbed, so the report shows references and fingerprints, never secret
values. Sections: header (runs, incident, operator, host, mode, start/end, duration, chain
status), outcome summary, timeline (one row per event, with the duration of an operation on
the event that ends it), and attention items (failures with their messages, irreversible
changes, operations not done or never finished).

:func:`build_report` reads the trail once into a :class:`Report`; :func:`render_report` writes
it as the CLI's Markdown (``killswitch report``), and :func:`render_console_report` as the
console's: one line per timeline event (readable at 80 columns), the console's keys instead of
command lines (:func:`console_words`), and what can be done next in the console.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.audit import TrailBase
from console.errors import AuditError, UsageError

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["FAILED_OUTCOMES", "NOT_DONE_OUTCOMES", "Report", "TimelineEntry", "build_report",
           "console_words", "render_console_report", "render_report"]

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


def _chain_status(audit: TrailBase, config: Config | None) -> tuple[str, bool]:
    try:
        if config is not None:
            from console.witness import verify_configured

            report = verify_configured(config)
        else:
            report = audit.verify()
    except AuditError as exc:
        return f"NOT VERIFIED ({exc.msg})", False
    if report.ok:
        return f"verified ({report.count} events in the trail)", True
    at = f" at seq {report.first_bad_seq}" if report.first_bad_seq else ""
    return f"BROKEN{at}: {report.reason}", False


@dataclass
class TimelineEntry:
    """One audit event as the timeline shows it.

    Attributes:
        seq: Sequence number in the trail.
        ts: UTC time as recorded.
        clock: ``HH:MM:SS.mmm`` (the recorded text when it cannot be parsed).
        offset: Time since the first event, ``+MM:SS.mmm``.
        duration: How long the operation took, on the event that ends it.
        message: The event's error, message, reason or note.
        event: The event itself (run, integration, step, action, phase, target, outcome,
            detail...).
    """

    seq: int
    ts: str
    clock: str
    offset: str
    duration: str
    message: str
    event: dict[str, Any] = field(repr=False)
    irreversible: bool = False
    """The event is about a change that cannot be undone (its plan said so)."""

    def get(self, name: str) -> str:
        """An event field as text (``""`` when empty)."""
        value = self.event.get(name)
        return "" if value is None else str(value)

    @property
    def word(self) -> str:
        """The outcome in the console's words: ``verified``, ``STILL LIVE``, ``applied``..."""
        outcome = self.get("outcome")
        if self.get("phase") != "verify" or self.get("action") == "credential.proof":
            return outcome
        state = str((self.event.get("detail") or {}).get("state") or "")
        if outcome == "ok":
            return "verified"
        if state in ("live", "STILL LIVE"):
            return "STILL LIVE"
        if state in ("", "unknown"):
            return "not checked"
        return f"{state} (not as planned)"

    @property
    def parts(self) -> list[str]:
        """What the event is about: ``["app-0", "flag.disable", "sim:app-0-flag"]``."""
        if self.get("phase") == "run":
            return ["run", self.get("action")]
        return [p for p in (self.get(k) for k in ("integration", "action", "target")) if p]

    @property
    def what(self) -> str:
        """What the event is about, in one line: ``app-0 flag.disable sim:app-0-flag``."""
        return " ".join(self.parts).strip()


@dataclass
class Report:
    """A run's or an incident's postmortem, read from the trail (see :func:`build_report`).

    Attributes:
        subject: ``run ID`` or ``incident ID``.
        header: ``(name, value)`` lines: runs, incident, operator, host, mode, times, chain.
        outcomes: ``(outcome, events)`` counts, sorted by outcome.
        timeline: Every event, oldest first.
        sections: ``(title, Markdown list items)`` of what needs attention.
        chain_ok: The audit chain verified.
        run_ids: The runs reported on.
        runbooks: The runbooks those runs ran (``restore`` for an undo).
        run_outcomes: Outcomes of the runs' own events (started, finished, cancelled...).
        banner: What the runs were when none (or not all) of them touched real systems:
            ``REHEARSAL: simulated; nothing real was changed`` and the like; empty for
            live runs only.
    """

    subject: str
    header: list[tuple[str, str]]
    outcomes: list[tuple[str, int]]
    timeline: list[TimelineEntry]
    sections: list[tuple[str, list[str]]]
    chain_ok: bool
    run_ids: list[str]
    runbooks: list[str]
    run_outcomes: list[str]
    banner: str = ""

    def count(self, title: str) -> int:
        """Items of the attention section ``title`` (``Failures``, ``Not done``...)."""
        return next((len(items) for t, items in self.sections if t == title), 0)


def build_report(
    audit: TrailBase, run_id: str | None = None, incident: str | None = None,
    config: Config | None = None,
) -> Report:
    """Read one run, or every run of an incident, from the trail.

    Args:
        audit: The audit trail to read.
        run_id: The run to report on.
        incident: The incident to report on (all its runs); used when ``run_id`` is None.
        config: When given, the chain is verified against its witness and keying rules.

    Returns:
        The report, ready for :func:`render_report` or :func:`render_console_report`.

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
    chain, chain_ok = _chain_status(audit, config)
    header = [
        ("Run(s)", _distinct(events, "run_id")),
        ("Incident", _distinct(events, "incident")),
        ("Cause", ", ".join(sorted({str((e.get("detail") or {}).get("cause"))
                                    for e in events if e.get("phase") in ("run", "plan")
                                    and (e.get("detail") or {}).get("cause")})) or "other"),
        ("Operator", _distinct(events, "operator")),
        ("Host", _distinct(events, "host")),
        ("Mode", _distinct(events, "mode")),
        ("Start (UTC)", events[0]["ts"] if start is None else _iso(start)),
        ("End (UTC)", events[-1]["ts"] if end is None else _iso(end)),
        ("Duration", _duration((end - start).total_seconds()) if start and end else "-"),
        ("Events", f"{len(events)} (seq {events[0]['seq']}..{events[-1]['seq']})"),
        ("Audit chain", chain),
    ]
    outcomes = Counter(e.get("outcome") or "(none)" for e in events)

    # an apply event does not say whether its change can be undone: its plan event does
    irreversible_ops = {e.get("op_id") for e in events if e.get("op_id") and _is_irreversible(e)}

    def one_way(e: dict[str, Any]) -> bool:
        return _is_irreversible(e) or (bool(e.get("op_id")) and e.get("op_id") in irreversible_ops)

    started: dict[str, datetime] = {}
    ended: set[str] = set()
    timeline: list[TimelineEntry] = []
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
        timeline.append(TimelineEntry(int(event["seq"]), str(event["ts"]), clock, offset,
                                      took, _message(event), event, one_way(event)))

    failures = [e for e in events if (e.get("outcome") or "").lower() in FAILED_OUTCOMES]
    # what was done that cannot be undone; for a run that applied nothing, what would be
    applied = [e for e in events if e.get("phase") == "apply" and one_way(e)
               and (e.get("outcome") or "").lower() == "applied"]
    irreversible = applied or [e for e in events if _is_irreversible(e)]
    not_done = [e for e in events if (e.get("outcome") or "").lower() in NOT_DONE_OUTCOMES]
    unfinished = [op for op in started if op not in ended]

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
    # credentials the integration's tools hold: op id -> its last apply event
    downstream: dict[Any, dict[str, Any]] = {}
    for e in events:
        if e.get("phase") == "apply" and str(e.get("target") or "").endswith("(downstream)"):
            downstream[e.get("op_id") or e["seq"]] = e
    sections = [
        *([("Downstream credentials (held by the integration's tools)",
            [item(e) for e in downstream.values()])] if downstream else []),
        ("Caveats", [f"- {_text(c)} (`{'`, `'.join(sorted(set(t)))}`)"
                     for c, t in caveats.items()]),
        ("Failures", [item(e) for e in failures]),
        ("Irreversible changes", [item(e) for e in irreversible]),
        ("Not done", [item(e) for e in not_done]),
        ("Started but never ended", [f"- `{_text(op)}`" for op in unfinished]),
    ]
    sections[:0] = _break_glass(events)
    runs = [e for e in events if e.get("phase") == "run"]
    return Report(
        subject=subject, header=header, outcomes=sorted(outcomes.items()), timeline=timeline,
        sections=sections, chain_ok=chain_ok,
        run_ids=list(dict.fromkeys(str(e["run_id"]) for e in events if e.get("run_id"))),
        runbooks=list(dict.fromkeys(str(e["action"]) for e in runs if e.get("action"))),
        run_outcomes=[str(e.get("outcome") or "") for e in runs],
        banner=_banner(events))


_NOT_REAL = {
    "rehearsal": "REHEARSAL: simulated; nothing real was changed",
    "exercise": "EXERCISE: applied only to sandbox backends; nothing real was changed",
    "dry-run": "DRY-RUN: nothing was changed anywhere",
}
"""What a report of a run that touched no real system says first, by the run's mode."""


def _run_mode(modes: set[str]) -> str:
    """One run's mode from the modes its events were recorded in.

    A run planned with ``killswitch plan`` and run later has ``plan`` and the run's mode; a
    plan made while the console was in dry-run and then applied live has ``dry-run`` and
    ``live``: anything not known to have changed nothing counts as live (a report must never
    say "nothing was changed" of a run that may have changed something).
    """
    acting = modes - {"plan"}
    if not acting:
        return "plan"
    if acting <= set(_NOT_REAL):
        return min(acting)
    return "live"


def _banner(events: list[dict[str, Any]]) -> str:
    """The report's first words when its runs did not (all) touch real systems.

    A report is read later, by people who were not there: a rehearsal's timeline reads
    exactly like a live one's (``applied``, ``verified``), so it says so above everything.
    An incident with live and other runs names the runs that were not live.
    """
    seen: dict[str, set[str]] = {}
    for e in events:
        if e.get("run_id") and e.get("mode"):
            seen.setdefault(str(e["run_id"]), set()).add(str(e["mode"]))
    modes = {run: _run_mode(m) for run, m in seen.items()}
    kinds = set(modes.values())
    unreal = sorted(kinds & set(_NOT_REAL))
    if not unreal:
        return ""
    if not kinds - set(_NOT_REAL) - {"plan"}:
        return "; ".join(_NOT_REAL[k] for k in unreal) + "."
    named = ", ".join(f"{run} ({mode.upper()})" for run, mode in modes.items()
                      if mode in _NOT_REAL)
    return f"MIXED: only some runs touched real systems; not real: {named}."


def _break_glass(events: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The two-person rule set aside (``--break-glass``) and whether it was co-signed."""
    signed = {str((e.get("detail") or {}).get("approval_id")): e for e in events
              if e.get("action") == "approval.cosigned"}
    items = []
    for e in events:
        if e.get("action") != "approval.break_glass":
            continue
        d = e.get("detail") or {}
        cosign = str(d.get("approval_id") or e.get("target") or "")
        by = signed.get(cosign)
        state = (f"co-signed by {_text(by.get('operator'))}@{_text(by.get('host'))} at "
                 f"{_text(by.get('ts'))}: {_text((by.get('detail') or {}).get('reason'))}"
                 if by is not None else
                 f"**co-signature pending** — `killswitch approve {_text(cosign)} --reason "
                 "'...'`")
        items.append(f"- seq {e['seq']} applied by {_text(e.get('operator'))}@"
                     f"{_text(e.get('host'))} alone, without a second operator: "
                     f"{_text(d.get('reason'))}; {state}")
    return [("Break-glass (two-person rule set aside)", items)] if items else []


def render_report(
    audit: TrailBase, run_id: str | None = None, incident: str | None = None,
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
    report = build_report(audit, run_id=run_id, incident=incident, config=config)
    lines = _head(report)
    lines += ["", "## Outcomes", "", "| Outcome | Events |", "|---|---:|"]
    lines += [f"| {_cell(o)} | {n} |" for o, n in report.outcomes]
    lines += [
        "", "## Timeline", "",
        "| Time (UTC) | Offset | Integration | Step | Action | Phase | Target | Outcome "
        "| Duration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in report.timeline:
        e = t.event
        cells = [t.clock, t.offset, e.get("integration"), e.get("step"), e.get("action"),
                 e.get("phase"), e.get("target"), e.get("outcome"), t.duration]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Needs attention", ""]
    for title, items in report.sections:
        lines += [f"### {title}", ""] + (items or ["- none"]) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _head(report: Report) -> list[str]:
    lines = [f"# Postmortem timeline: {_text(report.subject)}", ""]
    if report.banner:
        lines += [f"> **{_text(report.banner)}**", ""]
    return lines + [f"- **{name}:** {_text(value)}" for name, value in report.header]


# -- the console's words --------------------------------------------------------------------
_AUDIT = "the audit trail (A)"
_CONSOLE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words) for pattern, words in (
        (r"(?:then )?pass --allow-irreversible to consent",
         "tick the irreversible box in the confirmation to consent"),
        (r"--allow-irreversible", "the irreversible box in the confirmation"),
        (r"(?:or )?pass --max-targets \d+",
         "mark fewer integrations (max_targets in the config sets the limit)"),
        (r"`?killswitch restore(?: [A-Za-z0-9_<>.-]+)?`?",
         f"restore ({_AUDIT}: highlight the run, press u)"),
        (r"`?killswitch resume(?: [A-Za-z0-9_<>.-]+)?`?",
         "resume (u on the run screen; the console offers unfinished runs when it starts)"),
        (r"`?killswitch report(?: [A-Za-z0-9_<>.-]+)?`?",
         f"the run's report ({_AUDIT}: highlight the run, press o)"),
        (r"`?killswitch audit show`?", _AUDIT),
        (r"`?killswitch audit verify`?", f"the chain check of {_AUDIT} (r verifies again)"),
        (r"`?killswitch plan[^`\n]*?(?:--out FILE)?`", "a new plan (r on the inventory)"),
        (r"`?killswitch inventory list[^`\n]*`?", "the inventory filter (/ on the inventory)"),
        (r"`?killswitch sandbox start`?", "the sandbox (started outside this console)"),
        (r"`killswitch[^`\n]*`", "the command line (outside this console)"),
        (r"(?<![\w-])--[a-z][a-z-]+(?: [A-Z_]+)?", "a command-line option"),
    ))


def console_words(text: str) -> str:
    """``text`` with command lines and ``--flags`` replaced by the console's keys.

    Hints, notes and messages are written once, for the CLI (``use `killswitch restore
    RUN_ID```, ``pass --allow-irreversible``); the console says the same with its own keys
    (``restore (the audit trail (A): highlight the run, press u)``).
    """
    for pattern, words in _CONSOLE_WORDS:
        text = pattern.sub(words, text)
    return text


def next_steps(report: Report) -> list[str]:
    """What can be done next about the reported run(s), with the console's keys."""
    steps: list[str] = []
    outcomes = set(report.run_outcomes)
    applied = any(t.get("phase") == "apply" and t.get("outcome") == "applied"
                  for t in report.timeline)
    if "cancelled" in outcomes or ("started" in outcomes and "finished" not in outcomes):
        steps.append("Finish the run: u on its run screen; the console offers unfinished runs "
                     "when it starts.")
    words = {t.get("outcome").lower() for t in report.timeline}
    if words & (FAILED_OUTCOMES | {"skipped", "pending", "interrupted"}):
        steps.append("Retry what failed: t on the run screen, or plan the runbook again "
                     "(r on the inventory).")
    if "unsupported" in words:
        steps.append("What no adapter can do did not happen (see Not done): do it by hand "
                     "at the system itself.")
    if applied and "restore" not in report.runbooks:
        steps.append(f"Restore (undo this run): {_AUDIT}, highlight the run, press u.")
    if not report.chain_ok:
        steps.append(f"Check the chain again: r on {_AUDIT}.")
    return steps or ["Nothing left to do for this run."]


def render_console_report(report: Report) -> str:
    """The report as the console shows it in full: Markdown that reads well at 80 columns.

    The timeline is one line per event (time, outcome, what), the hints name console keys,
    and a last section says what can be done next in the console.
    """
    lines = _head(report)
    lines += ["", "## Outcomes", ""]
    lines += [f"- {_text(o)}: {n}" for o, n in report.outcomes]
    lines += ["", "## Timeline", ""]
    for t in report.timeline:
        took = f" ({t.duration})" if t.duration else ""
        what = _text(t.what)
        lines.append(f"- {t.clock} **{_text(t.word or '-')}** {what}{took}")
    lines += ["", "## Needs attention", ""]
    unproven = [f"- seq {t.seq} {_text(t.what)}: **{t.word}**"
                + (f" — {_text(t.message)}" if t.message else "")
                for t in report.timeline if t.word in ("STILL LIVE", "not checked", "unknown")
                and t.get("phase") == "verify"]
    lines += ["### STILL LIVE or not checked", ""] + (unproven or ["- none"]) + [""]
    for title, items in report.sections:
        lines += [f"### {title}", ""] + (items or ["- none"]) + [""]
    lines += ["## What next (keys in this console)", ""]
    lines += [f"- {step}" for step in next_steps(report)]
    return console_words("\n".join(lines).rstrip() + "\n")
