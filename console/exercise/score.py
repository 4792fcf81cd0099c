"""The scorecard and the after-action report of an exercise, measured from the audit trail.

Nothing here reads a clock: every number comes from the events of the exercise
(:meth:`console.audit.AuditLog.events` dicts: ``ts``, ``run_id``, ``incident``, ``mode``,
``integration``, ``step``, ``op_id``, ``phase``, ``action``, ``target``, ``outcome``,
``detail``). Measured times are real seconds from T+0 (the ``exercise.start`` event);
objective deadlines are exercise seconds, so an objective ``within`` W is met when
``measured_seconds * speed <= W``.

What the player records (all with ``incident`` = ``run_id`` = the exercise id, ``mode``
``exercise``, ``phase`` ``exercise``, and ``"scenario": name`` in ``detail``):

- ``exercise.start`` / ``started``: T+0. ``detail`` from :func:`start_detail` (``speed``, and
  ``kill_points``: each integration's listed kill points, so that "contained" means every
  kill point the inventory lists, not only those a run happened to touch).
- ``inject`` / ``shown``: ``detail`` ``{"at": exercise seconds, "message": str,
  "fault": dict | None}``; ``fault`` / ``applied`` and ``fault.clear`` / ``applied`` for
  faults (``detail["fault"]``).
- ``response`` / ``refused`` (or ``failed``): a scripted step or a console run refused
  before the engine recorded anything (a lock held, no consent): ``integration`` may be set,
  ``detail`` ``{"runbook", "selectors", "message"}``. Counted in ``operations.refused``.
- :data:`CHECK_COPIES` (``scan``) / ``clean`` | ``live`` | ``incomplete``: at the end, before
  scoring, one per integration that has a ``no-live-copy`` objective: a scan of the stores
  for the integration's key, ``integration`` set and ``detail`` ``{"live_copies": N or
  [targets still holding the key], "problems": [what could not be looked at]}``. The
  objective is met when the last scan found no live copy and no problem.
- ``objective`` / ``met`` | ``missed``: after scoring, from :func:`objective_records`.
- ``exercise.end`` / ``finished``.

Runs made during the exercise are normal engine runs (``Session(mode="exercise",
incident=<exercise id>)``): their ``run`` / ``apply`` / ``verify`` events are what is scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.base import KILL_POINTS
from console.config import Config
from console.exercise.scenario import Scenario, format_clock
from console.inventory import KILL_POINT_LISTS

__all__ = [
    "CHECK_COPIES",
    "CONTAINMENT_ACTIONS",
    "EXERCISE_PHASE",
    "IntegrationScore",
    "InjectScore",
    "ObjectiveScore",
    "Scorecard",
    "objective_records",
    "render_aar",
    "score",
    "start_detail",
]

EXERCISE_PHASE = "exercise"
"""The ``phase`` of the exercise's own events."""
CHECK_COPIES = "scan"
"""``action`` of the player's end-of-exercise credentials scan event (``no-live-copy``);
``check.copies`` is accepted too."""
CONTAINMENT_ACTIONS = frozenset({"flag.disable", "batch.cancel", "egress.block",
                                 "credential.disable", "credential.destroy"})
"""Actions that contain (their inverses, ``notify`` and ``evidence.preserve`` do not)."""


def start_detail(scenario: Scenario, config: Config, *, speed: float) -> dict[str, Any]:
    """The ``detail`` of the ``exercise.start`` event: what scoring needs from the config.

    Returns:
        ``{"scenario", "title", "speed", "integrations", "kill_points": {id: [kill points
        the inventory lists]}}``.
    """
    kill_points: dict[str, list[str]] = {}
    for iid in scenario.integrations:
        integ = config.integration(iid)
        if integ is not None:
            kill_points[iid] = [kp for kp in KILL_POINT_LISTS if getattr(integ, kp, None)]
    return {"scenario": scenario.name, "title": scenario.title, "speed": speed,
            "integrations": list(scenario.integrations), "kill_points": kill_points}


# --------------------------------------------------------------------------- the card


@dataclass
class IntegrationScore:
    """One integration's times (real seconds from T+0; None: not reached).

    Attributes:
        time_to_contain_s: When the last of its kill points went off.
        kill_points: Kill point -> when every one of its targets was verified off.
        time_to_proof_s: When its key was proven dead at the provider.
    """

    time_to_contain_s: float | None = None
    kill_points: dict[str, float | None] = field(default_factory=dict)
    time_to_proof_s: float | None = None


@dataclass
class ObjectiveScore:
    """One objective's result."""

    id: str
    kind: str
    met: bool
    detail: str
    integration: str = ""


@dataclass
class InjectScore:
    """One inject and how the team responded.

    Attributes:
        at_s: Exercise seconds of the inject.
        message: What the players saw.
        fault: The fault applied, if any.
        shown_s: Real seconds from T+0 at which the inject was recorded.
        response_s: Real seconds from the inject to the first containment action after it.
        fault_outcome: ``applied`` or ``failed`` (the fault did not take effect: the sandbox
            refused it or did not answer); None without a fault, or before it was applied.
        fault_error: Why the fault failed.
    """

    at_s: float
    message: str
    fault: dict[str, Any] | None
    shown_s: float = 0.0
    response_s: float | None = None
    fault_outcome: str | None = None
    fault_error: str = ""

    @property
    def response(self) -> str | None:
        """``first action N s later`` or None."""
        return None if self.response_s is None else f"first action {self.response_s:g} s later"


@dataclass
class Scorecard:
    """An exercise measured from its trail. :meth:`to_json` has the documented names."""

    scenario: str
    exercise_id: str
    started: str | None = None
    ended: str | None = None
    speed: float = 1.0
    time_to_first_action_s: float | None = None
    time_to_contain_s: float | None = None
    integrations: dict[str, IntegrationScore] = field(default_factory=dict)
    time_to_proof_s: float | None = None
    operations: dict[str, int] = field(default_factory=dict)
    irreversible: list[dict[str, Any]] = field(default_factory=list)
    objectives: list[ObjectiveScore] = field(default_factory=list)
    injects: list[InjectScore] = field(default_factory=list)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    """(real seconds from T+0, what happened), in time order (for the report)."""

    @property
    def all_objectives_met(self) -> bool:
        """True when every objective was met."""
        return all(o.met for o in self.objectives)

    def to_json(self) -> dict[str, Any]:
        """The scorecard as JSON-ready data (``exercise run --json``)."""
        return {
            "scenario": self.scenario,
            "exercise_id": self.exercise_id,
            "started": self.started,
            "ended": self.ended,
            "time_to_first_action_s": self.time_to_first_action_s,
            "time_to_contain_s": self.time_to_contain_s,
            "integrations": {
                iid: {"time_to_contain_s": s.time_to_contain_s,
                      "kill_points": dict(s.kill_points),
                      "time_to_proof_s": s.time_to_proof_s}
                for iid, s in self.integrations.items()},
            "time_to_proof_s": self.time_to_proof_s,
            "operations": dict(self.operations),
            "irreversible": [dict(i) for i in self.irreversible],
            "objectives": [{"id": o.id, "kind": o.kind, "met": o.met, "detail": o.detail}
                           for o in self.objectives],
            "injects": [{"at_s": i.at_s, "message": i.message, "fault": i.fault,
                         "fault_outcome": i.fault_outcome,
                         **({"fault_error": i.fault_error} if i.fault_error else {}),
                         "response": i.response} for i in self.injects],
            "all_objectives_met": self.all_objectives_met,
        }


def objective_records(card: Scorecard) -> list[dict[str, Any]]:
    """The ``objective`` events the player appends after scoring (one per objective).

    Each dict holds ``integration``, ``phase``, ``action``, ``target``, ``outcome``
    (``met`` / ``missed``) and ``detail``; the player adds ``run_id``, ``incident``,
    ``mode`` and ``operator``.
    """
    return [{"integration": o.integration or None, "phase": EXERCISE_PHASE,
             "action": "objective", "target": o.id, "outcome": "met" if o.met else "missed",
             "detail": {"scenario": card.scenario, "id": o.id, "kind": o.kind,
                        "met": o.met, "detail": o.detail}}
            for o in card.objectives]


# --------------------------------------------------------------------------- scoring


def _ts(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))


def _r(seconds: float) -> float:
    return round(max(seconds, 0.0), 2)


def _detail(event: Mapping[str, Any]) -> dict[str, Any]:
    d = event.get("detail")
    return d if isinstance(d, dict) else {}


def _is(event: Mapping[str, Any], phase: str, action: str | None = None,
        outcome: str | None = None) -> bool:
    return (event.get("phase") == phase
            and (action is None or event.get("action") == action)
            and (outcome is None or event.get("outcome") == outcome))


def score(events: Sequence[Mapping[str, Any]], scenario: Scenario,
          exercise_id: str | None = None) -> Scorecard:
    """Measure an exercise from its trail events.

    Args:
        events: Audit events (``AuditLog.events(incident=exercise_id)``), in ``seq`` order.
        scenario: The scenario played (its integrations and objectives).
        exercise_id: Only events of this incident count; None: the ``exercise.start``
            event's run id (or every event given, when there is none).

    Returns:
        The scorecard. An integration's kill point is off at the last verify-ok event among
        its targets of that kill point planned by the exercise's runs (every one of them must
        be verified off, else None); an integration is contained when every kill point its
        inventory lists (from ``exercise.start``; else every one its runs touched) is off.
    """
    start = next((e for e in events if _is(e, EXERCISE_PHASE, "exercise.start")), None)
    if exercise_id is None and start is not None:
        exercise_id = str(start.get("run_id") or start.get("incident") or "")
    if exercise_id:
        events = [e for e in events if e.get("incident") == exercise_id]
    card = Scorecard(scenario=scenario.name, exercise_id=exercise_id or "")
    card.operations = {"applied": 0, "failed": 0, "retried": 0, "refused": 0, "skipped": 0}
    if not events:
        card.integrations = {iid: IntegrationScore() for iid in scenario.integrations}
        card.objectives = _objectives(card, scenario, {})
        return card
    start = next((e for e in events if _is(e, EXERCISE_PHASE, "exercise.start")), None)
    end = next((e for e in reversed(events) if _is(e, EXERCISE_PHASE, "exercise.end")), None)
    t0 = _ts(start or events[0])
    start_info = _detail(start) if start else {}
    try:
        card.speed = float(start_info.get("speed") or 1.0)
    except (TypeError, ValueError):
        card.speed = 1.0
    card.started = str((start or events[0])["ts"])
    card.ended = str((end or events[-1])["ts"])

    def at(e: Mapping[str, Any]) -> float:
        return _r((_ts(e) - t0).total_seconds())

    timeline: list[tuple[float, str]] = []
    plans: dict[tuple[str, str], dict[str, Any]] = {}  # (run_id, op_id) -> planned change
    consent: dict[str, bool] = {}  # run_id -> allow_irreversible
    runbook_of: dict[str, str] = {}
    targets: dict[tuple[str, str], set[str]] = {}  # (integration, kill point) -> targets
    off_at: dict[tuple[str, str, str], float] = {}  # (integ, kp, target) -> first verify ok
    proofs: dict[str, float | None] = {}
    first_action: float | None = None
    action_times: list[float] = []
    irreversible: dict[tuple[str, str], dict[str, Any]] = {}

    for e in events:
        phase, action, outcome = e.get("phase"), e.get("action"), e.get("outcome")
        detail = _detail(e)
        run_id = str(e.get("run_id") or "")
        integ = str(e.get("integration") or "")
        if phase == "run" and outcome == "started":
            consent[run_id] = bool(detail.get("allow_irreversible"))
            runbook_of[run_id] = str(action or "")
            plan = detail.get("plan") if isinstance(detail.get("plan"), dict) else {}
            changes = plan.get("changes") if isinstance(plan, dict) else None
            for c in changes if isinstance(changes, list) else []:
                if not isinstance(c, dict):
                    continue
                plans[(run_id, str(c.get("op_id")))] = c
                if c.get("action") in CONTAINMENT_ACTIONS:
                    kp = KILL_POINTS[str(c["action"])]
                    targets.setdefault((str(c.get("integration")), kp), set()).add(
                        str(c.get("target")))
            who = plan.get("integrations") if isinstance(plan, dict) else None
            names = ", ".join(map(str, who)) if isinstance(who, list) else "?"
            timeline.append((at(e), f"run {action} started on {names}"
                             + (" (consent to irreversible changes)"
                                if consent[run_id] else "")))
        elif phase == "run" and outcome in ("finished", "cancelled"):
            code = detail.get("exit_code")
            timeline.append((at(e), f"run {action} {outcome}"
                             + (f" (exit code {code})" if code is not None else "")))
        elif phase == "run" and outcome in ("refused", "failed"):
            if outcome == "refused":  # a run refused before it started (lock, drift)
                card.operations["refused"] += 1
            timeline.append((at(e), f"run {action} {outcome}: {detail.get('message', '')}"))
        elif phase == "apply":
            if outcome == "started" and action in CONTAINMENT_ACTIONS:
                action_times.append(at(e))
                if first_action is None:
                    first_action = at(e)
            key = {"applied": "applied", "failed": "failed", "retrying": "retried",
                   "refused": "refused", "skipped": "skipped"}.get(str(outcome))
            if key:
                card.operations[key] += 1
            if outcome in ("failed", "refused"):
                timeline.append((at(e), f"{action} {e.get('target')} {outcome}: "
                                 f"{detail.get('message', '')}".rstrip(": ")))
            if outcome == "applied":
                change = plans.get((run_id, str(e.get("op_id"))))
                if change is not None and change.get("reversible") is False:
                    irreversible.setdefault((run_id, str(e.get("op_id"))), {
                        "target": str(e.get("target") or change.get("target")),
                        "consent": consent.get(run_id, False)})
        elif phase == "verify" and action == "credential.proof":
            if outcome == "revoked" and proofs.get(integ) is None:
                proofs[integ] = at(e)
                timeline.append((at(e), f"{integ}: key proven dead at the provider"))
            else:
                proofs.setdefault(integ, None)
                if outcome != "revoked":
                    timeline.append((at(e), f"{integ}: proof of death {outcome}"))
        elif phase == "verify" and outcome == "ok" and action in CONTAINMENT_ACTIONS:
            kp = KILL_POINTS[str(action)]
            off_at.setdefault((integ, kp, str(e.get("target"))), at(e))
        elif phase == EXERCISE_PHASE:
            _exercise_event(e, at(e), timeline, card)

    card.time_to_first_action_s = first_action
    card.irreversible = list(irreversible.values())
    listed = start_info.get("kill_points")
    listed = listed if isinstance(listed, dict) else {}
    seen = list(dict.fromkeys([*scenario.integrations,
                               *(i for i, _ in targets if i not in scenario.integrations)]))
    for iid in seen:
        s = IntegrationScore()
        wanted = listed.get(iid)
        kps = [kp for kp in KILL_POINT_LISTS
               if (isinstance(wanted, list) and kp in wanted) or (iid, kp) in targets]
        for kp in kps:
            tset = targets.get((iid, kp), set())
            times = [off_at.get((iid, kp, t)) for t in sorted(tset)]
            done = bool(times) and all(t is not None for t in times)
            s.kill_points[kp] = max(t for t in times if t is not None) if done else None
            if done:
                timeline.append((s.kill_points[kp] or 0.0, f"{iid}: every {kp} target "
                                 "verified off"))
        values = list(s.kill_points.values())
        if values and all(v is not None for v in values):
            s.time_to_contain_s = max(v for v in values if v is not None)
        s.time_to_proof_s = proofs.get(iid)
        card.integrations[iid] = s
    scoped = [card.integrations[i] for i in scenario.integrations]
    contain = [s.time_to_contain_s for s in scoped]
    if contain and all(c is not None for c in contain):
        card.time_to_contain_s = max(c for c in contain if c is not None)
    proof_wanted = {o.integration for o in scenario.objectives if o.kind == "proof"}
    proof_wanted |= {i for i in scenario.integrations if i in proofs}
    proof_times = [proofs.get(i) for i in scenario.integrations if i in proof_wanted]
    if proof_times and all(p is not None for p in proof_times):
        card.time_to_proof_s = max(p for p in proof_times if p is not None)
    for inj in card.injects:
        later = [t for t in action_times if t >= inj.shown_s]
        inj.response_s = _r(min(later) - inj.shown_s) if later else None
    copies = _copies(events)
    card.objectives = _objectives(card, scenario, copies)
    card.timeline = sorted(timeline, key=lambda x: x[0])
    return card


def _exercise_event(e: Mapping[str, Any], t: float, timeline: list[tuple[float, str]],
                    card: Scorecard) -> None:
    """Fold one of the exercise's own events into the card and the timeline."""
    action, outcome, detail = e.get("action"), e.get("outcome"), _detail(e)
    fault = detail.get("fault") if isinstance(detail.get("fault"), dict) else None
    if action == "exercise.start":
        timeline.append((t, f"exercise started (speed x{card.speed:g})"))
    elif action == "exercise.end":
        timeline.append((t, "exercise ended"))
    elif action == "inject":
        try:
            at_s = float(detail.get("at", 0.0))
        except (TypeError, ValueError):
            at_s = 0.0
        message = str(detail.get("message") or "")
        card.injects.append(InjectScore(at_s=at_s, message=message, fault=fault, shown_s=t))
        timeline.append((t, f"inject: {message}" if message
                         else f"inject: fault {_fault_text(fault)}"))
    elif action == "fault":
        text = _fault_text(fault or detail)
        note = f" ({detail['message']})" if outcome == "failed" and detail.get("message") else ""
        for inj in reversed(card.injects):  # the inject that set it: the last one with it
            if inj.fault is not None and inj.fault == fault and inj.fault_outcome is None:
                inj.fault_outcome = str(outcome or "applied")
                inj.fault_error = str(detail.get("message") or "") if outcome == "failed" else ""
                break
        timeline.append((t, f"fault {outcome or 'applied'}: {text}{note}"))
    elif action == "fault.clear":
        name = e.get("target") or e.get("integration") or "?"
        what = (f"lock on {name} released" if detail.get("kind") == "lock"
                else f"faults on {name} cleared")
        timeline.append((t, what if outcome != "failed" else f"could not clear: {what}"))
    elif action == "response" and outcome in ("refused", "failed"):
        if outcome == "refused":
            card.operations["refused"] += 1
        runbook = detail.get("runbook", "")
        timeline.append((t, f"run {runbook} {outcome}: {detail.get('message', '')}"))


def _fault_text(fault: Mapping[str, Any] | None) -> str:
    if not fault:
        return "?"
    kind = fault.get("kind", "backend")
    if kind == "lock":
        return f"lock on {fault.get('integration')} held by {fault.get('holder')}"
    if kind == "unlisted-copy":
        return (f"unlisted copy of {fault.get('integration')}'s key at "
                f"{fault.get('backend')}:{fault.get('path')}")
    raw = fault.get("settings")
    settings: Mapping[str, Any] = raw if isinstance(raw, dict) else {
        k: v for k, v in fault.items() if k not in ("kind", "backend", "duration", "for")}
    parts = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"{fault.get('backend')} {parts}".strip()


def _copies(events: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, list[str]]]:
    """Integration -> (live copies, problems) of its last :data:`CHECK_COPIES` event."""
    out: dict[str, tuple[int, list[str]]] = {}
    for e in events:
        if e.get("phase") == EXERCISE_PHASE and e.get("action") in (CHECK_COPIES,
                                                                   "check.copies"):
            d = _detail(e)
            iid = str(d.get("integration") or e.get("integration") or e.get("target") or "")
            live = d.get("live_copies", 1)
            problems = d.get("problems")
            problems = [str(p) for p in problems] if isinstance(problems, list) else []
            if isinstance(live, list):
                n = len(live)
            elif isinstance(live, int | float) and not isinstance(live, bool):
                n = int(live)
            else:
                n, problems = 1, [*problems, f"unreadable live_copies {live!r}"]
            out[iid] = (n, problems)
    return out


def _clock(card: Scorecard, real: float) -> str:
    """``T+mm:ss (N s)``: exercise time of ``real`` seconds, and the real seconds."""
    return f"{format_clock(real * card.speed)} ({real:g} s)"


def _objectives(card: Scorecard, scenario: Scenario,
                copies: Mapping[str, tuple[int, list[str]]]) -> list[ObjectiveScore]:
    out: list[ObjectiveScore] = []
    for o in scenario.objectives:
        s = card.integrations.get(o.integration, IntegrationScore())
        if o.kind == "contained":
            kps = list(o.kill_points) or list(s.kill_points)
            times = {kp: s.kill_points.get(kp) for kp in kps}
            never = [kp for kp, t in times.items() if t is None]
            if not kps:
                met, detail = False, f"no kill point of {o.integration} was acted on"
            elif never:
                met, detail = False, (f"{', '.join(never)} of {o.integration} never verified "
                                      "off")
            else:
                t = max(v for v in times.values() if v is not None)
                met, detail = _timed(card, o.within, t,
                                     f"{', '.join(kps)} of {o.integration} off", "")
        elif o.kind == "proof":
            met, detail = _timed(card, o.within, s.time_to_proof_s,
                                 f"{o.integration}'s key proven dead",
                                 f"{o.integration}'s key was never proven dead at the "
                                 "provider")
        elif o.kind == "no-unconsented-irreversible":
            bad = [i["target"] for i in card.irreversible if not i["consent"]]
            met = not bad
            detail = (f"irreversible without consent: {', '.join(bad)}" if bad else
                      f"{len(card.irreversible)} irreversible change(s), all with consent"
                      if card.irreversible else "no irreversible change")
        elif o.kind == "no-live-copy":
            found = copies.get(o.integration)
            met = found is not None and found == (0, [])
            if found is None:
                detail = "no scan of the stores was recorded at the end of the exercise"
            elif found[0]:
                detail = (f"{found[0]} live cop{'y' if found[0] == 1 else 'ies'} of "
                          f"{o.integration}'s key left")
            elif found[1]:
                detail = ("the scan for live copies was incomplete: "
                          + "; ".join(found[1][:3]))
            else:
                detail = f"no live copy of {o.integration}'s key left in any store"
        else:  # pragma: no cover - the loader refuses other kinds
            met, detail = False, f"unknown objective kind {o.kind!r}"
        out.append(ObjectiveScore(o.id, o.kind, met, detail, o.integration))
    return out


def _timed(card: Scorecard, within: float | None, t: float | None, what: str,
           missing: str) -> tuple[bool, str]:
    """(met, detail) of a timed objective reached at real ``t`` (None: never)."""
    if t is None:
        return False, missing
    ok = within is None or t * card.speed <= within + 1e-9
    deadline = f", deadline {format_clock(within, prefix='')}" if within else ""
    return ok, f"{what} at {_clock(card, t)}{deadline}" + ("" if ok else ": too late")


# --------------------------------------------------------------------------- report


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _secs(value: float | None) -> str:
    return "not reached" if value is None else f"{value:g} s"


def render_aar(card: Scorecard, scenario: Scenario) -> str:
    """The after-action report in Markdown, in the shape of an AAR/Improvement Plan.

    Sections: Summary, Timeline, Objectives, Strengths, Areas for improvement, Action items
    (issue, action, owner "TBD", due "TBD").
    """
    met = sum(o.met for o in card.objectives)
    ops = card.operations
    lines = [f"# After-action report: {scenario.title}", "",
             f"Exercise `{card.exercise_id}` · scenario `{card.scenario}` · "
             f"started {card.started or '?'} · ended {card.ended or '?'} · "
             f"speed x{card.speed:g}", "",
             "Times are real seconds from T+0, measured from the audit trail; `T+mm:ss` is "
             "exercise time (real seconds x speed), which is what deadlines are judged on.",
             "", "## Summary", "",
             f"{met} of {len(card.objectives)} objective(s) met"
             + (" — **all objectives met**." if card.all_objectives_met else
                " — **objectives missed**."), "",
             "| Measure | Value |", "| --- | --- |",
             f"| Time to first containment action | {_secs(card.time_to_first_action_s)} |",
             f"| Time to contain | {_secs(card.time_to_contain_s)} |",
             f"| Time to proof of death | {_secs(card.time_to_proof_s)} |",
             f"| Operations applied / failed / retried / refused / skipped | "
             f"{ops.get('applied', 0)} / {ops.get('failed', 0)} / {ops.get('retried', 0)} / "
             f"{ops.get('refused', 0)} / {ops.get('skipped', 0)} |",
             f"| Irreversible changes (without consent) | {len(card.irreversible)} "
             f"({sum(not i['consent'] for i in card.irreversible)}) |"]
    for iid, s in card.integrations.items():
        kps = ", ".join(f"{kp} {_secs(t)}" for kp, t in s.kill_points.items()) or "none"
        lines.append(f"| {_cell(iid)}: contained / proof | {_secs(s.time_to_contain_s)} / "
                     f"{_secs(s.time_to_proof_s)} ({_cell(kps)}) |")
    lines += ["", "## Timeline", "", "| Exercise time | Event |", "| --- | --- |"]
    lines += [f"| {_clock(card, t)} | {_cell(text)} |" for t, text in card.timeline]
    if card.injects:
        lines += ["", "### Injects and responses", "",
                  "| At | Inject | Response |", "| --- | --- | --- |"]
        for inj in card.injects:
            what = inj.message or _fault_text(inj.fault)
            lines.append(f"| {format_clock(inj.at_s)} | {_cell(what)} | "
                         f"{_cell(inj.response or 'no containment action after it')} |")
    lines += ["", "## Objectives", "", "| Objective | Kind | Result | Detail |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(o.id)} | {o.kind} | {'met' if o.met else '**missed**'} | "
              f"{_cell(o.detail)} |" for o in card.objectives]
    strengths, gaps = _assess(card)
    lines += ["", "## Strengths", ""]
    lines += [f"- {s}" for s in strengths] or ["- None recorded."]
    lines += ["", "## Areas for improvement", ""]
    lines += [f"- {issue}" for issue, _ in gaps] or ["- None recorded."]
    lines += ["", "## Action items", "", "| Issue | Action | Owner | Due |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(issue)} | {_cell(action)} | TBD | TBD |" for issue, action in gaps]
    if not gaps:
        lines.append("| — | Repeat the exercise with a harder variant (faster deadlines, more "
                     "faults) | TBD | TBD |")
    return "\n".join(lines) + "\n"


def _assess(card: Scorecard) -> tuple[list[str], list[tuple[str, str]]]:
    """Strengths, and (area for improvement, action item) pairs, from the card."""
    strengths: list[str] = []
    gaps: list[tuple[str, str]] = []
    for o in card.objectives:
        if o.met:
            strengths.append(f"Objective `{o.id}` met: {o.detail}.")
        else:
            gaps.append((f"Objective `{o.id}` missed: {o.detail}.", _fix_for(o)))
    first = card.time_to_first_action_s
    if first is not None and first * card.speed <= 60:
        strengths.append(f"First containment action {_clock(card, first)} after the start.")
    elif first is None:
        gaps.append(("No containment action was taken.",
                     "Walk the team through the runbooks and the console before the next "
                     "exercise"))
    else:
        gaps.append((f"First containment action only at {_clock(card, first)}.",
                     "Agree who may pull the kill switch without waiting for approval"))
    ops = card.operations
    if ops.get("retried") and not ops.get("failed"):
        strengths.append(f"{ops['retried']} retried call(s) absorbed: no operation failed.")
    if ops.get("failed"):
        gaps.append((f"{ops['failed']} operation(s) failed.",
                     "Review the failures in the audit trail and fix access, timeouts or "
                     "runbook order"))
    if ops.get("refused"):
        gaps.append((f"{ops['refused']} run(s) or operation(s) refused (lock held, drift or "
                     "no consent).",
                     "Agree a hand-over for integration locks and who consents to "
                     "irreversible changes"))
    if card.irreversible and all(i["consent"] for i in card.irreversible):
        strengths.append("Every irreversible change was made with explicit consent.")
    contained = card.time_to_contain_s
    # a message no containment action followed, while the scenario was not yet contained
    slow = [i for i in card.injects if i.response_s is None and i.message
            and (contained is None or contained > i.shown_s)]
    for inj in slow:
        what = inj.message or _fault_text(inj.fault)
        gaps.append((f"No containment action followed the inject at {format_clock(inj.at_s)} "
                     f"({_cell(what)[:80]}).",
                     "Add this situation to the runbook's triggers"))
    return strengths, gaps


def _fix_for(o: ObjectiveScore) -> str:
    return {
        "contained": "Rehearse the runbook for this kill point; check its backends' access "
                     "and timeouts",
        "proof": "Make sure the integration's provider key is listed and its proof of death "
                 "can be checked",
        "no-unconsented-irreversible": "Require consent for irreversible changes in the "
                                       "runbook's procedure",
        "no-live-copy": "Run revoke-credentials with --include-unlisted and list every copy "
                        "in the inventory",
    }.get(o.kind, "Review with the team")
