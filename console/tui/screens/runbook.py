"""Runbook picker: the runbooks that apply to the marked integrations, then a plan."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from console.tui.messages import PlanReady, PlanReviewRequested, describe_error, error_text
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.key_buffer import KeyBufferScreen

if TYPE_CHECKING:
    from console.inventory import Integration
    from console.runbook import Runbook

__all__ = ["DEFAULT_RUNBOOK", "RunbookScreen", "applicable_runbooks", "planning_text"]

DEFAULT_RUNBOOK = "kill-switch"
"""The default containment: listed first, and the picker always opens on it."""

WAITING_SHOWN = 4
"""Most backend names listed after "waiting on"; the rest are counted."""


def planning_text(runbook: str, integrations: int, done: int, total: int,
                  waiting: list[str]) -> str:
    """The status line while a plan is being made.

    ``planning kill-switch for 2 integrations · 5/9 targets observed · waiting on openai,
    vault (Esc cancels)``.

    Args:
        runbook: The runbook being planned.
        integrations: How many integrations it is planned for.
        done: Targets observed so far.
        total: Targets to observe (0 while the runbook and inventory are being read).
        waiting: Backends with a target still being observed.
    """
    head = f"planning {runbook} for {integrations} integration{'s' if integrations != 1 else ''}"
    if not total:
        body = "reading the runbook"
    elif done < total:
        names = ", ".join(waiting[:WAITING_SHOWN])
        if len(waiting) > WAITING_SHOWN:
            names += f" and {len(waiting) - WAITING_SHOWN} more"
        body = f"{done}/{total} targets observed · waiting on {names}"
    else:
        body = f"{done}/{total} targets observed · writing the plan to the audit trail"
    return f"{head} · {body} (Esc cancels)"


def applicable_runbooks(runbooks: list[Runbook],
                        integrations: list[Integration]) -> list[Runbook]:
    """The runbooks with at least one step that would act on one of ``integrations``.

    A step acts on an integration when the integration has kill points of the step's kind
    and the step's ``when`` allows it. The restore runbook is never listed (it starts from a
    run, in the audit screen).
    """
    out = []
    for rb in runbooks:
        if rb.is_restore:
            continue
        if any(step.kill_point and integ.refs(step.kill_point) and step.applies_to(integ)
               for step in rb.steps for integ in integrations):
            out.append(rb)
    return out


class RunbookScreen(KeyBufferScreen):
    """Pick a runbook for the marked integrations; Enter plans it (read-only).

    The runbooks load in a worker; keys typed meanwhile are applied, in order, once the list
    is shown. The list opens on ``kill-switch`` (the default containment, listed first),
    whatever was used last, unless a runbook was named (the palette's ``run: ...``): that one
    is highlighted and planned at once.

    While a plan is made, the status line says what it waits on (``planning kill-switch for
    2 integrations · 5/9 targets observed · waiting on openai, vault (Esc cancels)``) and
    Escape cancels it: planning only reads, so nothing was changed.

    | key    | action                                                    |
    |--------|-----------------------------------------------------------|
    | enter  | plan the highlighted runbook (observes, changes nothing)  |
    | up/down| choose a runbook                                          |
    | escape | cancel the planning; else back to the inventory           |

    Args:
        integration_ids: The integrations to act on (the inventory's marks).
        runbook: A runbook to highlight and plan as soon as the list is shown.
    """

    BINDING_GROUP_TITLE = "Runbooks"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "plan", "Plan", id="runbook.plan", priority=True,
                tooltip="Observe every target and show the plan (changes nothing)"),
        Binding("escape", "back", "Back", id="runbook.back",
                tooltip="Cancel the planning; else back to the inventory"),
    ]

    def __init__(self, integration_ids: list[str], runbook: str | None = None) -> None:
        super().__init__()
        self.integration_ids = list(integration_ids)
        self.runbooks: list[Runbook] = []
        self.planning = False
        self.requested = runbook
        """The runbook to plan as soon as the list is shown (None: wait for Enter)."""
        self._planning_name = ""
        self._pending: Counter[str] = Counter()
        self._done_targets = 0
        self._total_targets = 0
        self._plan_worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        """Banner, the runbook list beside the highlighted runbook's steps, footer."""
        yield ModeBanner()
        yield Static(id="runbook-header")
        with Horizontal(id="runbook-body"):
            yield OptionList(id="runbook-list")
            with Vertical(id="runbook-detail"):
                yield Static(id="runbook-description")
                yield DataTable(id="runbook-steps", cursor_type="row", zebra_stripes=True)
        yield Static(id="runbook-status")
        yield Footer()

    class RunbooksLoaded(Message):
        """The runbook files were read (in a worker: they are files, and may be many)."""

        def __init__(self, loaded: list[Runbook], broken: list[str]) -> None:
            super().__init__()
            self.loaded = loaded
            """The runbooks that loaded."""
            self.broken = broken
            """``name: error`` for each file that did not."""

    def on_mount(self) -> None:
        """Show the header and load the runbooks in a worker; keys typed meanwhile are held."""
        targets = ", ".join(self.integration_ids) or "none"
        self.query_one("#runbook-header", Static).update(
            f"Runbooks for {len(self.integration_ids)} integration(s): {targets}")
        self.query_one("#runbook-steps", DataTable).add_columns("step", "action", "needs",
                                                                 "when")
        self._status("Loading runbooks...")
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runbook-load")
    def _load(self) -> None:
        from console.runbook import load_runbook, runbook_paths

        app: Any = self.app
        loaded: list[Runbook] = []
        broken: list[str] = []
        for name, path in sorted(runbook_paths(app.config).items()):
            try:  # one broken runbook file must not hide the others
                loaded.append(load_runbook(str(path), app.config))
            except Exception as exc:  # noqa: BLE001 - listed below the picker
                broken.append(f"{name}: {error_text(exc)}")
        self.post_message(self.RunbooksLoaded(loaded, broken))

    def on_runbook_screen_runbooks_loaded(self, message: RunbooksLoaded) -> None:
        """List the runbooks that apply, the default containment first and highlighted."""
        app: Any = self.app
        wanted = set(self.integration_ids)
        integrations = [i for i in app.config.integrations if i.id in wanted]
        runbooks = applicable_runbooks(message.loaded, integrations)
        self.runbooks = sorted(runbooks, key=lambda rb: rb.name != DEFAULT_RUNBOOK)
        options = self.query_one("#runbook-list", OptionList)
        options.add_options([Option(rb.name, id=rb.name) for rb in self.runbooks])
        broken = message.broken
        if broken:
            self._status(f"Cannot load {len(broken)} runbook(s): " + " | ".join(broken),
                         failed=True)
            self.notify("\n".join(broken), title="Invalid runbook", severity="error")
        elif not self.runbooks:
            self._status("No runbook acts on these integrations: they have no kill point "
                         "any runbook step uses.", failed=True)
        else:
            self._status("Enter plans the highlighted runbook. Planning only reads; "
                         "nothing changes until you confirm a run.")
        names = [rb.name for rb in self.runbooks]
        if self.runbooks:
            options.highlighted = names.index(self.requested) \
                if self.requested in names else 0
        options.focus()
        self.keys_ready()
        if self.requested is not None:
            if self.requested in names:
                self._start_plan(self.runbooks[names.index(self.requested)])
            else:
                self._status(f"{self.requested} does not act on these integrations: none of "
                             "them has a kill point its steps use.", failed=True)

    # -- display -------------------------------------------------------------------------
    def _status(self, text: str, *, failed: bool = False) -> None:
        status = self.query_one("#runbook-status", Static)
        status.update(text)
        status.set_class(failed, "-failed")

    @property
    def selected(self) -> Runbook | None:
        """The highlighted runbook."""
        index = self.query_one("#runbook-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.runbooks):
            return None
        return self.runbooks[index]

    @on(OptionList.OptionHighlighted, "#runbook-list")
    def _show_runbook(self) -> None:
        rb = self.selected
        table = self.query_one("#runbook-steps", DataTable)
        table.clear()
        if rb is None:
            return
        self.query_one("#runbook-description", Static).update(
            " ".join(rb.description.split()) or "(no description)")
        for step in rb.steps:
            table.add_row(step.id, step.action, ", ".join(step.needs) or "-",
                          step.when or "always", key=step.id)
        self.refresh_bindings()

    @on(OptionList.OptionSelected, "#runbook-list")
    def _selected(self) -> None:
        self.action_plan()

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Plan needs a highlighted runbook and no plan already in progress."""
        if action == "plan":
            return None if (self.selected is None or self.planning or not self.ready) else True
        return True

    def action_back(self) -> None:
        """Cancel the planning in progress; else back to the inventory."""
        if self.planning and self._plan_worker is not None:
            self._plan_worker.cancel()
            self._plan_worker = None
            self._done()
            self._status(f"Planning {self._planning_name} cancelled: nothing was changed "
                         "(planning only reads). Enter plans again; Escape goes back.")
            return
        self.dismiss()

    def action_plan(self) -> None:
        """Plan the highlighted runbook in a worker."""
        rb = self.selected
        if rb is None or self.planning or not self.ready:
            return
        self._start_plan(rb)

    def _start_plan(self, rb: Runbook) -> None:
        self.planning = True
        self._planning_name = rb.name
        self._pending = Counter()
        self._done_targets = self._total_targets = 0
        self.refresh_bindings()
        self.query_one("#runbook-body").loading = True
        self._show_progress()
        self._plan_worker = self._plan(rb.name)

    def _progress(self, event: str, backend: str) -> None:
        """One target's observation started or finished (called in the event loop)."""
        if not self.planning:
            return
        if event == "started":
            self._total_targets += 1
            self._pending[backend] += 1
        elif event == "finished":
            self._done_targets += 1
            self._pending[backend] -= 1
        self._show_progress()

    def _show_progress(self) -> None:
        waiting = sorted(b for b, n in self._pending.items() if n > 0)
        self._status(planning_text(self._planning_name, len(self.integration_ids),
                                   self._done_targets, self._total_targets, waiting))

    @work(exclusive=True, group="runbook-plan", exit_on_error=False)
    async def _plan(self, name: str) -> None:
        app: Any = self.app
        session = app.session()
        worker = get_current_worker()
        plan = await session.plan(name, list(self.integration_ids),
                                  record_mode=("exercise" if session.mode == "exercise"
                                               else "plan" if app.live else "dry-run"),
                                  progress=self._progress)
        if not worker.is_cancelled:  # cancelled while the plan was being recorded
            self.post_message(PlanReady(plan))

    def _done(self) -> None:
        self.planning = False
        self.query_one("#runbook-body").loading = False
        self.refresh_bindings()

    def on_plan_ready(self, message: PlanReady) -> None:
        """Ask the app to show the plan."""
        self._done()
        self._plan_worker = None
        self._status("Plan ready.")
        self.post_message(PlanReviewRequested(message.plan))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A loading or planning error is shown with its hint; nothing was changed."""
        if event.worker.group == "runbook-load":
            if event.state == WorkerState.ERROR and event.worker.error is not None:
                error = event.worker.error  # a config problem: shown, not raised
                self._status(f"Cannot load runbooks: {error_text(error)}", failed=True)
                self.notify(error_text(error), title=describe_error(error)[0],
                            severity="error")
                self.keys_ready()
            return
        if event.worker.group != "runbook-plan":
            return
        if event.worker is not self._plan_worker:
            return  # a planning the operator cancelled: already said so
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self._done()
            self._plan_worker = None
            error = event.worker.error
            self._status(f"Planning failed (nothing was changed): {error_text(error)}",
                         failed=True)
            self.notify(error_text(error), title=describe_error(error)[0], severity="error",
                        timeout=15)
        elif event.state == WorkerState.CANCELLED:
            self._done()
            self._plan_worker = None
