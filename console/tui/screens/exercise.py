"""The exercise's dialogs: pick a scenario, the facilitator's view, the scorecard (and a
rehearsal's result).

| dialog                | keys                                                           |
|-----------------------|----------------------------------------------------------------|
| ScenarioPicker        | up / down, enter: play it; escape: no exercise                 |
| FacilitatorModal (f2) | escape / f2: close; e: end the exercise (scorecard)            |
| ScorecardModal        | y: reset the sandbox for the next round; n / escape: close     |
| RehearsalModal        | escape / enter: close                                          |

Each composes the mode banner (the mode is never hidden); what they show is plain text read
from the :class:`~console.tui.exercise.ExercisePlay` (scenario, upcoming and fired injects)
or from the scorecard's JSON (:meth:`Scorecard.to_json`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from console.tui.widgets.banner import ModeBanner

if TYPE_CHECKING:
    from console.exercise.scenario import Scenario

__all__ = ["FacilitatorModal", "RehearsalModal", "ScenarioPicker", "ScorecardModal",
           "facilitator_text", "scorecard_lines"]

_DIALOG_CSS = """
{cls} {{
    align: center middle;
}}
{cls} > #{id}-dialog {{
    width: 96;
    max-width: 100%;
    height: auto;
    max-height: 90%;
    border: thick $warning;
    background: $surface;
    padding: 0 1;
}}
{cls} #{id}-title {{
    text-style: bold;
    width: 100%;
}}
{cls} VerticalScroll {{
    height: auto;
    max-height: 30;
}}
"""


class ScenarioPicker(ModalScreen["Scenario | None"]):
    """Pick the scenario to play: name, title and integrations of each.

    | key          | action                     |
    |--------------|----------------------------|
    | up / down    | highlight a scenario       |
    | enter        | play it                    |
    | escape       | no exercise                |

    Args:
        scenarios: What :func:`~console.exercise.scenario.list_scenarios` found.
    """

    DEFAULT_CSS = _DIALOG_CSS.format(cls="ScenarioPicker", id="picker") + """
    ScenarioPicker OptionList {
        height: auto;
        max-height: 20;
    }
    """
    BINDING_GROUP_TITLE = "Exercise: pick a scenario"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "No exercise", id="exercise-picker.cancel",
                tooltip="Close the picker; nothing is started"),
    ]

    def __init__(self, scenarios: Sequence[Scenario]) -> None:
        super().__init__()
        self.scenarios = list(scenarios)

    def compose(self) -> ComposeResult:
        """Banner, title, one option per scenario."""
        yield ModeBanner()
        with Vertical(id="picker-dialog"):
            yield Label("Exercise: pick a scenario (enter plays it, escape: none)",
                        id="picker-title")
            yield OptionList(*[Option(self._label(s), id=s.name) for s in self.scenarios],
                             id="picker-list")

    @staticmethod
    def _label(s: Scenario) -> str:
        return (f"{s.name}  {s.title}\n    integrations: {', '.join(s.integrations) or '-'}"
                f"; {len(s.injects)} inject(s), {len(s.objectives)} objective(s)")

    def on_mount(self) -> None:
        """Focus the list."""
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.scenarios[event.option_index])

    def action_cancel(self) -> None:
        """Close without starting anything."""
        self.dismiss(None)


def _fault_suffix(describe: Callable[[Any], str], fault: Any) -> str:
    return f"  [FAULT {describe(fault)}]" if fault is not None else ""


class FacilitatorModal(ModalScreen[None]):
    """The facilitator's view: briefing, then the upcoming and fired injects.

    Refreshed every second while open (the clock moves, injects fire).

    | key          | action                                   |
    |--------------|------------------------------------------|
    | escape / f2  | close                                    |
    | e            | end the exercise: the scorecard          |
    """

    DEFAULT_CSS = _DIALOG_CSS.format(cls="FacilitatorModal", id="facilitator")
    BINDING_GROUP_TITLE = "Exercise: facilitator"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f2", "close", "Close", id="facilitator.close",
                tooltip="Back to the exercise"),
        Binding("e", "end", "End exercise", id="facilitator.end",
                tooltip="End the exercise: the scorecard, then offer a sandbox reset"),
    ]

    def __init__(self, text: Callable[[], str], end: Callable[[], object]) -> None:
        super().__init__()
        self._text = text
        self._end = end

    def compose(self) -> ComposeResult:
        """Banner, title, the view."""
        yield ModeBanner()
        with Vertical(id="facilitator-dialog"):
            yield Label("Facilitator (escape closes, e ends the exercise)",
                        id="facilitator-title")
            with VerticalScroll():
                yield Static(self._text(), id="facilitator-text", markup=False)

    def on_mount(self) -> None:
        """Follow the clock."""
        self.set_interval(1.0, self.refresh_text)

    def refresh_text(self) -> None:
        """Read the briefing and the timeline again."""
        self.query_one("#facilitator-text", Static).update(self._text())

    @property
    def text(self) -> str:
        """What the view shows, as plain text (tests)."""
        return str(self.query_one("#facilitator-text", Static).render())

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)

    def action_end(self) -> None:
        """Close the view and end the exercise."""
        self.dismiss(None)
        self._end()


def facilitator_text(scenario: Scenario, clock: str, upcoming: Sequence[Any],
                     fired: Sequence[tuple[Any, float]], describe: Callable[[Any], str]
                     ) -> str:
    """The facilitator's view as plain text (see :class:`FacilitatorModal`).

    Args:
        scenario: The scenario played.
        clock: ``T+mm:ss`` now.
        upcoming: Injects not fired yet, in time order.
        fired: ``(inject, exercise seconds it fired at)``, in order.
        describe: One fault in words (``openai-sandbox: latency 1s, 30% 429``).
    """
    from console.exercise.scenario import format_clock

    lines = [f"{scenario.name}: {scenario.title}   {clock}", "", "Briefing",
             *(f"  {line}" for line in scenario.briefing.strip().splitlines()), "",
             f"Integrations: {', '.join(scenario.integrations) or '-'}", "",
             f"Upcoming injects ({len(upcoming)})"]
    lines += [f"  {format_clock(i.at)}  {i.message or '(no message)'}"
              f"{_fault_suffix(describe, i.fault)}" for i in upcoming] or ["  none"]
    lines += ["", f"Fired injects ({len(fired)})"]
    lines += [f"  {format_clock(i.at)} (fired at {format_clock(t)})  "
              f"{i.message or '(no message)'}{_fault_suffix(describe, i.fault)}"
              for i, t in fired] or ["  none yet"]
    if scenario.objectives:
        lines += ["", "Objectives"]
        for o in scenario.objectives:
            within = f" within {format_clock(o.within, prefix='')}" if o.within is not None else ""
            lines.append(f"  {o.id}: {o.kind}"
                         + (f" {o.integration}" if o.integration else "")
                         + (f" ({', '.join(o.kill_points)})" if o.kill_points else "")
                         + within)
    return "\n".join(lines)


def _seconds(value: Any) -> str:
    if value is None:
        return "not reached"
    try:
        s = float(value)
    except (TypeError, ValueError):
        return str(value)
    m, sec = divmod(int(round(s)), 60)
    return f"{s:.1f} s ({m:02d}:{sec:02d})"


def scorecard_lines(card: Mapping[str, Any]) -> list[str]:
    """The scorecard (its JSON form) as the lines the dialog shows."""
    objectives = list(card.get("objectives") or [])
    met = [o for o in objectives if o.get("met")]
    lines = [f"Scenario {card.get('scenario', '?')}   exercise {card.get('exercise_id', '?')}",
             f"Objectives: {len(met)} of {len(objectives)} met"
             + ("  (ALL MET)" if card.get("all_objectives_met") else ""), ""]
    for o in objectives:
        detail = f" - {o['detail']}" if o.get("detail") else ""
        lines.append(f"  {'MET   ' if o.get('met') else 'MISSED'} {o.get('id')} "
                     f"({o.get('kind')}){detail}")
    lines += ["",
              f"Time to first action: {_seconds(card.get('time_to_first_action_s'))}",
              f"Time to contain:      {_seconds(card.get('time_to_contain_s'))}",
              f"Time to proof:        {_seconds(card.get('time_to_proof_s'))}"]
    integrations = card.get("integrations") or {}
    for iid, row in sorted(integrations.items()):
        lines.append(f"  {iid}: contained {_seconds(row.get('time_to_contain_s'))}, "
                     f"proof {_seconds(row.get('time_to_proof_s'))}")
    ops = card.get("operations") or {}
    if ops:
        lines += ["", "Operations: " + ", ".join(f"{k} {v}" for k, v in ops.items())]
    irreversible = card.get("irreversible") or []
    if irreversible:
        lines.append("Irreversible: " + ", ".join(
            f"{x.get('target')} ({'consent' if x.get('consent') else 'NO CONSENT'})"
            for x in irreversible))
    return lines


class ScorecardModal(ModalScreen[bool]):
    """The exercise's scorecard, and the offer to reset the sandbox for the next round.

    | key        | action                                                      |
    |------------|-------------------------------------------------------------|
    | y          | reset the sandbox (every backend back to its seeded state)  |
    | n, escape  | close; the sandbox stays as the exercise left it           |
    """

    DEFAULT_CSS = _DIALOG_CSS.format(cls="ScorecardModal", id="scorecard") + """
    ScorecardModal #scorecard-buttons {
        height: auto;
        align-horizontal: right;
    }
    ScorecardModal Button {
        margin: 0 1;
    }
    """
    BINDING_GROUP_TITLE = "Exercise: scorecard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Reset the sandbox", id="scorecard.reset",
                tooltip="Every sandbox backend back to its seeded state for the next round"),
        Binding("n,escape", "answer(False)", "Close", id="scorecard.close",
                tooltip="Close; the sandbox stays as the exercise left it"),
    ]

    def __init__(self, card: Mapping[str, Any], *, offer_reset: bool = True) -> None:
        super().__init__()
        self.card = dict(card)
        self.offer_reset = offer_reset

    def compose(self) -> ComposeResult:
        """Banner, the scorecard, the question."""
        yield ModeBanner()
        with Vertical(id="scorecard-dialog"):
            yield Label("Exercise over: the scorecard (measured from the audit trail)",
                        id="scorecard-title")
            with VerticalScroll():
                yield Static("\n".join(scorecard_lines(self.card)), id="scorecard-text",
                             markup=False)
            if self.offer_reset:
                yield Static("Reset the sandbox for the next round? Every sandbox backend "
                             "goes back to its seeded state (deleted keys and cancelled "
                             "jobs too).")
            with Horizontal(id="scorecard-buttons"):
                yield Button("Close (n)" if self.offer_reset else "Close (escape)",
                             id="answer-no")
                if self.offer_reset:
                    yield Button("Reset the sandbox (y)", variant="warning", id="answer-yes")

    @property
    def text(self) -> str:
        """The scorecard as plain text (tests)."""
        return str(self.query_one("#scorecard-text", Static).render())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "answer-yes")

    def action_answer(self, yes: bool) -> None:
        """Answer: reset (True) or close (False)."""
        self.dismiss(yes and self.offer_reset)


class RehearsalModal(ModalScreen[None]):
    """A rehearsal's result: what a live run of the plan would have done, simulated.

    | key            | action |
    |----------------|--------|
    | escape / enter | close  |
    """

    DEFAULT_CSS = _DIALOG_CSS.format(cls="RehearsalModal", id="rehearsal")
    BINDING_GROUP_TITLE = "Rehearsal result"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", id="rehearsal.close",
                tooltip="Back to the plan"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        """Banner, title, the rehearsal's text."""
        yield ModeBanner()
        with Vertical(id="rehearsal-dialog"):
            yield Label("Rehearsal (escape closes): nothing was changed", id="rehearsal-title")
            with VerticalScroll():
                yield Static(self._text, id="rehearsal-text", markup=False)

    @property
    def text(self) -> str:
        """The result as plain text (tests)."""
        return str(self.query_one("#rehearsal-text", Static).render())

    def action_close(self) -> None:
        """Close the result."""
        self.dismiss(None)
