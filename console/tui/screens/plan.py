"""Plan review: every change grouped by integration and step, irreversible rows marked.

In DRY-RUN this screen *is* the dry-run result: it says plainly that nothing was changed and
Apply is disabled (pressing it says why). In LIVE / EXERCISE, Apply opens the typed
confirmation. The header starts with the mode's sentence (:func:`console.vocab.mode_sentence`).

What decides comes first in the table: undo (IRREVERSIBLE), status, then the target. Below
:data:`console.tui.layout.NARROW_BELOW` columns the before -> after moves out of the table;
the detail pane under it always shows the highlighted row in full (before -> after, note,
reference, precondition).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.engine.model import plan_counts
from console.tui.layout import (
    clip,
    explain_disabled,
    fit_widths,
    highlighted_key,
    is_narrow,
    laid_out_for,
    shorten,
    table_width,
)
from console.tui.messages import RunConfirmed
from console.tui.widgets.banner import ModeBanner
from console.vocab import mode_sentence

if TYPE_CHECKING:
    from adapters.base import Change
    from console.engine.model import Plan

__all__ = ["PlanScreen"]


def _value(v: Any) -> str:
    text = (json.dumps(v, sort_keys=True, ensure_ascii=False)
            if isinstance(v, (dict, list)) else str(v))
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def full_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Every field a change alters, ``field: old -> new``, values in full (the pane's view)."""
    keys = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if not keys:
        from console.render import short_state

        return [f"{short_state(after)} (unchanged)" if after else "-"]
    return [f"{k}: {_value(before.get(k, '-'))} -> {_value(after.get(k, '-'))}" for k in keys]


def status_word(change: Change) -> str:
    """The status column: observed / simulated / noop, UNSUPPORTED and ERROR in capitals."""
    if change.status == "error":
        return "ERROR"
    if change.status == "unsupported":
        return "UNSUPPORTED"
    return change.status


class PlanScreen(Screen[None]):
    """Review a plan before anything runs.

    | key        | action                                                     |
    |------------|------------------------------------------------------------|
    | a / enter  | apply: typed confirmation, then run (LIVE / EXERCISE only)  |
    | up / down  | highlight a row: the pane shows it in full                 |
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
        self._built: tuple[bool, int] | None = None

    def compose(self) -> ComposeResult:
        """Banner, headline, the plan table, the highlighted row in full, notes, footer."""
        yield ModeBanner()
        yield Static(id="plan-header")
        yield DataTable(id="plan-table", cursor_type="row", zebra_stripes=False)
        with VerticalScroll(id="plan-detail"):
            yield Static(id="plan-detail-text")
        with VerticalScroll(id="plan-notes"):
            yield Static(id="plan-notes-text")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table for this width and follow the app's mode."""
        self._build(self.app.size.width)
        self._fill_notes()
        self.watch(self.app, "mode", self._mode_changed)
        self.query_one("#plan-table", DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns for the new width."""
        self._build(event.size.width)

    # -- display -------------------------------------------------------------------------
    def _style(self, token: str) -> Style:
        colour = self.app.theme_variables.get(token, "")
        return Style(color=colour or None, bold=True)

    @property
    def narrow(self) -> bool:
        """True in the narrow layout (before -> after only in the pane)."""
        return self.has_class("-narrow")

    def _build(self, width: int) -> None:
        """(Re)build the columns and rows for a screen ``width`` columns wide."""
        if laid_out_for(self, width):
            return
        narrow = is_narrow(width)
        from console.render import state_diff

        plan = self.plan
        error, warning = self._style("error"), self._style("warning")
        undo_words = ["IRREVERSIBLE" if not c.reversible else "reversible"
                      for c in plan.changes]
        statuses = [status_word(c) for c in plan.changes]
        groups = {(c.integration, c.step): c.action for c in plan.changes}
        labels = [f"{i} / {s}" for i, s in groups]
        targets = [f"  {c.target}" for c in plan.changes]
        undo_w = max([4, *map(len, undo_words)])
        status_w = max([6, *map(len, statuses)])
        total = table_width(width)
        if narrow:
            whats = [f"{i} / {s}: {a}" for (i, s), a in groups.items()]
            widths = fit_widths(total, [(undo_w, undo_w), (status_w, status_w),
                                        (max([6, *map(len, whats + targets)]), 16)])
            columns = [("undo", "undo"), ("status", "status"), ("what", "action / target")]
        else:
            diffs = [state_diff(c.before, c.after) for c in plan.changes]
            widths = fit_widths(total, [(undo_w, undo_w), (status_w, status_w),
                                        (max([6, *map(len, labels + targets)]), 16),
                                        (max([15, *map(len, diffs + list(groups.values()))]),
                                         14)])
            columns = [("undo", "undo"), ("status", "status"), ("target", "target"),
                       ("diff", "before -> after")]
        table = self.query_one("#plan-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for (key, label), w in zip(columns, widths, strict=True):
            table.add_column(label, key=key, width=w)
        what_w = widths[2]
        group = None
        for c, undo_word, status in zip(plan.changes, undo_words, statuses, strict=True):
            if (c.integration, c.step) != group:
                group = (c.integration, c.step)
                label = f"{c.integration} / {c.step}"
                if narrow:
                    head = [Text(clip(f"{label}: {c.action}", what_w), style="bold")]
                else:
                    head = [Text(clip(label, what_w), style="bold"),
                            Text(clip(c.action, widths[3]), style="italic")]
                table.add_row("", "", *head, key=f"group:{c.integration}/{c.step}")
            undo = Text(undo_word, style=error if not c.reversible else "")
            cell = Text(status, style=error if status == "ERROR" else
                        warning if status == "UNSUPPORTED" else "")
            target = Text("  " + shorten(c.target, what_w - 2),
                          style=error if not c.reversible else "")
            row: list[Text | str] = [undo, cell, target]
            if not narrow:
                row.append(clip(state_diff(c.before, c.after), widths[3]))
            table.add_row(*row, key=c.op_id)
        if not plan.changes:
            table.add_row("", "", "(no changes)", *([] if narrow else [""]), key="none")
        self.set_class(bool(plan.irreversible), "-irreversible")
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
        self._show_detail()

    def _fill_notes(self) -> None:
        from console.report import console_words

        plan = self.plan
        notes = list(plan.notes)
        notes += [f"{c.target}: ERROR {c.error}" for c in plan.changes if c.error]
        notes += [f"{c.target}: {c.note}" for c in plan.changes if c.note and not c.error]
        counts = plan_counts(plan)
        summary = (f"{counts['targets']} integration(s), {counts['changes']} change(s) to apply"
                   + "".join(f", {v} {k}" for k, v in counts.items()
                             if k not in ("targets", "changes", "irreversible")))
        if counts["irreversible"]:
            summary += f"; {counts['irreversible']} IRREVERSIBLE (cannot be undone)"
        lines = [summary] + [f"note: {console_words(n)}" for n in notes]
        self.query_one("#plan-notes-text", Static).update("\n".join(lines))
        self._mode_changed()

    @on(DataTable.RowHighlighted, "#plan-table")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The highlighted row in full: the change, or its step."""
        table = self.query_one("#plan-table", DataTable)
        pane = self.query_one("#plan-detail-text", Static)
        key = highlighted_key(table)
        pane.update("" if key is None else self.detail_text(key))

    def detail_text(self, key: str) -> Text:
        """What the pane shows for the row ``key`` (a change's op id, or ``group:...``)."""
        from console.render import short_state
        from console.report import console_words

        plan = self.plan
        error = self._style("error")
        out = Text()
        if key.startswith("group:"):
            integ, _, step_id = key.removeprefix("group:").partition("/")
            changes = [c for c in plan.changes if c.integration == integ and c.step == step_id]
            irreversible = sum(1 for c in changes if c.actionable and not c.reversible)
            out.append(f"{integ} / {step_id}", style="bold")
            out.append(f": {changes[0].action if changes else ''}\n")
            out.append(f"{len(changes)} change(s)")
            if irreversible:
                out.append(f", {irreversible} IRREVERSIBLE (cannot be undone)", style=error)
            step = plan.step(step_id)
            if step is not None:
                out.append(f"\non error: {step.on_error}")
                if step.needs:
                    out.append(f"; after: {', '.join(step.needs)}")
                if step.timeout:
                    out.append(f"; timeout {step.timeout:g} s")
            return out
        change = next((c for c in plan.changes if c.op_id == key), None)
        if change is None:
            return Text("(no changes)")
        out.append(change.target, style="bold")
        out.append("\n")
        if change.reversible:
            out.append("reversible")
        else:
            out.append("IRREVERSIBLE: cannot be undone", style=error)
        out.append(f" · {status_word(change)} · {change.action} · "
                   f"{change.integration} / {change.step}")
        diff = full_diff(change.before, change.after)
        out.append("\nbefore -> after: " + ("\n  ".join(diff) if len(diff) > 1 else diff[0]))
        if change.error:
            out.append(f"\nerror: {console_words(change.error)}", style=error)
        if change.note:
            out.append(f"\nnote: {console_words(change.note)}")
        if change.ref:
            out.append(f"\nreference: {short_state(change.ref)}")
        if change.precondition:
            out.append(f"\nprecondition: {change.precondition}")
        if change.inverse_of:
            out.append(f"\nundoes: {change.inverse_of}")
        return out

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
        if action == "apply_plan" and self.disabled_reason(action):
            return None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why ``action`` cannot run now (``""`` when it can)."""
        if action != "apply_plan":
            return ""
        app: Any = self.app
        if not app.live:
            target = str(app.applying_mode).upper()
            return (f"DRY-RUN changes nothing: switch mode with ctrl+l (type {target}) to "
                    "apply this plan.")
        if not any(c.actionable for c in self.plan.changes):
            return ("Nothing to apply: every change is already as planned, unsupported or "
                    "could not be planned (see the status column).")
        return ""

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why."""
        explain_disabled(self, event, self.disabled_reason)

    def action_back(self) -> None:
        """Back without running."""
        self.dismiss()

    def action_apply_plan(self) -> None:
        """Typed confirmation, then the run screen."""
        app: Any = self.app
        reason = self.disabled_reason("apply_plan")
        if reason:
            self.notify(reason, title="Apply: not now", severity="warning")
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
            self.app.post_message(RunConfirmed(plan, reason, allow_irreversible))

        self.app.clear_notifications()  # an earlier "not now" must not cover the dialog
        self.app.push_screen(ConfirmRunModal(self.plan, mode=str(app.mode)), confirmed)
