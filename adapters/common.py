"""Helpers shared by several adapters: secrets, Retry-After, file writes, changes.

What lives here, so adapters that talk to the same kind of thing behave alike::

    read_secret(...)        (value, source) from an env var NAME, else a file
    require_key(...)        the console's key from an env var NAME or a key file, else AuthError
    parse_retry_after(...)  one Retry-After value (delta seconds or an HTTP date) -> seconds
    locked(...)             per-path thread lock + ``flock`` on the sidecar ``<path>.lock``
    write_atomic(...)       temp file in the same directory, fsync, ``os.replace``
    plan_context(...)       a PlanContext completed for the adapter planning (``ctx.change``)
    toggle_inverse(...)     the undo Change of a disable / enable of several keys or versions
    user_agent(...)         ``killswitch/<version> run/<run id>`` for every HTTP request
    env_flag_changes(...)   one Change per environment of a flag (``{env: on}`` state)
    env_flag_inverse(...)   the undo of one of those

HTTP (one client per backend, User-Agent, the status-to-error map, Retry-After headers,
transport errors) is :mod:`adapters.http`'s. Adapters may import only ``console.errors``
from the console; nothing here reads or logs a secret value into a message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from adapters.base import NOOP, Adapter, Change, PlanContext
from console.errors import AdapterError, AuthError, UndoUnsupported

__all__ = [
    "path_option",
    "seconds_option",
    "env_flag_changes",
    "env_flag_inverse",
    "locked",
    "parse_retry_after",
    "plan_context",
    "read_secret",
    "require_key",
    "toggle_inverse",
    "user_agent",
    "write_atomic",
]


# -- identity -----------------------------------------------------------------------------


def user_agent(run_id: str) -> str:
    """The ``User-Agent`` every HTTP adapter sends: ``killswitch/<version> run/<run id>``.

    The provider's own audit log then shows which Killswitch run acted (``run/-`` outside a
    run, e.g. a plan or a proof without a run id).

    Args:
        run_id: The run the request belongs to, or "".

    Returns:
        The header value; the version is the installed distribution's, else ``0``.
    """
    try:
        ver = version("killswitch")
    except PackageNotFoundError:
        ver = "0"
    return f"killswitch/{ver} run/{run_id or '-'}"


# -- options ------------------------------------------------------------------------------


# What a duration or a file is comes from the adapter's typed ``Options`` model
# (adapters/options.py: ``Seconds``, ``FilePath``), validated by ``Adapter.__init__`` before
# these run, never from a key's spelling: the two helpers below only read typed values.


def path_option(options: Mapping[str, Any], key: str) -> Path | None:
    """The file an option names, or None when it is not set.

    A :data:`~adapters.options.FilePath` option is already resolved (``~`` expanded,
    relative to the config file's folder when the console built the adapter).
    """
    value = options.get(key)
    return Path(str(value)).expanduser() if value else None


def seconds_option(backend: str, options: Mapping[str, Any], default: float,
                   keys: tuple[str, ...] = ("request_timeout", "timeout")) -> float:
    """A duration option in seconds: the first of ``keys`` that is set, else ``default``.

    A :data:`~adapters.options.Seconds` option is already a positive float; the check below
    only guards keys an adapter reads without declaring them.

    Raises:
        AdapterError: The value is not a number (names the backend and the option).
    """
    raw: Any = next((options.get(k) for k in keys if options.get(k)), default)
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"backend {backend!r}: {keys[0]} must be a number of seconds, "
                           f"got {raw!r}", where=backend,
                           hint=f'e.g. {keys[0]} = 30') from exc


# -- secrets ------------------------------------------------------------------------------


def read_secret(env: str, file: Path | None, file_label: str = "file") -> tuple[str, str]:
    """``(value, where it came from)`` from ``$env``, else ``file``; ``("", description)``.

    Args:
        env: Name of the environment variable ("" for none).
        file: Fallback file (first the variable, then the file), or None.
        file_label: How the file is named in the source text (``file``, ``token file``).
    """
    value = os.environ.get(env, "").strip() if env else ""
    if value:
        return value, f"environment variable {env}"
    if file is not None and file.is_file():
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError:
            value = ""
        if value:
            return value, f"{file_label} {file}"
    where = f"environment variable {env}" if env else "no environment variable"
    return "", where + (f" (and {file_label} {file})" if file else "")


def require_key(backend: str, provider: str, key_env: str, key_file: Path | None, *,
                what: str, file_option: str, hint: str) -> str:
    """The console's key: ``$key_env``, else the content of ``key_file``.

    Args:
        backend: Backend name (``where`` of the error).
        provider: Display name of the provider.
        key_env: Name of the environment variable.
        key_file: Fallback file, or None.
        what: What the key is called in messages (``admin key``, ``key``).
        file_option: The backend option naming the file (``admin_key_file``).
        hint: Hint of the AuthError when neither holds a key.

    Raises:
        AuthError: The file cannot be read, or neither holds a key; the message names the
            variable and the file, never a value.
    """
    key = os.environ.get(key_env, "").strip() if key_env else ""
    if key:
        return key
    if key_file is not None and key_file.is_file():
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AuthError(f"cannot read {provider} {what} file {key_file}: {exc.strerror}",
                            where=backend) from exc
        if key:
            return key
    why = (f" and {what} file {key_file} does not exist or is empty" if key_file
           else f" and no {file_option} is configured")
    raise AuthError(
        f"no {provider} {what} for backend {backend!r}: environment variable {key_env} "
        f"is not set{why}", where=backend, hint=hint)


# -- Retry-After --------------------------------------------------------------------------


def parse_retry_after(value: Any) -> float | None:
    """Seconds from a Retry-After value (delta seconds or an HTTP date), or None."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = parsedate_to_datetime(str(value))
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


# -- files --------------------------------------------------------------------------------

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the per-file thread lock and an exclusive flock on the sidecar ``<path>.lock``."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(str(path), threading.Lock())
    with lock:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def write_atomic(path: Path, text: str, *, keep_owner: bool = False,
                 sync_dir: bool = False) -> None:
    """Replace ``path`` with ``text`` atomically, keeping its mode (default 0644).

    Args:
        path: The file.
        text: The new content.
        keep_owner: Also keep uid/gid (only when running as root).
        sync_dir: fsync the directory after the rename.
    """
    mode, owner = 0o644, None
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if keep_owner and owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# -- changes ------------------------------------------------------------------------------


def plan_context(adapter: Adapter, action: str, ref: Mapping[str, Any],
                 ctx: PlanContext) -> PlanContext:
    """``ctx`` completed for ``adapter`` planning ``action`` on ``ref``, for ``ctx.change``.

    The engine's contexts already name the action, backend, adapter and reference; a bare
    ``PlanContext(integration, step)`` (tests, tools) gets them here, with the action's
    reversibility from the adapter's :class:`~adapters.base.ActionSpec`.

    Args:
        adapter: The planning adapter.
        action: The action kind being planned.
        ref: The inventory reference being planned.
        ctx: The context the adapter was given.
    """
    if (ctx.action, ctx.backend, ctx.adapter) == (action, adapter.backend, adapter.name) \
            and ctx.ref == ref:
        return ctx
    reversible = ctx.reversible
    if ctx.action != action:
        spec = adapter.ACTIONS.get(action)
        reversible = spec.reversible if spec is not None else ctx.reversible
    return replace(ctx, action=action, backend=adapter.backend, adapter=adapter.name,
                   ref=dict(ref), reversible=reversible)


def toggle_inverse(change: Change, applied: Mapping[str, Any], *, ids_key: str, noun: str,
                   irreversible: str, irreversible_hint: str, of: str = "") -> Change:
    """The undo of a disable / enable of several ids (keys, versions): the other one.

    The change's ``before`` / ``after`` are per-id status maps; the undo swaps them and acts
    on exactly the ids the change acted on (``applied[ids_key]``, else ``undo[ids_key]``).

    Args:
        change: The change to undo.
        applied: What apply returned.
        ids_key: Key of the id list in ``applied`` / ``undo`` (``keys``, ``versions``).
        noun: How the ids are named in the note (``key(s)``).
        irreversible: Why a destroy cannot be undone.
        irreversible_hint: What to do instead.
        of: Appended to the note (`` of <target>``).

    Raises:
        UndoUnsupported: A destroy (irreversible), or a change that did nothing.
    """
    if change.action == "credential.destroy" or not change.reversible:
        raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: "
                              f"{irreversible}", where=change.target, hint=irreversible_hint)
    ids = list(applied.get(ids_key) or change.undo.get(ids_key) or [])
    if change.status == NOOP or not ids:
        raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                              "wanted state before this run", where=change.target)
    back = "credential.enable" if change.action == "credential.disable" \
        else "credential.disable"
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action=back, backend=change.backend,
        adapter=change.adapter, target=change.target, ref=dict(change.ref),
        before=dict(change.after), after=dict(change.before), reversible=True,
        undo={ids_key: ids},
        note=f"{'enables' if back == 'credential.enable' else 'disables'} {noun} "
        f"{', '.join(ids)}{of}", inverse_of=change.op_id)


def env_flag_changes(adapter: Adapter, action: str, ref: Mapping[str, Any],
                     ctx: PlanContext, *, flag: str, target: str, state: Mapping[str, bool],
                     envs: list[str], undo: Mapping[str, Any],
                     note: Callable[[str], str]) -> list[Change]:
    """One change per environment of a flag: ``{env: on}`` before and after.

    Environments already in the wanted state are no-ops; a flag without environments is
    one no-op change.

    Args:
        adapter: The planning adapter (backend and name of the changes).
        action: ``flag.disable`` or ``flag.enable``.
        ref: The inventory reference.
        ctx: The plan context (op ids, integration, step).
        flag: Flag key, for notes.
        target: ``backend:project/flag``; the change's target adds ``/env``.
        state: ``on`` per environment, as observed.
        envs: The environments to change.
        undo: Extra undo data of every change (after ``project``, ``environments``,
            ``prior``); ``project`` must be in it.
        note: The note of a change that flips the flag in an environment.
    """
    on = action == "flag.enable"
    word = "on" if on else "off"
    ctx = plan_context(adapter, action, ref, ctx)
    changes = []
    for i, env in enumerate(envs):
        before = {env: state[env]}
        extra = {k: v for k, v in undo.items() if k != "project"}
        data = {"project": undo["project"], "environments": [env], "prior": before, **extra}
        if state[env] == on:
            changes.append(ctx.change(f"{target}/{env}", before, {env: on}, index=i,
                                      undo=data, status=NOOP,
                                      note=f"{flag} is already {word} in {env}"))
            continue
        text = note(env)
        if not on:
            text += "; undo turns it back on there"
        changes.append(ctx.change(f"{target}/{env}", before, {env: on}, index=i, undo=data,
                                  note=text))
    if not changes:
        return [ctx.change(target, {}, {}, status=NOOP, note=f"{flag} has no environment")]
    return changes


def env_flag_inverse(change: Change, applied: Mapping[str, Any],
                     undo: Mapping[str, Any] | None = None) -> Change:
    """The change that puts back the prior ``on`` of each environment of a flag change.

    Args:
        change: A change made by :func:`env_flag_changes`.
        applied: What apply returned (``prior``).
        undo: Extra undo data of the inverse.

    Raises:
        UndoUnsupported: The change was a no-op.
    """
    if change.status == NOOP:
        raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in "
                              "that state before this run", where=change.target)
    prior = dict(applied.get("prior") or change.undo.get("prior") or change.before)
    back = "flag.enable" if change.action == "flag.disable" else "flag.disable"
    on = [e for e, v in prior.items() if v]
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action=back, backend=change.backend,
        adapter=change.adapter, target=change.target, ref=dict(change.ref),
        before=dict(change.after), after=prior,
        undo={**change.undo, "prior": dict(change.after), **(undo or {})},
        note=f"puts back the prior state of {change.target}: on in "
        f"{', '.join(on) or 'no environment'}, others left as they are",
        inverse_of=change.op_id)
