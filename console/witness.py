"""Witnessed checkpoints: what a hash chain alone cannot see.

A hash chain proves that no event was edited, removed or reordered *between* two events it
still holds; it cannot see its newest events deleted (the chain that is left is valid), nor
the whole trail rewritten by someone who can compute the hashes. Like the signed digest
files of CloudTrail log-file validation and the checkpoints of RFC 6962 logs, a
*checkpoint* records the chain head outside the database: the last ``seq``, its ``hash``,
the number of events, the time, whether the trail is keyed and, when it is, an HMAC of all
of that with a key derived from the audit key (so a checkpoint cannot be forged without the
key either).

Checkpoints are written at the end of every run (:func:`checkpoint_run`) and on
``killswitch audit checkpoint``, appended as JSON Lines to the witness file
(``settings.witness``; default next to the audit database, ``<audit_db stem>.witness.jsonl``,
a name that ``rm audit.db*`` does not match). Every checkpoint is kept, so any witnessed
``seq`` can be checked; the file is append-only by use (``O_APPEND``, ``0600``) and can be
copied elsewhere (or the setting pointed at an append-only or remote folder): ``audit verify
--witness FILE`` checks the trail against such a copy too. Notifications carry the head as
well (``Chain: seq N, hash <16 hex>``), so the people paged hold a witness of their own.

:func:`verify_trail` is ``audit verify``: it opens the trail read-only (nothing is repaired),
requires it to be keyed when ``settings.audit_keyed`` says so or any witness saw it keyed
(never on the database's word alone), and fails when the trail is shorter than a witnessed
head or differs at a witnessed ``seq``, naming the last good ``seq``.

One line of the witness file::

    {"count":42,"db":"/home/a/.local/state/killswitch/audit.db","hash":"3f2a...",
     "keyed":true,"mac":"9b1c...","seq":42,"time":"2024-05-01T10:15:00.000000Z",
     "trail":"6c0e..."}
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.audit import ChainReport, TrailBase, canonical_json, checkpoint_mac, utc_now
from console.errors import AuditError, ConsoleError, UsageError
from console.privfile import make_private_dirs, open_private
from console.scrub import scrub_text

if TYPE_CHECKING:
    from console.config import Config

__all__ = [
    "WITNESS_SUFFIX",
    "Checkpoint",
    "WitnessFile",
    "append_checkpoint",
    "checkpoint_or_raise",
    "checkpoint_run",
    "default_witness_path",
    "make_checkpoint",
    "read_checkpoints",
    "verify_trail",
    "witness_path",
    "write_checkpoint",
]

WITNESS_SUFFIX = ".witness.jsonl"
"""Suffix of the default witness file, next to the audit database."""

_log = logging.getLogger("killswitch.witness")


@dataclass(frozen=True)
class Checkpoint:
    """One witnessed chain head.

    Attributes:
        seq: Sequence number of the newest event (0: the trail was empty).
        hash: Its hash.
        count: Number of events in the trail.
        time: When the checkpoint was taken (UTC, ISO-8601).
        keyed: Whether the trail is keyed (HMAC).
        mac: HMAC of every other field (keyed trails only), see
            :func:`console.audit.checkpoint_mac`.
        trail: The trail's id (its ``meta``), to tell trails apart in a shared witness.
        db: The audit database's absolute path when the checkpoint was taken.
    """

    seq: int
    hash: str
    count: int
    time: str
    keyed: bool
    mac: str | None = None
    trail: str = ""
    db: str = ""

    def body(self) -> bytes:
        """The canonical JSON of every field but ``mac``: what the MAC covers."""
        data = asdict(self)
        data.pop("mac")
        return canonical_json(data).encode()

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def short(self) -> str:
        """``seq 42, hash 3f2a9c0d1e2b4f56``."""
        return f"seq {self.seq}, hash {self.hash[:16]}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse one witness line's object.

        Raises:
            ValueError: A field is missing or has the wrong type.
        """
        try:
            seq, count, digest = data["seq"], data["count"], data["hash"]
            time, keyed = data["time"], data["keyed"]
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r} field") from exc
        mac, trail, db = data.get("mac"), data.get("trail", ""), data.get("db", "")
        if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
                or not isinstance(count, int) or isinstance(count, bool)
                or not isinstance(digest, str) or not isinstance(time, str)
                or not isinstance(keyed, bool) or not isinstance(trail, str)
                or not isinstance(db, str) or not (mac is None or isinstance(mac, str))):
            raise ValueError("a field has the wrong type")
        return cls(seq, digest, count, time, keyed, mac, trail, db)


@dataclass
class WitnessFile:
    """What one witness file holds.

    Attributes:
        path: The file.
        checkpoints: Every checkpoint, in file order.
        problems: Lines that are not checkpoints (each names its line number).
        exists: Whether the file exists.
    """

    path: Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exists: bool = True


def default_witness_path(db: str | Path) -> Path:
    """``<folder>/<stem>.witness.jsonl`` next to the audit database ``db``."""
    db = Path(db)
    return db.with_name((db.stem or db.name or "audit") + WITNESS_SUFFIX)


def witness_path(config: Config) -> Path:
    """The configured witness file (``settings.witness``, else next to ``audit_db``)."""
    if config.settings.witness:
        return config.resolve(config.settings.witness)
    return default_witness_path(config.resolve(config.settings.audit_db))


def _abs(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _is_url(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL store rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def _trail_name(db: str | Path) -> str:
    """A checkpoint's ``db``: the SQLite file's absolute path, or the store's URL without
    its password (a trail's ``path`` is already that)."""
    if _is_url(db):
        from console.store.pg import redact_url
        return redact_url(str(db))
    return _abs(db)


def make_checkpoint(log: TrailBase) -> Checkpoint:
    """The trail's head now, with its MAC when the trail is keyed.

    Raises:
        AuditError: The trail cannot be read, or it is keyed and no key is configured.
    """
    head = log.head()
    keyed = log.keyed
    cp = Checkpoint(head.seq, head.hash, head.count, utc_now(), keyed, None, log.trail_id,
                    _trail_name(log.path))
    if keyed:
        mac = log.checkpoint_mac(cp.body())
        if mac is None:
            raise AuditError("this audit trail is keyed and no key is configured: a "
                             "checkpoint cannot be signed", where=str(log.path),
                             hint="set KILLSWITCH_AUDIT_KEY")
        cp = replace(cp, mac=mac)
    return cp


def append_checkpoint(path: str | Path, cp: Checkpoint) -> None:
    """Append ``cp`` as one line to the witness file, durably (fsync), created ``0600``.

    Raises:
        OSError: The file cannot be written.
    """
    path = Path(path).expanduser()
    make_private_dirs(path.parent)
    new = not path.exists()
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (cp.to_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # the new directory entry must survive a crash too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_checkpoint(log: TrailBase, path: str | Path) -> Checkpoint:
    """Take a checkpoint of ``log`` and append it to the witness file ``path``.

    Raises:
        AuditError: The trail cannot be read or the checkpoint signed.
        OSError: The witness file cannot be written.
    """
    cp = make_checkpoint(log)
    append_checkpoint(path, cp)
    return cp


def read_checkpoints(path: str | Path) -> WitnessFile:
    """Every checkpoint in a witness file (a missing file holds none).

    Raises:
        AuditError: The file exists but cannot be read.
    """
    path = Path(path).expanduser()
    out = WitnessFile(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        out.exists = False
        return out
    except OSError as exc:
        raise AuditError(f"cannot read the witness file: {exc.strerror or exc}",
                         where=str(path)) from exc
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            out.checkpoints.append(Checkpoint.from_dict(data))
        except ValueError as exc:
            out.problems.append(f"{path}:{n} is not a checkpoint ({exc}): the witness was "
                                "edited or damaged")
    return out


def _applies(cp: Checkpoint, trail_id: str, db: str) -> bool:
    """Whether a checkpoint in a (possibly shared) witness file is about this trail."""
    if not cp.trail and not cp.db:
        return True
    return bool((trail_id and cp.trail == trail_id) or cp.db == db)


def verify_trail(
    db: str | Path,
    *,
    key: bytes | None = None,
    witnesses: Sequence[WitnessFile] = (),
    exported: Sequence[WitnessFile] = (),
    require_key: bool = False,
) -> ChainReport:
    """``audit verify``: the trail (opened read-only) against every witnessed checkpoint.

    Args:
        db: The audit database, or the URL of a PostgreSQL store (``postgresql://...``).
        key: The audit key (default ``$KILLSWITCH_AUDIT_KEY``).
        witnesses: The configured witness file(s): their checkpoints about this trail (same
            trail id or same database path) are used.
        exported: Witness files the operator names (``--witness``): every checkpoint in
            them is taken to be about this trail.
        require_key: ``settings.audit_keyed``. A witness that saw the trail keyed requires
            it too.

    Returns:
        The :class:`~console.audit.ChainReport`; it also fails on a witness line that is not
        a checkpoint and on a keyed checkpoint whose MAC does not verify.

    Raises:
        AuditError: The trail cannot be read.
    """
    if key is None:
        env = os.environ.get("KILLSWITCH_AUDIT_KEY", "")
        key = env.encode("utf-8") if env else None
    log: TrailBase | None
    if _is_url(db):
        from console.store.pg_audit import PgAuditLog, trail_exists
        shown = where = _trail_name(db)
        log = PgAuditLog(str(db), key=key, readonly=True) if trail_exists(str(db)) else None
    else:
        from console.audit import AuditLog
        db_path = Path(db).expanduser()
        shown, where = str(db_path), _abs(db_path)
        log = AuditLog(db_path, key=key, readonly=True) if db_path.is_file() else None
    try:
        trail_id = log.trail_id if log is not None else ""
        problems: list[str] = []
        heads: list[Checkpoint] = []
        for wf, every in [*((w, False) for w in witnesses), *((w, True) for w in exported)]:
            problems += wf.problems
            for cp in wf.checkpoints:
                if not every and not _applies(cp, trail_id, where):
                    continue
                if cp.keyed and key is not None and not (
                        cp.mac and checkpoint_mac(key, cp.body()) == cp.mac):
                    problems.append(f"{wf.path}: the checkpoint at seq {cp.seq} ({cp.time}) "
                                    "has a bad MAC: the witness was edited, or written with "
                                    "another key")
                    continue
                heads.append(cp)
        must_key = require_key or any(cp.keyed for cp in heads)
        if log is None:
            seen = [cp for cp in heads if cp.seq > 0]
            if seen:
                newest = max(seen, key=lambda cp: cp.seq)
                problems.insert(0, f"the audit database {shown} is missing but a witness "
                                   f"saw seq {newest.seq} at {newest.time}")
                report = ChainReport(False, 0, 1, "", 0, len(seen))
            else:
                report = ChainReport(True, 0, None, "", 0, 0)
        else:
            report = log.verify(require_key=must_key, witnessed=heads)
    finally:
        if log is not None:
            log.close()
    if problems:
        reason = "; ".join(p for p in [report.reason, *problems] if p)
        report = replace(report, ok=False, reason=reason)
    return report


def verify_configured(config: Config, exported: Sequence[WitnessFile] = ()) -> ChainReport:
    """The config's trail against its configured witness (and ``exported`` ones), keyed as
    ``settings.audit_keyed`` says: what ``audit verify``, the report and the console show."""
    from console.store import store_url
    return verify_trail(store_url(config) or config.resolve(config.settings.audit_db),
                        witnesses=[read_checkpoints(witness_path(config))], exported=exported,
                        require_key=config.settings.audit_keyed)


def checkpoint_run(config: Config, log: TrailBase, run_id: str = "") -> Checkpoint | None:
    """At the end of a run: witness the chain head in the configured witness file.

    Never raises: the run's side effects have happened and its result must be reported. A
    checkpoint that cannot be written is logged (a warning) and recorded in the trail.

    Args:
        config: The config (``settings.witness``, ``settings.audit_db``).
        log: The run's audit trail, with the run's last event committed.
        run_id: Recorded with a failure.

    Returns:
        The checkpoint written, or None.
    """
    path = witness_path(config)
    try:
        return write_checkpoint(log, path)
    except (OSError, ConsoleError) as exc:
        why = getattr(exc, "msg", None) or getattr(exc, "strerror", None) or str(exc)
        _log.warning(scrub_text(f"could not write the audit checkpoint to {path}: {why}"))
        try:
            log.append(run_id=run_id or None, phase="audit", action="witness.checkpoint",
                       outcome="failed", detail={"witness": str(path), "message": str(why)})
        except ConsoleError:
            pass
        return None


def checkpoint_or_raise(log: TrailBase, path: str | Path) -> Checkpoint:
    """:func:`write_checkpoint` for commands: an unwritable witness is a usage error.

    Raises:
        UsageError: The witness file cannot be written.
        AuditError: The trail cannot be read or the checkpoint signed.
    """
    try:
        return write_checkpoint(log, path)
    except OSError as exc:
        raise UsageError(f"cannot write the witness file: {exc.strerror or exc}",
                         where=str(path), hint="check settings.witness") from exc
