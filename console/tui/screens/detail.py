"""One integration: everything the inventory says, its kill points' state, its audit events.

States are the app's one store's (:mod:`console.tui.observed`): what the inventory shows, and
a refresh here (``R``, or on opening when the last observation is missing, old or unknown)
updates the inventory too. The words are ``live``, ``off``, ``partial n/m off`` and
``unknown`` with its why in full; colour only adds to them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from console.errors import ConsoleError
from console.tui import messages
from console.tui.widgets.banner import ModeBanner

if TYPE_CHECKING:
    from console.engine.observe import PointState
    from console.inventory import Contact, Integration
    from console.tui.app import KillswitchApp
    from console.tui.live import LiveChanged
    from console.tui.observed import StatesChanged

__all__ = ["DetailScreen"]

AUDIT_EVENTS = 20
"""How many recent audit events are shown."""
_POINTS = (("keys", "credentials"), ("flags", "flags"), ("batches", "batches"),
           ("egress", "egress"))
FRESH = 30.0
"""Seconds an observation is recent enough not to be repeated when the detail opens."""
AGE_EVERY = 15.0
"""Seconds between redraws of the kill points (they say how long ago they were observed)."""
_COLOURS = {"live": "b", "off": "b $text-success", "partial": "b $text-warning",
            "unknown": "b $text-error"}
"""Markup style of each state word (colour adds to the word, never replaces it)."""


def _word(state: str) -> str:
    style = _COLOURS.get(state, "b")
    return f"[{style}]{escape(state)}[/]"


def _contact(c: Contact) -> str:
    bits = [escape(c.name)]
    if c.role:
        bits.append(f"({escape(c.role)})")
    if c.how:
        bits.append(f"[b]{escape(c.how)}[/b]")
    return " ".join(bits)


class DetailScreen(Screen[None]):
    """Everything about one integration.

    | key       | action                                                      |
    |-----------|-------------------------------------------------------------|
    | escape    | cancel the observation under way, else back                 |
    | m         | mark / unmark this integration                              |
    | r         | runbooks for this integration                               |
    | R         | observe its kill points again (the inventory shows it too)  |
    | up / down | scroll                                                      |

    Args:
        integration_id: The integration to show.
    """

    BINDING_GROUP_TITLE = "Detail"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="detail.back",
                tooltip="Cancel the observation under way; else back to the inventory"),
        Binding("m", "mark", "Mark", id="detail.mark",
                tooltip="Mark or unmark this integration"),
        Binding("r", "runbooks", "Runbook", id="detail.runbook",
                tooltip="Pick a runbook for this integration"),
        Binding("R", "refresh_states", "Refresh", id="detail.refresh", show=False,
                tooltip="Observe its kill points again (read-only)"),
    ]

    class EventsLoaded(Message):
        """Its recent audit events were read."""

        def __init__(self, events: list[dict[str, Any]], note: str = "") -> None:
            super().__init__()
            self.events = events
            """Events, oldest first."""
            self.note = note
            """Why there are none (no trail yet, unreadable trail)."""

    app: KillswitchApp

    def __init__(self, integration_id: str) -> None:
        super().__init__(id="detail")
        self.integration_id = integration_id

    @property
    def integration(self) -> Integration | None:
        """The integration shown (None for an unknown id)."""
        return self.app.config.integration(self.integration_id)

    def compose(self) -> ComposeResult:
        """Banner, the sections in a scroll, footer."""
        yield ModeBanner()
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-title")
            yield Static(id="detail-about", classes="detail-section")
            yield Static(id="detail-points", classes="detail-section")
            yield Static(id="detail-audit", classes="detail-section")
        yield Footer()

    def on_mount(self) -> None:
        """Show what is known now; observe again if it is missing, old or unknown; read
        the trail in the background."""
        self.query_one("#detail-body").focus()
        integ = self.integration
        if integ is None:
            self.query_one("#detail-title", Static).update(
                f"No integration {escape(self.integration_id)!r} in the inventory")
            return
        self._show_about(integ)
        live = getattr(self.app, "live_view", None)
        if live is not None:  # another commander's lock: named in the title, kept current
            live.changed.subscribe(self, self._live_changed)
        store = self.app.observed
        store.changed.subscribe(self, self._states_changed)
        observed = store.get(integ.id)
        stale = observed is None or observed.cancelled or \
            time.time() - observed.at > FRESH or \
            any(st.state == "unknown" for st in observed.states.values())
        if stale and not store.pending(integ.id):
            store.refresh([integ.id])
        self._show_points(integ)
        self.set_interval(AGE_EVERY, lambda: self._show_points(integ), name="observed-age")
        self.query_one("#detail-audit", Static).update("[b]Recent audit events[/b]\n  reading...")
        self._load_events()

    def on_screen_resume(self) -> None:
        """Back on top: show what the store holds now."""
        integ = self.integration
        if integ is not None and self.is_mounted:
            self._show_points(integ)

    def _live_changed(self, change: LiveChanged) -> None:
        """A lock was taken or released: the title names the holder."""
        integ = self.integration
        if integ is not None and self.is_mounted and change.locks:
            self._show_about(integ)

    # -- sections ------------------------------------------------------------------------
    def _show_about(self, i: Integration) -> None:
        title = f"[b]{escape(i.id)}[/b]  {escape(i.name)}"
        live = self.app.__dict__.get("live_view")
        lock = live.foreign_lock(i.id) if live is not None else None
        if lock is not None:
            from console.tui.live import lock_text

            title += f"\n[b reverse]LOCKED[/] by {escape(lock_text(lock))}"
        self.query_one("#detail-title", Static).update(title)
        env = f"[reverse b] {i.environment.upper()} [/]" if i.environment == "prod" \
            else i.environment
        lines = [
            f"env {env}   status [b]{i.status}[/b]   provider {escape(i.provider)}",
            f"owner        {escape(i.owner)}",
            "kill switch  " + (_contact(i.kill_switch_owner) if i.kill_switch_owner
                               else "[b]none named[/b]"),
        ]
        for c in i.contacts:
            lines.append(f"contact      {_contact(c)}")
        lines += [
            f"data classes [b]{escape(', '.join(i.data_classes) or '-')}[/b]",
            f"models       {escape(', '.join(i.models) or '-')}"
            + (f"   mode {escape(', '.join(i.endpoint_mode))}" if i.endpoint_mode else ""),
            f"tenants      {escape(', '.join(i.tenants) or '-')}"
            + (f"   region {escape(i.region)}" if i.region else ""),
            f"approval     {escape(i.approval_record or 'none recorded')}",
            f"review due   {i.review_due.isoformat() if i.review_due else '-'}",
        ]
        if i.tags:
            lines.append(f"tags         {escape(', '.join(i.tags))}")
        self.query_one("#detail-about", Static).update("\n".join(lines))

    def _show_points(self, i: Integration) -> None:
        from console.tui.observed import age_text

        store = self.app.observed
        observed = store.get(i.id)
        states: dict[str, PointState] = observed.states if observed is not None else {}
        head = "[b]Kill points[/b]  "
        progress = store.progress() if store.pending(i.id) else None
        if progress is not None:
            head += escape(progress.text(count=False, backends=store.backends(i.id)))
        elif observed is None:
            head += "not observed yet (R observes)"
        elif observed.cancelled:
            head += "refresh cancelled: not observed (R observes)"
        else:
            head += f"observed {age_text(observed.at)}"
        lines = [head]
        for column, field in _POINTS:
            refs = i.refs(field)
            st = states.get(column)
            if not refs:
                lines.append(f"  {field:<12}-  none listed")
                continue
            word = _word(st.state) if st else "[b]...[/b]"
            line = f"  {field:<12}{word}"
            if st is not None and st.state == "partial":
                line += f"  {escape(st.detail)}"
            elif st is not None and st.state == "unknown" and st.detail:
                line += f"  ({escape(st.detail)})"
            lines.append(line)
            per_ref = st.per_ref if st else []
            for n, ref in enumerate(refs):
                fields = " ".join(f"{k}={v}" for k, v in ref.extra.items())
                label = f"{ref.label}: " if ref.label else ""
                ref_state, why = per_ref[n] if n < len(per_ref) else ("...", "")
                shown_why = why if why and why != (st.detail if st else "") else ""
                lines.append(f"    - {_word(ref_state)}  {escape(ref.backend)}  "
                             f"{escape(label + fields)}"
                             + (f"  ({escape(shown_why)})" if shown_why else ""))
        self.query_one("#detail-points", Static).update("\n".join(lines))

    def _show_events(self, events: list[dict[str, Any]], note: str) -> None:
        lines = [f"[b]Recent audit events[/b] (last {AUDIT_EVENTS})"]
        if not events:
            lines.append(f"  {escape(note or 'no events')}")
        for e in events:
            ts = str(e.get("ts") or "")[:19].replace("T", " ")
            what = " ".join(str(e.get(k) or "") for k in ("mode", "step", "action"))
            lines.append(f"  {ts}  {escape(what.strip())}  [b]{escape(str(e.get('outcome')))}"
                         f"[/b]  run {escape(str(e.get('run_id') or '-'))}")
        self.query_one("#detail-audit", Static).update("\n".join(lines))

    # -- workers -------------------------------------------------------------------------
    def action_refresh_states(self) -> None:
        """Observe this integration's kill points again (read-only; Esc cancels)."""
        integ = self.integration
        if integ is not None:
            self.app.observed.refresh([integ.id])
            self._show_points(integ)

    def _states_changed(self, event: StatesChanged) -> None:
        """The store changed: redraw if it is about this integration (or its progress)."""
        integ = self.integration
        if integ is None or not self.is_mounted:
            return
        if integ.id in event.ids or self.app.observed.pending(integ.id) or event.finished:
            self._show_points(integ)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-audit",
          description="read audit events")
    def _load_events(self) -> None:
        config = self.app.config
        from console.store import has_trail, open_audit

        try:
            present = has_trail(config)
        except ConsoleError as exc:
            self.post_message(self.EventsLoaded([], f"no events: {exc.msg}"))
            return
        if not present:
            self.post_message(self.EventsLoaded([], "no events (no audit trail yet)"))
            return
        log = open_audit(config)
        try:
            events = log.events(integration=self.integration_id)[-AUDIT_EVENTS:]
        finally:
            log.close()
        self.post_message(self.EventsLoaded(events, "no events"))

    def on_detail_screen_events_loaded(self, event: EventsLoaded) -> None:
        """Show the events."""
        self._show_events(event.events, event.note)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Failures show in their section, never crash the screen."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = getattr(error, "msg", None) or str(error) or type(error).__name__
        if event.worker.group == "detail-audit":
            self._show_events([], f"audit trail unreadable: {text}")

    # -- actions -------------------------------------------------------------------------
    def action_back(self) -> None:
        """Cancel the observation of this integration under way; else back."""
        store = self.app.observed
        if store.pending(self.integration_id):
            store.cancel([self.integration_id])
            return
        self.app.pop_screen()

    def action_mark(self) -> None:
        """Mark or unmark this integration."""
        self.app.marked = self.app.marked ^ {self.integration_id}

    def action_runbooks(self) -> None:
        """Pick a runbook for this integration."""
        self.post_message(messages.RunbooksRequested([self.integration_id]))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Nothing to act on for an unknown id."""
        if action in ("mark", "runbooks", "refresh_states") and self.integration is None:
            return None
        return True
