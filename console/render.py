"""Plain-text rendering of plans and run results for the headless CLI (no Textual)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from adapters.base import canonical_json
from console.engine.model import Plan, RunResult

__all__ = ["table", "render_plan", "render_result", "result_json", "short_state", "state_diff"]


def short_state(state: dict[str, Any]) -> str:
    """A state mapping as ``k=v`` pairs, compact."""
    if not state:
        return "-"
    return " ".join(f"{k}={canonical_json(v) if isinstance(v, (dict, list)) else v}"
                    for k, v in sorted(state.items()))


def _val(v: Any) -> str:
    text = (json.dumps(v, sort_keys=True, ensure_ascii=False)
            if isinstance(v, (dict, list)) else str(v))
    text = " / ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= 48 else text[:47] + "…"


def state_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Only the fields a change alters: ``field: old -> new``."""
    keys = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if not keys:
        return short_state(after) + " (unchanged)" if after else "-"
    return ", ".join(f"{k}: {_val(before.get(k, '-'))} -> {_val(after.get(k, '-'))}"
                     for k in keys)


def _text_key(state: dict[str, Any]) -> tuple[Any, ...] | None:
    """A key for a state whose keys and values are all strings (most states: switches,
    statuses), under which equal states render alike; None for any other state."""
    items = tuple(state.items())
    for k, v in items:
        if type(k) is not str or type(v) is not str:
            return None
    return items


class _Diffs:
    """:func:`state_diff`, remembered for states of strings (a plan of thousands of
    changes has a handful of distinct before/after pairs)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, ...], str] = {}

    def __call__(self, before: dict[str, Any], after: dict[str, Any]) -> str:
        kb, ka = _text_key(before), _text_key(after)
        if kb is None or ka is None:
            return state_diff(before, after)
        key = (kb, ka)
        text = self.seen.get(key)
        if text is None:
            text = self.seen[key] = state_diff(before, after)
        return text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width text table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip()]
    for r in cells:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


def _columns(headers: Sequence[str], columns: Sequence[Sequence[str]]) -> str:
    """:func:`table` of string columns (one list per header), built column-wise."""
    widths = [max(len(h), max(map(len, col), default=0))
              for h, col in zip(headers, columns, strict=True)]
    out = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    padded = [[c.ljust(w) for c in col] if w else col
              for col, w in zip(columns, widths, strict=True)]
    out.extend("  ".join(row).rstrip() for row in zip(*padded, strict=True))
    return "\n".join(out)


def render_plan(plan: Plan, *, dry_run: bool = False, plan_hash: str | None = None) -> str:
    """The plan grouped by integration and step, irreversible rows marked (``plan_hash``:
    the plan's :attr:`~console.engine.model.Plan.hash` if the caller already has it)."""
    head = "DRY-RUN — nothing will be changed" if dry_run else "PLAN"
    digest = plan_hash or plan.hash
    lines = [f"{head}: runbook {plan.runbook}  run {plan.run_id}  hash {digest[:12]}",
             f"targets: {', '.join(plan.integrations) or 'none'}  cause: {plan.cause}"]
    if plan.restore_of:
        lines.append(f"restores run {plan.restore_of}")
    changes = plan.changes
    lines.append("")
    if changes:
        diff = _Diffs()
        lines.append(_columns(
            ["integration", "step", "action", "target", "before -> after", "status", "undo"],
            [[str(c.integration) for c in changes], [str(c.step) for c in changes],
             [str(c.action) for c in changes], [str(c.target) for c in changes],
             [diff(c.before, c.after) for c in changes],
             [c.status.upper() if c.status in ("error", "unsupported") else str(c.status)
              for c in changes],
             ["reversible" if c.reversible else "IRREVERSIBLE" for c in changes]]))
    else:
        lines.append("(no changes)")
    notes = [f"  {c.target}: ERROR {c.error}" for c in changes if c.error]
    notes += [f"  {c.target}: {c.note}" for c in changes if c.note and not c.error]
    if notes or plan.notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
        lines.extend(f"  {n}" for n in plan.notes)
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.status] = counts.get(c.status, 0) + 1
    irreversible = len(plan.irreversible)
    lines.append("")
    lines.append("summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                 + (f"; {irreversible} irreversible" if irreversible else ""))
    return "\n".join(lines)


def render_result(result: RunResult) -> str:
    """Per-operation outcome and verification, then a one-line verdict."""
    changes = {c.op_id: c for c in result.plan.changes}
    rows = []
    for op_id, r in result.results.items():
        c = changes.get(op_id)
        rows.append([c.integration if c else "?", c.action if c else "?",
                     c.target if c else op_id, r.outcome, r.verdict or "-",
                     r.message[:80]])
    lines = [f"run {result.run_id}  ({result.elapsed:.1f}s)"]
    lines.append(table(["integration", "action", "target", "outcome", "verify", "message"],
                       rows))
    if result.proofs:
        lines.append("")
        lines.append("proof of death (the key tested at its provider, as an application would):")
        lines.append(table(["integration", "key", "detail"],
                           [[p.integration, p.state, p.detail]
                            for p in result.proofs.values()]))
    stays = result.plan.not_restored()
    if stays:
        lines.append("")
        lines.append("NOT RESTORED (cannot be undone; stays dead):")
        lines.extend(f"  {integ}: {line}" for integ, items in stays.items() for line in items)
    verdict = {0: "OK: every change applied and verified",
               1: "INCOMPLETE: some operations did not happen (see outcome)",
               4: "NOT VERIFIED: some targets or keys are still live, or could not be checked"
               }[result.exit_code()]
    if stays and result.exit_code() == 1:
        verdict = ("INCOMPLETE: restored what could be undone; the rest stays dead "
                   "(see NOT RESTORED)")
    if result.cancelled:
        verdict = "CANCELLED: operations not started were skipped; `killswitch resume` finishes"
    lines.append("")
    lines.append(verdict)
    return "\n".join(lines)


def result_json(result: RunResult) -> str:
    """Machine output of a run."""
    return json.dumps({
        "run_id": result.run_id, "exit_code": result.exit_code(),
        "cancelled": result.cancelled, "elapsed": round(result.elapsed, 3),
        "plan_hash": result.plan.hash,
        "operations": [asdict(r) for r in result.results.values()],
        "proofs": [asdict(p) for p in result.proofs.values()],
        "not_restored": result.plan.not_restored(),
    }, indent=2)
