"""A run's postmortem in the console: summary, timeline one event a line, the event in full.

Read from the audit trail by :func:`console.report.build_report`; shown at 80 columns without
a sideways scroll (see :mod:`console.tui.layout`), in the console's words
(:func:`console.report.render_console_report`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Markdown, Static

from console.tui.layout import (
    clip,
    fit_widths,
    highlighted_key,
    is_narrow,
    laid_out_for,
    squeeze,
    table_width,
)
from console.tui.widgets.banner import ModeBanner
from console.vocab import Outcome

if TYPE_CHECKING:
    from console.report import Report, TimelineEntry

__all__ = ["ReportScreen", "event_detail", "outcome_style", "word_token"]


class ReportScreen(Screen[None]):
    """A run's postmortem: summary, the timeline one event a line, the event in full.

    The timeline reads at 80 columns: time, outcome (``applied``, ``verified``, ``STILL
    LIVE``...), what. The pane under it shows the highlighted event in full (offset, duration,
    target, message). ``f`` shows the whole report as a document (what needs attention, what
    to do next with this console's keys).

    | key       | action                                    |
    |-----------|-------------------------------------------|
    | up / down | highlight an event: the pane shows it     |
    | f         | the whole report as a document, and back  |
    | escape    | back                                      |

    Args:
        report: The report (:func:`console.report.build_report`).
    """

    BINDING_GROUP_TITLE = "Report"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_full", "Full report", id="report.full",
                tooltip="The whole report as a document: attention items, what next"),
        Binding("escape", "back", "Back", id="report.back", tooltip="Back to the audit trail"),
    ]

    def __init__(self, report: Report) -> None:
        super().__init__()
        from console.report import render_console_report

        self.report = report
        self.markdown = render_console_report(report)
        """The whole report, as the console shows it (Markdown)."""
        self._built: tuple[bool, int] | None = None

    def compose(self) -> ComposeResult:
        """Banner, summary, timeline, the event in full, the document (hidden), footer."""
        yield ModeBanner()
        yield Static(self.summary(), id="report-summary")
        yield DataTable(id="report-timeline", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="report-detail"):
            yield Static(id="report-detail-text")
        yield VerticalScroll(id="report-scroll")  # the document: built when first shown
        yield Footer()

    def on_mount(self) -> None:
        """Fill the timeline for this width."""
        self._build(self.app.size.width)
        self.query_one("#report-timeline", DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns for the new width."""
        self._build(event.size.width)

    def summary(self) -> Text:
        """Run, status, mode, who, how long, chain; then what needs attention. Above them,
        for runs that did not (all) touch real systems, what they were (REHEARSAL...)."""
        report = self.report
        head = dict(report.header)
        out = Text()
        if report.banner:  # a rehearsal's or an exercise's report must not read as live
            out.append(f" {report.banner} ", style="bold reverse")
            out.append("\n")
        out.append(f"{report.subject} — {_run_word(report)}", style="bold")
        out.append(f" · {head.get('Mode', '-')} · {head.get('Incident', '-')} · "
                   f"{head.get('Operator', '-')} · {head.get('Duration', '-')}")
        out.append(f"\nchain {head.get('Audit chain', '-')}",
                   style="" if report.chain_ok else "bold")
        timeline = report.timeline
        counts = [
            (sum(1 for t in timeline if t.word == "STILL LIVE"), "STILL LIVE"),
            (sum(1 for t in timeline if t.word in ("not checked", "unknown")
                 and t.get("phase") == "verify"), "not checked"),
            (report.count("Failures"), "failed"),
            (sum(1 for t in timeline if t.irreversible and t.get("phase") == "apply"
                 and t.get("outcome") == "applied"), "IRREVERSIBLE applied"),
            (report.count("Not done"), "not done"),
            (report.count("Started but never ended"), "never ended")]
        attention = ", ".join(f"{n} {word}" for n, word in counts if n)
        out.append(f"\nneeds attention: {attention or 'nothing'} (f: full report)")
        return out

    def _build(self, width: int) -> None:
        if laid_out_for(self, width):
            return
        narrow = is_narrow(width)
        timeline = self.report.timeline
        words = [t.word or "-" for t in timeline]
        whats = [" ".join(t.parts) for t in timeline]
        word_w = max([7, *map(len, words)])
        total = table_width(width)
        if narrow:
            columns = [("time", "time", 8, 8), ("outcome", "outcome", word_w, 7),
                       ("what", "what", max([4, *map(len, whats)]), 16)]
        else:
            columns = [("time", "time (UTC)", 12, 12), ("offset", "offset", 10, 10),
                       ("outcome", "outcome", word_w, 7),
                       ("took", "took", max([4, *(len(t.duration) for t in timeline)]), 4),
                       ("what", "what", max([4, *map(len, whats)]), 16)]
        widths = fit_widths(total, [(c[2], c[3]) for c in columns])
        table = self.query_one("#report-timeline", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for (key, label, _w, _m), w in zip(columns, widths, strict=True):
            table.add_column(label, key=key, width=w)
        for t, word in zip(timeline, words, strict=True):
            cells = {"time": t.clock[:8] if narrow else t.clock, "offset": t.offset,
                     "outcome": Text(clip(word, widths[[c[0] for c in columns].index(
                         "outcome")]), style=outcome_style(self, word)),
                     "took": t.duration, "what": squeeze(t.parts, widths[-1])}
            table.add_row(*(cells[c[0]] for c in columns), key=str(t.seq))
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
        self._show_detail()

    @on(DataTable.RowHighlighted, "#report-timeline")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        table = self.query_one("#report-timeline", DataTable)
        pane = self.query_one("#report-detail-text", Static)
        seq = highlighted_key(table)
        entry = next((t for t in self.report.timeline if str(t.seq) == seq), None)
        pane.update(event_detail(entry, self) if entry is not None else "")

    def action_toggle_full(self) -> None:
        """The whole report as a document, or back to the timeline."""
        full = not self.has_class("-full")
        scroll = self.query_one("#report-scroll", VerticalScroll)
        if full and not scroll.children:  # a Markdown widget costs ~0.4 s to lay out
            scroll.mount(Markdown(self.markdown, id="report"))
        self.set_class(full, "-full")
        target = "#report-scroll" if full else "#report-timeline"
        self.query_one(target).focus()

    def action_back(self) -> None:
        """Back to the audit trail (from the document: back to the timeline first)."""
        if self.has_class("-full"):
            self.action_toggle_full()
            return
        self.dismiss()


def _run_word(report: Report) -> str:
    outcomes = report.run_outcomes
    if Outcome.FINISHED in outcomes:
        return Outcome.FINISHED
    if Outcome.CANCELLED in outcomes:
        return Outcome.CANCELLED
    if Outcome.STARTED in outcomes:
        return "interrupted"
    if Outcome.REFUSED in outcomes:
        return Outcome.REFUSED
    return "plan only" if outcomes == [] else "/".join(outcomes)


def word_token(word: str) -> str:
    """The theme token an outcome word is shown in: ``error``, ``warning`` or ``""``."""
    if word in ("STILL LIVE", "failed", "refused", "error", "timeout") \
            or "not as planned" in word:
        return "error"
    if word in ("skipped", "unsupported", "cancelled", "not checked", "unknown", "retrying"):
        return "warning"
    return ""


def outcome_style(node: Widget, word: str) -> Style:
    """The style of an outcome word on ``node``'s theme (plain when it decides nothing)."""
    token = word_token(word)
    if not token:
        return Style()
    return Style(color=node.app.theme_variables.get(token) or None, bold=True)


def event_detail(entry: TimelineEntry, node: Widget) -> Text:
    """One audit event in full, for the pane under a timeline or the events table.

    Args:
        entry: The event.
        node: Any widget of the screen (its theme colours the outcome).
    """
    from console.report import console_words

    out = Text()
    out.append(f"seq {entry.seq}", style="bold")
    out.append(f" · {entry.clock}")
    if entry.offset:
        out.append(f" ({entry.offset})")
    if entry.duration:
        out.append(f" · took {entry.duration}")
    where = " / ".join(p for p in (entry.get("integration"), entry.get("step")) if p)
    out.append("\n" + " · ".join(p for p in (entry.get("phase"), where, entry.get("action"))
                                  if p))
    out.append("\noutcome: ")
    out.append(entry.word or "-", style=outcome_style(node, entry.word))
    if entry.word != entry.get("outcome"):
        out.append(f" ({entry.get('outcome')})")
    if entry.get("target"):
        out.append(f"\ntarget: {entry.get('target')}")
    if entry.message:
        out.append(f"\nmessage: {console_words(entry.message)}")
    out.append(f"\nrun {entry.get('run_id') or '-'} · {entry.get('mode') or '-'} · "
               f"{entry.get('operator') or '-'}")
    return out
