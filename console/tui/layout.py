"""Narrow and wide layouts of the review screens, and keys that say why they do nothing.

Below :data:`NARROW_BELOW` columns (80x24 over SSH is the case that matters) the plan, run,
report and audit tables show only what decides, first: status, IRREVERSIBLE, outcome,
verify, then a shortened target. Long values (before -> after, notes, messages, timings) live
in a detail pane under the table that follows the highlighted row. Screens carry the layout as
the state class ``-narrow`` (the inventory uses the same breakpoint).

Every table is sized to the terminal's width here, once per resize, so that nothing needs a
horizontal scroll: :func:`fit_widths` shrinks the flexible columns, :func:`shorten` and
:func:`clip` shorten the values that no longer fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from textual import events

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.widgets import DataTable

__all__ = ["NARROW_BELOW", "TABLE_GUTTER", "clip", "explain_disabled", "fit_widths",
           "highlighted_key", "is_narrow", "shorten", "squeeze", "table_width"]

NARROW_BELOW = 100
"""Screens narrower than this many columns use the narrow layout.

A wide plan row needs about 100 columns (deciding columns 26, a target of about 30, a
before -> after of about 35, cell padding 8); 80x24 is far below that and 120x40 above it.
"""
TABLE_GUTTER = 3
"""Columns a table gives up beside its cells: a thick left border (1) and the vertical
scrollbar (2), both always reserved so that a scrollbar appearing never hides a column."""
CELL_PADDING = 2
"""Columns of padding a DataTable puts around every cell (one on each side)."""


def is_narrow(width: int) -> bool:
    """True when a screen ``width`` columns wide uses the narrow layout."""
    return width < NARROW_BELOW


def laid_out_for(screen: Any, width: int) -> bool:
    """True when ``screen`` is already laid out for a screen ``width`` columns wide (nothing
    to do); else remember ``width`` in ``screen._built``, set or clear its ``-narrow`` class,
    and return False (the caller builds its columns)."""
    narrow = is_narrow(width)
    if screen._built == (narrow, width):
        return True
    screen._built = (narrow, width)
    screen.set_class(narrow, "-narrow")
    return False


def table_width(screen_width: int) -> int:
    """Columns the cells of a full-width table may use on a screen this wide."""
    return max(screen_width - TABLE_GUTTER, 20)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending with an ellipsis when cut."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters.

    References differ at both ends (``vault:secret/ai/support-bot/openai``: the backend at the
    start, the integration at the end), so both ends are kept.
    """
    if len(text) <= width:
        return text
    if width <= 3:
        return clip(text, width)
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "\u2026" + text[len(text) - tail:]


def squeeze(parts: Sequence[str], width: int) -> str:
    """Non-empty ``parts`` joined by spaces in at most ``width`` characters.

    The longest part is shortened first (in the middle, see :func:`shorten`), so a short
    action between a long integration id and a long target stays whole.
    """
    kept = [p for p in parts if p]
    sizes = [len(p) for p in kept]
    over = sum(sizes) + len(kept) - 1 - width
    while over > 0:
        longest = max(range(len(sizes)), key=lambda i: sizes[i])
        if sizes[longest] <= 8:
            break
        sizes[longest] -= 1
        over -= 1
    return clip(" ".join(shorten(p, n) for p, n in zip(kept, sizes, strict=True)), width)


def fit_widths(total: int, columns: Sequence[tuple[int, int]]) -> list[int]:
    """Widths for ``columns`` so that every cell, with its padding, fits in ``total``.

    Args:
        total: Columns available for the cells and their padding.
        columns: ``(wanted, minimum)`` per column; the widest column that can still shrink
            gives up a column first, so long values are shortened before short ones.

    Returns:
        One width per column, never below its minimum (the minimums win when even they do not
        fit: the deciding columns are never cut).
    """
    widths = [max(want, low) for want, low in columns]
    over = sum(widths) + CELL_PADDING * len(widths) - total
    while over > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > columns[i][1]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        over -= 1
    return widths


def highlighted_key(table: DataTable[Any]) -> str | None:
    """The key of the row under ``table``'s cursor (None when the table is empty)."""
    if not table.row_count or not 0 <= table.cursor_row < table.row_count:
        return None
    return str(table.ordered_rows[table.cursor_row].key.value)


def explain_disabled(screen: Screen[Any], event: events.Key,
                     why: Callable[[str], str]) -> bool:
    """Say why a key bound on ``screen`` does nothing right now, instead of staying silent.

    A binding whose ``check_action`` returns None is shown greyed out in the footer and does
    not run; call this from the screen's ``on_key`` so that pressing it anyway tells the
    operator why.

    Args:
        screen: The screen whose own bindings are checked.
        event: The key that reached the screen (stopped when it is explained).
        why: The reason for an action name, or ``""`` to stay silent.

    Returns:
        True when the key was a disabled binding of ``screen`` and a reason was shown.
    """
    active = screen.active_bindings.get(event.key)
    if active is None or active.enabled or active.node is not screen:
        return False
    reason = why(active.binding.action)
    if not reason:
        return False
    event.stop()
    event.prevent_default()
    screen.notify(reason, title=f"{active.binding.description or 'Key'}: not now",
                  severity="warning")
    return True
