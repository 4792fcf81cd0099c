"""Plan review: every change grouped by integration and step, irreversible rows marked.

In DRY-RUN this screen *is* the dry-run result: it says plainly that nothing was changed and
Apply is disabled. In LIVE / EXERCISE, Apply opens the typed confirmation. The header starts
with the mode's sentence (:func:`console.vocab.mode_sentence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.tui.widgets.banner import ModeBanner
from console.vocab import mode_sentence

if TYPE_CHECKING:
    from console.engine.model import Plan

__all__ = ["PlanScreen", "plan_counts"]


def plan_counts(plan: Plan) -> dict[str, int]:
    """Targets, changes that would be applied, irreversible ones, and the rest by status."""
    counts = {"targets": len(plan.integrations),
              "changes": sum(1 for c in plan.changes if c.actionable),
              "irreversible": len(plan.irreversible)}
    for c in plan.changes:
        if not c.actionable:
            counts[c.status] = counts.get(c.status, 0) + 1
    return counts


class PlanScreen(Screen[None]):
    """Review a plan before anything runs.

    | key        | action                                                     |
    |------------|------------------------------------------------------------|
    | a / enter  | apply: typed confirmation, then run (LIVE / EXERCISE only)  |
    | escape     | back                                                       |
    | ctrl+l     | switch mode: type its name (app key)                       |

    Args:
        plan: The plan to review (from planning, a retry, or a restore).
    """

    BINDING_GROUP_TITLE = "Plan"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "apply_plan", "Apply", id="plan.apply",
                tooltip="Confirm (type the id and a reason), then run this plan"),
        Binding("enter", "apply_plan", "Apply", id="plan.apply-enter", show=False,
                priority=True, tooltip="Same as a"),
        Binding("escape", "back", "Back", id="plan.back", tooltip="Back without running"),
    ]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        """Banner, headline, the plan table, notes, footer."""
        yield ModeBanner()
        yield Static(id="plan-header")
        yield DataTable(id="plan-table", cursor_type="row", zebra_stripes=False)
        yield Static(id="plan-notes")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table and follow the app's mode."""
        self._fill()
        self.watch(self.app, "mode", self._mode_changed)
        self.query_one("#plan-table", DataTable).focus()

    # -- display -------------------------------------------------------------------------
    def _style(self, token: str) -> Style:
        colour = self.app.theme_variables.get(token, "")
        return Style(color=colour or None, bold=True)

    def _fill(self) -> None:
        plan = self.plan
        table = self.query_one("#plan-table", DataTable)
        table.add_columns("target", "before -> after", "undo", "status")
        from console.render import state_diff

        error, warning = self._style("error"), self._style("warning")
        group = None
        for c in plan.changes:
            if (c.integration, c.step) != group:
                group = (c.integration, c.step)
                table.add_row(Text(f"{c.integration} / {c.step}", style="bold"),
                              Text(c.action, style="italic"), "", "",
                              key=f"group:{c.integration}/{c.step}")
            undo = (Text("reversible") if c.reversible
                    else Text("IRREVERSIBLE", style=error))
            status = Text(c.status)
            if c.status == "error":
                status = Text(f"error: {c.error}", style=error)
            elif c.status == "unsupported":
                status = Text("UNSUPPORTED", style=warning)
            target = Text(f"  {c.target}", style=error if not c.reversible else "")
            table.add_row(target, state_diff(c.before, c.after), undo, status, key=c.op_id)
        if not plan.changes:
            table.add_row("(no changes)", "", "", "")
        self.set_class(bool(plan.irreversible), "-irreversible")
        notes = [f"{c.target}: {c.note}" for c in plan.changes if c.note and not c.error]
        notes += list(plan.notes)
        counts = plan_counts(plan)
        summary = (f"{counts['targets']} integration(s), {counts['changes']} change(s) to apply"
                   + "".join(f", {v} {k}" for k, v in counts.items()
                             if k not in ("targets", "changes", "irreversible")))
        if counts["irreversible"]:
            summary += f"; {counts['irreversible']} IRREVERSIBLE (cannot be undone)"
        lines = [summary] + [f"note: {n}" for n in notes]
        self.query_one("#plan-notes", Static).update("\n".join(lines))
        self._mode_changed()

    def _mode_changed(self, _value: object = None) -> None:
        app: Any = self.app
        plan = self.plan
        what = (f"RESTORE of run {plan.restore_of}" if plan.restore_of
                else f"runbook {plan.runbook}")
        if not app.live:
            target = str(app.applying_mode).upper()
            head = (f"{mode_sentence('dry-run')}: nothing was changed. {what}, plan "
                    f"{plan.hash[:12]}. To apply it, switch to {target} (ctrl+l, type "
                    f"{target}).")
        else:
            head = (f"{mode_sentence(str(app.mode))}. {str(app.mode).upper()} PLAN — {what}, "
                    f"run {plan.run_id}, plan {plan.hash[:12]}. Nothing runs until you "
                    "confirm (a).")
        header = self.query_one("#plan-header", Static)
        header.update(head)
        header.set_class(not app.live, "-dry-run")
        header.set_class(app.live, "-live")
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Apply is disabled in DRY-RUN and when the plan has nothing to apply."""
        if action == "apply_plan":
            app: Any = self.app
            if not app.live or not any(c.actionable for c in self.plan.changes):
                return None
        return True

    def action_back(self) -> None:
        """Back without running."""
        self.dismiss()

    def action_apply_plan(self) -> None:
        """Typed confirmation, then the run screen."""
        app: Any = self.app
        if not app.live:
            target = str(app.applying_mode).upper()
            self.notify(f"{mode_sentence('dry-run')}. To apply, switch to {target} with "
                        f"ctrl+l and type {target}.", severity="warning")
            return
        from console.tui.widgets.confirm_run import ConfirmRunModal

        def confirmed(answer: tuple[str, bool] | None) -> None:
            if answer is None:
                self.notify("Not confirmed: nothing was run.", title="Run")
                return
            reason, allow_irreversible = answer
            plan = self.plan
            if self.app.screen is self:
                self.dismiss()  # the plan is spent: after the run, back goes to the picker
            app.open_run(plan, reason, allow_irreversible)

        self.app.push_screen(ConfirmRunModal(self.plan, mode=str(app.mode)), confirmed)
