"""OpenFeature flagd flag-file adapter: turn a flag off by editing the JSON file flagd watches.

Backend options::

    [backends.flags]
    type = "flagfile"
    path = ".sandbox/flags.json"

Inventory reference::

    {backend = "flags", flag = "support-bot-enabled", off_variant = "off"}  # off_variant optional

Without ``off_variant`` the off variant is the first whose value is ``false``, else the one
named ``off``; with neither, planning fails.

``flag.disable`` keeps the flag ``ENABLED`` with ``defaultVariant`` = the off variant and an
empty ``targeting``, so every evaluation deterministically returns the off value (a
``DISABLED`` flag would make applications fall back to their code default instead).
``flag.enable`` (the inverse) restores exactly the prior ``state``, ``defaultVariant`` and
``targeting``; a key absent before is absent again.

State shape (``before`` / ``after`` / :meth:`FlagFileAdapter.read`) — the flag's own
``state``, ``defaultVariant`` and ``targeting``, each only when present in the file::

    {"state": "ENABLED", "defaultVariant": "on", "targeting": {}}

Writes are atomic (temporary file in the same directory, fsync, ``os.replace``) and
serialised per file by a thread lock plus ``fcntl.flock`` on ``<path>.lock``, so concurrent
changes to different flags never lose an update. Everything else in the file is preserved.

Example runbook step::

    [[steps]]
    id = "flags-off"
    action = "flag.disable"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import locked, plan_context, write_atomic
from adapters.specs.flags import FLAGFILE, FlagFileOptions
from console.errors import AdapterError, NotFound, UndoUnsupported

__all__ = ["FLAG_KEYS", "FlagFileAdapter", "evaluate", "load_flag_file", "update_flag_file"]

FLAG_KEYS = ("state", "defaultVariant", "targeting")
"""The keys of a flag that the adapter reads and writes; everything else is left alone."""


def load_flag_file(path: Path) -> dict[str, Any]:
    """Parse a flagd flag file.

    Raises:
        NotFound: The file does not exist.
        AdapterError: The file is not valid JSON (``where`` is ``file:line``) or has no
            ``flags`` object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"flag file {path} does not exist", where=str(path)) from exc
    except OSError as exc:
        raise AdapterError(f"cannot read flag file {path}: {exc.strerror}",
                           where=str(path)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"flag file is not valid JSON: {exc.msg} (column {exc.colno})",
                           where=f"{path}:{exc.lineno}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("flags", {}), dict):
        raise AdapterError("flag file has no `flags` object", where=str(path))
    data.setdefault("flags", {})
    return data


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", sync_dir=True)


def update_flag_file(path: Path, mutate: Callable[[dict[str, Any]], bool],
                     create: bool = False) -> dict[str, Any]:
    """Read-modify-write ``path`` under the file lock; writes only when ``mutate`` says so.

    Args:
        path: The flag file.
        mutate: Changes the parsed document in place; returns True when it changed it.
        create: Start from an empty document when the file does not exist.

    Returns:
        The document after the update.
    """
    path = Path(path)
    try:
        with locked(path):
            if create and not path.exists():
                data: dict[str, Any] = {"$schema": "https://flagd.dev/schema/v0/flags.json",
                                        "flags": {}}
                changed = True
                mutate(data)
            else:
                data = load_flag_file(path)
                changed = mutate(data)
            if changed:
                _write_atomic(path, data)
            return data
    except OSError as exc:
        raise AdapterError(f"cannot update flag file {path}: {exc.strerror}",
                           where=str(path)) from exc


def evaluate(flag: Mapping[str, Any] | None) -> tuple[bool, Any, str]:
    """Evaluate a flag with an empty context, as flagd would.

    Returns:
        ``(found, value, reason)``: not found for a missing or ``DISABLED`` flag; a null
        ``defaultVariant`` defers to the code default (found False); non-empty targeting
        cannot be evaluated without a context and is reported as such (found False).
    """
    if not flag:
        return False, None, "flag not found"
    if flag.get("state") == "DISABLED":
        return False, None, "flag DISABLED: flagd answers flag-not-found (code default)"
    if flag.get("targeting"):
        return False, None, "targeting rules decide the value per context"
    variant = flag.get("defaultVariant")
    if variant is None:
        return False, None, "defaultVariant is null: code default"
    variants = flag.get("variants") or {}
    if variant not in variants:
        return False, None, f"defaultVariant {variant!r} is not a variant"
    return True, variants[variant], f"defaultVariant {variant!r}"


def _state(flag: Mapping[str, Any]) -> dict[str, Any]:
    return {k: flag[k] for k in FLAG_KEYS if k in flag}


class FlagFileAdapter(Adapter):
    """Switch flags off in a flagd flag file, reversibly.

    ``flag.disable`` pins the flag to its off variant; ``flag.enable`` puts back the prior
    state recorded by the disable.
    """

    name: ClassVar[str] = "flagfile"
    Options: ClassVar[type[FlagFileOptions]] = FlagFileOptions
    OPTIONS: ClassVar[Mapping[str, str]] = FlagFileOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = FLAGFILE.actions  # adapters/specs/flags.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        raw = str(self.options.get("path") or "")
        if not raw:
            raise AdapterError(f"backend {backend!r}: option `path` (the flag file) is required",
                               where=backend)
        self.path = Path(raw).expanduser()

    def _flag_key(self, ref: Mapping[str, Any]) -> str:
        key = str(ref.get("flag") or "")
        if not key:
            raise AdapterError("flag reference needs `flag`", where=self.backend)
        return key

    def _flag(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        flag = data["flags"].get(key)
        if not isinstance(flag, dict):
            raise NotFound(f"flag {key!r} is not in {self.path}", where=f"{self.path}#{key}")
        return flag

    def _off_variant(self, flag: Mapping[str, Any], ref: Mapping[str, Any], key: str) -> str:
        variants = flag.get("variants") or {}
        wanted = ref.get("off_variant")
        if wanted:
            if wanted not in variants:
                raise AdapterError(f"off_variant {wanted!r} is not a variant of flag {key!r} "
                                   f"(variants: {', '.join(variants) or 'none'})",
                                   where=f"{self.path}#{key}")
            return str(wanted)
        for name, value in variants.items():
            if value is False:
                return str(name)
        if "off" in variants:
            return "off"
        raise AdapterError(f"flag {key!r} has no variant with value false and none named "
                           "'off'", where=f"{self.path}#{key}",
                           hint="set off_variant on the inventory reference")

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Read the flag and return the change (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the flagfile adapter does not offer {action}",
                               where=self.backend)
        key = self._flag_key(ref)
        flag = self._flag(load_flag_file(self.path), key)
        before = _state(flag)
        if action == "flag.disable":
            off = self._off_variant(flag, ref, key)
            after: dict[str, Any] = {"state": "ENABLED", "defaultVariant": off, "targeting": {}}
            note = f"pins {key} to variant {off!r} (targeting cleared); undo restores it"
        else:
            after = {"state": "ENABLED", **{k: v for k, v in before.items() if k != "state"}}
            note = f"sets {key} ENABLED"
        ctx = plan_context(self, action, ref, ctx)
        target, undo = f"{self.backend}:{key}", {"prior": before}
        if before == after:
            return [ctx.change(target, before, after, undo=undo, status=NOOP,
                               note=f"{key} is already in that state")]
        return [ctx.change(target, before, after, undo=undo, note=note)]

    def read(self, change: Change) -> dict[str, Any]:
        """The flag's current ``state`` / ``defaultVariant`` / ``targeting``."""
        key = self._flag_key(change.ref)
        return _state(self._flag(load_flag_file(self.path), key))

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write ``change.after`` into the flag (atomic, locked, idempotent).

        The file is read again under its lock: that read is the write's own (every other
        flag in the file is kept as it is now), so ``current`` is not needed.
        """
        key = self._flag_key(change.ref)
        wanted = change.after

        def mutate(data: dict[str, Any]) -> bool:
            flag = self._flag(data, key)
            if _state(flag) == wanted:
                return False
            for k in FLAG_KEYS:
                if k in wanted:
                    flag[k] = wanted[k]
                else:
                    flag.pop(k, None)
            return True

        update_flag_file(self.path, mutate)
        return {"prior": change.before}

    def verify(self, change: Change) -> Verdict:
        """Evaluate the flag with an empty context as flagd would."""
        key = self._flag_key(change.ref)
        flag = load_flag_file(self.path)["flags"].get(key)
        found, value, reason = evaluate(flag)
        shown = json.dumps(value)
        if change.action == "flag.disable":
            off = (flag or {}).get("variants", {}).get(change.after.get("defaultVariant"))
            if found and value == off:
                return Verdict(True, "off", f"{key} evaluates to {shown} ({reason})")
            return Verdict(False, "live", f"{key} does not evaluate off: "
                           f"{reason if not found else shown}")
        state = _state(flag or {})
        if state == change.after:
            return Verdict(True, "restored", f"{key} is back to its prior state "
                           f"({reason}{'' if not found else ', value ' + shown})")
        return Verdict(False, "off", f"{key} is not in its prior state ({reason})")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that restores the flag exactly as it was before ``change``."""
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in "
                                  "that state before this run", where=change.target)
        prior = dict(applied.get("prior") or change.undo.get("prior") or change.before)
        back = "flag.enable" if change.action == "flag.disable" else "flag.disable"
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}",
            action=back, backend=change.backend, adapter=change.adapter, target=change.target,
            ref=dict(change.ref), before=dict(change.after), after=prior,
            undo={"prior": dict(change.after)}, note=f"restores the prior state of "
            f"{change.target}", inverse_of=change.op_id,
        )
