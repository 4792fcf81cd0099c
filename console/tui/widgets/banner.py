"""The mode banner: always visible, impossible to misread.

One line docked at the top of every screen::

     LIVE applies to real systems  | 2 marked: PROD 1 . staging 1 | INC-42 | op alice

The mode segment is the mode's sentence from :data:`console.vocab.MODE_MEANING`, the same
words as the help screen, the palette, the plan header and the confirm dialogs. Every screen
composes one, modals included, so the mode is never hidden.

LIVE is bold on the theme's ``$error`` background; DRY-RUN and EXERCISE have their own
colours (see ``app.tcss``). The environments of the marked integrations follow the marks; a
prod target gets its own highlighted segment.

While a tabletop exercise or a rehearsal plays, a segment after the mode says which and its
clock (the app's ``drill_banner``: ``leaked-key T+01:05``, ``REHEARSAL revoke-credentials``);
otherwise that segment is hidden and the banner is exactly as before.

While approvals (two-person rule) or co-signatures wait in the store, a segment says how many
(``2 to approve``: the team view's ``p`` reviews them); hidden when there are none.
"""

from __future__ import annotations

from collections import Counter

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from console.vocab import Mode, mode_sentence

__all__ = ["ModeBanner", "MODE_TEXT"]

MODE_TEXT = {m.value: f" {mode_sentence(m)} " for m in (Mode.DRY_RUN, Mode.EXERCISE, Mode.LIVE)}
"""The mode segment's words, per mode."""


class ModeBanner(Horizontal):
    """Mode (LIVE in red / DRY-RUN / EXERCISE), target environments, incident, operator.

    Follows the app's ``mode``, ``marked``, ``incident`` and ``drill_banner`` reactives;
    carries the state class ``-live``, ``-dry-run`` or ``-exercise``.
    """

    DEFAULT_CSS = """
    ModeBanner #banner-drill {
        text-style: bold reverse;
        margin-left: 1;
    }
    ModeBanner #banner-approvals {
        text-style: bold reverse;
    }
    """

    def compose(self) -> ComposeResult:
        """Mode, prod targets, other targets, incident, operator."""
        yield Label(id="banner-mode")
        drill = Label(id="banner-drill")
        drill.display = False  # shown only while an exercise or a rehearsal plays
        yield drill
        yield Label(id="banner-prod")
        yield Label(id="banner-targets")
        yield Label(id="banner-incident")
        approvals = Label(id="banner-approvals")
        approvals.display = False  # shown only while approvals wait in the store
        yield approvals
        yield Label(id="banner-operator")

    def on_mount(self) -> None:
        """Follow the app's mode, marks and incident."""
        self.watch(self.app, "mode", self._refresh_text)
        self.watch(self.app, "marked", self._refresh_text)
        self.watch(self.app, "incident", self._refresh_text)
        if hasattr(self.app, "cause"):
            self.watch(self.app, "cause", self._refresh_text)
        if hasattr(self.app, "drill_banner"):
            self.watch(self.app, "drill_banner", self._refresh_text)
        if hasattr(self.app, "approvals_pending"):
            self.watch(self.app, "approvals_pending", self._refresh_text)

    @property
    def text(self) -> str:
        """The banner as plain text (tests, tmux)."""
        return " ".join(str(label.content) for label in self.query(Label)).strip()

    def _refresh_text(self, _value: object = None) -> None:
        app = self.app
        mode = str(getattr(app, "mode", "dry-run"))
        self.query_one("#banner-mode", Label).update(MODE_TEXT.get(mode, f" {mode.upper()} "))
        envs = self._marked_envs()
        prod = envs.pop("prod", 0)
        prod_label = self.query_one("#banner-prod", Label)
        prod_label.update(f" PROD {prod} " if prod else "")
        prod_label.display = bool(prod)
        drill = str(getattr(app, "drill_banner", "") or "")
        drill_label = self.query_one("#banner-drill", Label)
        drill_label.update(f" {drill} " if drill else "")
        drill_label.display = bool(drill)
        total = prod + sum(envs.values())
        others = " . ".join(f"{env} {n}" for env, n in sorted(envs.items()))
        if not total:
            targets = " nothing marked"
        else:
            targets = f" {total} marked" + (f": {others}" if others else "")
        self.query_one("#banner-targets", Label).update(targets)
        incident = str(getattr(app, "incident", "") or "")
        cause = str(getattr(app, "cause", "") or "other")
        because = f" {cause}" if cause != "other" else ""  # other: said by saying nothing
        self.query_one("#banner-incident", Label).update(
            f" {incident}{because} " if incident else f" no incident{because} ")
        pending = int(getattr(app, "approvals_pending", 0) or 0)
        approvals = self.query_one("#banner-approvals", Label)
        approvals.update(f" {pending} to approve " if pending else "")
        approvals.display = bool(pending)
        self.query_one("#banner-operator", Label).update(
            f" op {getattr(app, 'operator', '') or '?'} ")
        for m in ("live", "dry-run", "exercise"):
            self.set_class(mode == m, f"-{m}")

    def _marked_envs(self) -> Counter[str]:
        config = getattr(self.app, "config", None)
        marked: frozenset[str] = getattr(self.app, "marked", frozenset())
        if config is None or not marked:
            return Counter()
        return Counter(i.environment for i in config.integrations if i.id in marked)
