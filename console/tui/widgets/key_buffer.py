"""Keys typed while a screen is still loading are held, then applied in order once it is ready.

An operator who knows the console types ahead: ``r``, down x3, enter. Keys that reached a
screen whose content was still loading in a worker used to be dropped (down on an empty list
does nothing), and the enter that followed acted on whatever was highlighted once the list
appeared. A screen that loads subclasses :class:`KeyBufferScreen` and calls
:meth:`KeyBufferScreen.keys_ready` when its content is shown (or its load failed); every key
held meanwhile is then applied in the order it was typed: priority bindings, bindings, then
the focused widget, as if it had been typed now.

``escape`` is never held: the operator can always back out of a screen that is slow to load
(held keys are then dropped with the screen).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

from textual import events
from textual.message_pump import MessagePump
from textual.screen import Screen

__all__ = ["KeyBufferScreen"]

SETTLE_TIMEOUT = 5.0
"""Seconds a replayed key may take to settle before the next one is applied anyway."""


class KeyBufferScreen(Screen[None]):
    """A screen whose content loads after it is shown.

    The screen must call :meth:`keys_ready` once it can take keys (content shown, or the load
    failed and says so). Until then, and until the held keys are replayed, ``on_key`` holds
    every key except those in :attr:`KEY_BUFFER_PASS`.
    """

    KEY_BUFFER_PASS: ClassVar[frozenset[str]] = frozenset({"escape"})
    """Keys that act at once even while loading."""

    _keys_ready: bool = False
    _keys_replaying: bool = False

    @property
    def keys_held(self) -> list[str]:
        """Keys typed while loading, not yet applied (oldest first)."""
        return [key for key, _ in self._held_keys]

    @property
    def _held_keys(self) -> list[tuple[str, str | None]]:
        held: list[tuple[str, str | None]] = self.__dict__.setdefault("_held", [])
        return held

    @property
    def ready(self) -> bool:
        """True once the screen takes keys directly."""
        return self._keys_ready and not self._keys_replaying

    def on_key(self, event: events.Key) -> None:
        """Hold the key while the screen is loading (or replaying what it held)."""
        if self.ready or event.key in self.KEY_BUFFER_PASS:
            return
        self._held_keys.append((event.key, event.character))
        event.stop()
        event.prevent_default()

    def keys_ready(self) -> None:
        """The screen can take keys: apply the held ones, in order.

        The replay waits for the messages already queued on the screen (keys that arrived
        meanwhile are held behind the earlier ones), then applies every held key in order.
        """
        if self._keys_ready:
            return
        self._keys_ready = True
        self._keys_replaying = True
        self.call_later(self._replay_keys)

    async def _replay_keys(self) -> None:
        """Apply the held keys one after another, as the app applies a typed key.

        Textual runs priority bindings when the app receives a key and the others only once
        the key has bubbled up from the focused widget, so keys merely posted again would
        race (a priority ``enter`` would overtake the ``down`` keys typed before it). Each
        held key is therefore resolved here, in order: priority bindings, then the bindings
        from the focused widget up, then (for text) the focused widget itself; and what a key
        set off (a focus change, text typed into an input) settles before the next one.
        """
        app = self.app
        try:
            while self._held_keys and self.is_attached:
                key, character = self._held_keys.pop(0)
                # Textual 8.2.8's own key path (App.on_event, App._on_key), one key at a time.
                target = None
                if not await app._check_bindings(key, priority=True) \
                        and not await app._check_bindings(key):
                    target = app.focused
                    if target is not None and character is not None:
                        target.post_message(events.Key(key, character))
                await _settled(app)
                if target is not None:
                    await _settled(target)
        finally:  # whatever a key set off, the screen takes keys again
            self._held_keys.clear()
            self._keys_replaying = False


async def _settled(pump: MessagePump) -> None:
    """Wait until ``pump`` has handled what was posted to it so far (focus, keys)."""
    done = asyncio.Event()
    pump.call_later(done.set)
    with contextlib.suppress(asyncio.TimeoutError):  # a closing app: do not hang
        await asyncio.wait_for(done.wait(), SETTLE_TIMEOUT)
