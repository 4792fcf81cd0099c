"""Evidence bundles: what ``evidence.preserve`` copies, where it goes, and how it is proven intact.

Layout (``settings.evidence_dir``, default ``evidence/`` next to the audit database)::

    <evidence_dir>/<run_id>/manifest.json
    <evidence_dir>/<run_id>/<integration>/<NN>-<backend>/<item>

One folder per *reference* (``NN`` is the reference's position in the step, from 01; a step
other than ``preserve-evidence`` prefixes its id: ``<step>-<NN>-<backend>``), so two copies of
one key in the same store never collide. Folders are created ``0700`` and files ``0600``,
written to an ``O_EXCL`` temporary file (never following a link) and renamed into place.

Item names are ``[A-Za-z0-9._-]`` (first character a letter or digit, at most 128): no
folders, no ``..``, no hidden files; anything else is refused (:class:`EvidenceError`). A name
used twice by one attempt of one reference is refused; a retried attempt replaces the items
of the attempt before it (same names), so a retry never leaves two versions behind.

Nothing secret is written: JSON items are scrubbed like the audit trail
(:func:`console.scrub.scrub`: sensitive field names and key-shaped strings become
``[REDACTED hmac:...]``); a provider's own files (batch output and error files) are scrubbed
line by line with :func:`console.scrub.scrub_text`, so the manifest's SHA-256 of such a file is
the hash of the scrubbed copy, not of the provider's original.

``manifest.json`` lists every file (relative path, size, SHA-256, integration, backend,
reference target, source, op id) and every source that failed (with the provider's message),
plus the run id, incident, cause, mode and times. It is rewritten atomically (temporary file,
fsync, rename) after every evidence operation, and each time its SHA-256 is recorded in the
audit trail (phase ``apply``, action ``evidence.manifest``, outcome ``sealed``), so the trail
vouches for the bundle: :func:`check_bundle` re-hashes every file and compares the manifest
with the hash the trail recorded last. :func:`export_bundle` writes a reproducible
``.tar.gz`` (members in a fixed order, fixed owners, modes and times).

A rehearsal writes nothing (its runtime says ``writes_evidence = False``): the adapter call
is simulated and no bundle is opened.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.base import UNSUPPORTED, Adapter, Change, PlanContext, Verdict
from adapters.evidence import EVIDENCE_ACTION, EvidenceSink
from console.engine.model import utcnow
from console.errors import (
    AdapterError,
    ConfigError,
    EngineError,
    UsageError,
    VerificationFailed,
)
from console.privfile import PRIVATE_FILE, make_private_dirs, open_private
from console.scrub import scrub, scrub_text
from console.vocab import DEFAULT_CAUSE, Phase

if TYPE_CHECKING:
    from console.config import Config
    from console.engine.executor import Executor
    from console.engine.runtime import Runtime

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "MANIFEST_ACTION",
    "PLAN_NOTE",
    "SEALED",
    "BundleCheck",
    "BundleSink",
    "EvidenceBundle",
    "EvidenceError",
    "check_bundle",
    "check_name",
    "evidence_change",
    "evidence_root",
    "export_bundle",
    "preserve_op",
    "verify_bundle",
    "verify_op",
]

MANIFEST = "manifest.json"
"""The manifest's file name, in the run's folder."""
MANIFEST_ACTION = "evidence.manifest"
"""The action of the trail event that records the manifest's SHA-256."""
SEALED = "sealed"
"""The outcome of that event."""
BUNDLE_FORMAT = "killswitch-evidence/1"
"""``format`` of every manifest."""
STANDARD_STEP = "preserve-evidence"
"""The evidence step of the shipped runbooks: its reference folders carry no step prefix."""
PLAN_NOTE = ("copies key metadata, batch jobs and files, usage and history into the evidence "
             "bundle (read-only; nothing to undo)")
"""The note of every planned evidence change."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PART = ".part"
_MESSAGE_MAX = 2000
_HASH_INLINE = 1 << 20  # bytes an operation's verify re-hashes without a thread


class EvidenceError(EngineError):
    """The bundle refused an item (bad or repeated name) or cannot be written."""


# -- where -------------------------------------------------------------------------------------
def evidence_root(config: Config) -> Path:
    """``settings.evidence_dir`` resolved against the config's folder; default: the folder
    ``evidence`` next to the audit database (in the state folder unless ``audit_db`` moved)."""
    configured = str(getattr(config.settings, "evidence_dir", "") or "")
    if configured:
        return config.resolve(configured)
    return config.resolve(config.settings.audit_db).parent / "evidence"


def check_name(name: str, what: str = "evidence item name") -> str:
    """``name`` if it is a safe file name (``[A-Za-z0-9._-]``, starting with a letter or digit,
    at most 128 characters).

    Raises:
        EvidenceError: Anything else (a folder, ``..``, a hidden file, an empty name).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise EvidenceError(f"{what} {name!r} refused: use letters, digits, '.', '_' and '-' "
                            "only, starting with a letter or digit (no folders)",
                            hint="this is a bug of the adapter that named it")
    return name


def _segment(text: str) -> str:
    """A folder name made of ``text`` (unsafe characters become ``_``)."""
    return _UNSAFE.sub("_", text).lstrip(".") or "_"


def _folder(change: Change) -> str:
    """The folder of one reference's items inside its integration's folder."""
    tail = change.op_id.rsplit("/", 1)[-1]
    n = int(tail) + 1 if tail.isdigit() else 1
    base = f"{n:02d}-{_segment(change.backend)}"
    return base if change.step == STANDARD_STEP else f"{_segment(change.step)}-{base}"


# -- planning ----------------------------------------------------------------------------------
def evidence_change(ctx: PlanContext, adapter: Adapter, target: str) -> Change:
    """The change that preserves one reference's evidence, built by the engine (the adapter
    is not asked to plan: nothing is observed, nothing changes at the target).

    A backend whose adapter cannot preserve gets an ``unsupported`` row saying so.
    """
    if adapter.CAN_PRESERVE:
        return ctx.change(target, {"evidence": "not preserved"}, {"evidence": "preserved"},
                          reversible=True, action=EVIDENCE_ACTION, note=PLAN_NOTE)
    return ctx.change(target, {}, {}, status=UNSUPPORTED, reversible=True,
                      action=EVIDENCE_ACTION,
                      note=f"the {adapter.name} adapter cannot preserve evidence: no evidence "
                           f"comes from backend {ctx.backend}; this will NOT happen")


# -- writing -----------------------------------------------------------------------------------
def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _scrub_line(line: bytes) -> bytes:
    text = line.decode("utf-8", "surrogateescape")
    return scrub_text(text).encode("utf-8", "surrogateescape")


def scrub_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A provider's file, scrubbed line by line (:func:`console.scrub.scrub_text`)."""
    pending = b""
    for chunk in chunks:
        pending += bytes(chunk)
        if b"\n" not in pending:
            continue
        *lines, pending = pending.split(b"\n")
        yield b"".join(_scrub_line(line) + b"\n" for line in lines)
    if pending:
        yield _scrub_line(pending)


def _json_bytes(data: Any) -> bytes:
    plain = json.loads(json.dumps(data, default=str))  # dates etc. as text, then scrubbed
    return (json.dumps(scrub(plain), indent=2, sort_keys=True, ensure_ascii=False)
            + "\n").encode("utf-8")


class BundleSink(EvidenceSink):
    """One attempt of one reference's preservation: writes its items into the bundle.

    Thread-safe (the adapter runs in the engine's thread pool). Once :meth:`close` d (the
    engine gave up waiting, or the attempt ended), nothing more is written.
    """

    def __init__(self, bundle: EvidenceBundle, change: Change) -> None:  # noqa: D107
        self.bundle = bundle
        self.change = change
        self.rel_dir = f"{_segment(change.integration)}/{_folder(change)}"
        self.names: set[str] = set()
        self.written: dict[str, dict[str, Any]] = {}
        self.failures: list[dict[str, Any]] = []
        self.closed = False

    # the contract
    def json(self, name: str, data: Any, *, source: str) -> None:
        """Write ``data`` (scrubbed) as ``<name>.json``."""
        fname = check_name(name)
        if not fname.endswith(".json"):
            fname = check_name(f"{fname}.json")
        self._write(fname, [_json_bytes(data)], source)

    def file(self, name: str, chunks: Iterable[bytes], *, source: str) -> None:
        """Write a provider's file as ``name``, scrubbed line by line, streamed."""
        self._write(check_name(name), scrub_lines(chunks), source)

    def failed(self, source: str, message: str) -> None:
        """Record that ``source`` could not be preserved (scrubbed message)."""
        self.note_failure(source, message, late=False)

    def note_failure(self, source: str, message: str, *, late: bool = True) -> None:
        """Record a failed source; ``late``: also after :meth:`close` (the engine records
        that ``preserve`` itself failed)."""
        entry = {"source": scrub_text(str(source))[:200],
                 "message": scrub_text(str(message))[:_MESSAGE_MAX],
                 **self._about()}
        with self.bundle.lock:
            if self.closed and not late:
                return
            self.failures.append(entry)
            self.bundle.failed.setdefault(self.change.op_id, []).append(entry)

    # the engine's side
    def close(self) -> None:
        """Refuse every later write (the attempt is over)."""
        with self.bundle.lock:
            self.closed = True

    def summary(self) -> dict[str, Any]:
        """What this attempt preserved: the undo data of the operation."""
        return {"folder": self.rel_dir,
                "files": [{"path": e["path"], "sha256": e["sha256"], "size": e["size"]}
                          for e in sorted(self.written.values(), key=lambda e: e["path"])],
                "failed": [{"source": f["source"], "message": f["message"]}
                           for f in self.failures]}

    def _about(self) -> dict[str, Any]:
        c = self.change
        return {"integration": c.integration, "backend": c.backend, "target": c.target,
                "op_id": c.op_id}

    def _write(self, fname: str, chunks: Iterable[bytes], source: str) -> None:
        rel = f"{self.rel_dir}/{fname}"
        with self.bundle.lock:
            if self.closed:
                raise EvidenceError(f"evidence item {rel} refused: the operation is over")
            owner = self.bundle.files.get(rel, {}).get("op_id")
            if fname in self.names or (owner and owner != self.change.op_id):
                raise EvidenceError(f"evidence item {rel} refused: the name is already used "
                                    "for this reference", hint="name each item once")
            self.names.add(fname)
        try:
            self._store(rel, fname, chunks, source)
        except BaseException:
            with self.bundle.lock:
                self.names.discard(fname)
            raise

    def _store(self, rel: str, fname: str, chunks: Iterable[bytes], source: str) -> None:
        base = self.bundle.dir
        folder = base / self.rel_dir
        try:
            make_private_dirs(folder)
            inside = folder.resolve()
            if inside.parent.parent != base.resolve() or folder.is_symlink():
                raise EvidenceError(f"evidence folder {folder} is not inside the bundle "
                                    f"{base} (a link?): refused", where=str(folder))
            tmp = folder / f".{fname}.{secrets.token_hex(4)}{_PART}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
        except OSError as exc:
            raise EvidenceError(f"cannot write the evidence bundle: {exc.strerror or exc}",
                                where=str(folder),
                                hint="check settings.evidence_dir, disk space and permissions"
                                ) from exc
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), PRIVATE_FILE)
                for chunk in chunks:
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            with self.bundle.lock:
                if self.closed:
                    raise EvidenceError(f"evidence item {rel} refused: the operation is over")
                os.replace(tmp, folder / fname)
                entry = {"path": rel, "size": size, "sha256": digest.hexdigest(),
                         "source": scrub_text(str(source))[:200], **self._about()}
                self.bundle.files[rel] = entry
                self.written[rel] = entry
        except OSError as exc:
            raise EvidenceError(f"cannot write evidence item {rel}: {exc.strerror or exc}",
                                where=str(folder), hint="check disk space and permissions"
                                ) from exc
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


class NullSink(EvidenceSink):
    """A rehearsal's sink: counts, writes nothing."""

    def __init__(self) -> None:  # noqa: D107
        self.items = 0

    def json(self, name: str, data: Any, *, source: str) -> None:
        """Count it."""
        self.items += 1

    def file(self, name: str, chunks: Iterable[bytes], *, source: str) -> None:
        """Count it (the chunks are not read)."""
        self.items += 1

    def failed(self, source: str, message: str) -> None:
        """Nothing to record."""


# -- the bundle --------------------------------------------------------------------------------
class EvidenceBundle:
    """The evidence folder of one run: its files, failed sources and manifest.

    Args:
        root: ``settings.evidence_dir``.
        run_id: The run.
        meta: ``incident``, ``cause``, ``mode``, ``operator`` for the manifest.
        recorded: The manifest SHA-256s the trail recorded for this run (a resumed run): an
            existing manifest must be one of them to be carried on.

    Raises:
        EvidenceError: The run id is not a safe folder name, or an existing manifest (a
            resumed run) is unreadable or no longer the one the trail recorded.
    """

    def __init__(self, root: Path, run_id: str, meta: Mapping[str, Any] | None = None,
                 recorded: Iterable[str] = ()) -> None:  # noqa: D107
        self.root = Path(root)
        self.run_id = check_name(run_id, "run id")
        self.dir = self.root / run_id
        self.meta = {"incident": "", "cause": DEFAULT_CAUSE, "mode": "", "operator": "",
                     **dict(meta or {})}
        self.lock = threading.Lock()
        self.files: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, list[dict[str, Any]]] = {}
        self.created = utcnow()
        self._seal: asyncio.Lock | None = None
        self._load(set(recorded))

    @property
    def manifest_path(self) -> Path:
        """``<run>/manifest.json``."""
        return self.dir / MANIFEST

    def _load(self, recorded: set[str]) -> None:
        """Carry on the manifest of an earlier process of this run (resume), and remove the
        temporary files an interrupted write left."""
        path = self.manifest_path
        if not path.is_file():
            return
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() not in recorded:
            raise EvidenceError(
                f"the evidence manifest of run {self.run_id} is not one the audit trail "
                "recorded: it changed since, so it is not carried on", where=str(path),
                hint=f"check it with `killswitch evidence verify {self.run_id}`")
        try:
            data = json.loads(raw)
            self.created = str(data.get("created") or self.created)
            for entry in data.get("files", []):
                self.files[str(entry["path"])] = dict(entry)
            for entry in data.get("failed", []):
                self.failed.setdefault(str(entry.get("op_id", "")), []).append(dict(entry))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EvidenceError(f"the evidence manifest of run {self.run_id} is unreadable: "
                                f"{exc}", where=str(path)) from exc
        for folder, _dirs, names in os.walk(self.dir):
            for name in names:
                if name.startswith(".") and name.endswith(_PART):
                    try:
                        os.unlink(os.path.join(folder, name))
                    except OSError:
                        pass

    def sink(self, change: Change) -> BundleSink:
        """A sink for one attempt of ``change`` (an earlier attempt's failed sources are
        forgotten; its files stay until replaced)."""
        with self.lock:
            self.failed.pop(change.op_id, None)
        return BundleSink(self, change)

    def manifest(self) -> dict[str, Any]:
        """The manifest as data."""
        with self.lock:
            files = [dict(self.files[p]) for p in sorted(self.files)]
            failed = sorted((dict(f) for fs in self.failed.values() for f in fs),
                            key=lambda f: (f.get("op_id", ""), f.get("source", "")))
        return {"format": BUNDLE_FORMAT, "run_id": self.run_id, **self.meta,
                "created": self.created, "updated": utcnow(), "files": files,
                "failed": failed}

    def _prepare(self) -> tuple[Path, str, int, int]:
        """The next manifest in a temporary file (``0600``, fsynced): its path, SHA-256 and
        the numbers of files and failed sources.

        Raises:
            EvidenceError: It cannot be written.
        """
        data = self.manifest()
        body = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        tmp = self.dir / f".{MANIFEST}.{secrets.token_hex(4)}{_PART}"
        try:
            make_private_dirs(self.dir)
            fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                              | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            _discard(tmp)
            raise EvidenceError(f"cannot write the evidence manifest: {exc.strerror or exc}",
                                where=str(self.manifest_path),
                                hint="check settings.evidence_dir, disk space and permissions"
                                ) from exc
        return tmp, hashlib.sha256(body).hexdigest(), len(data["files"]), len(data["failed"])

    def _install(self, tmp: Path) -> None:
        """Rename a prepared manifest into place and fsync the folder.

        Raises:
            EvidenceError: It cannot be renamed.
        """
        try:
            os.replace(tmp, self.manifest_path)
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            _discard(tmp)
            raise EvidenceError(f"cannot write the evidence manifest: {exc.strerror or exc}",
                                where=str(self.manifest_path)) from exc

    def write_manifest(self) -> tuple[str, int, int]:
        """Write ``manifest.json`` atomically (temporary file, fsync, rename, fsync of the
        folder), recording nothing; returns its SHA-256 and the numbers of files and failed
        sources.

        Raises:
            EvidenceError: It cannot be written.
        """
        tmp, digest, files, failed = self._prepare()
        self._install(tmp)
        return digest, files, failed

    async def seal(self, ex: Executor, change: Change) -> str:
        """Rewrite the manifest and record its SHA-256 in the trail, one seal at a time.

        The hash is recorded (durably) after the new manifest is written and fsynced and
        before it is renamed into place: a crash in between leaves the previous manifest,
        which the trail recorded too, so a resumed run can always carry on a manifest the
        trail vouches for. Returns the hash.
        """
        if self._seal is None:
            self._seal = asyncio.Lock()
        async with self._seal:
            tmp, digest, files, failed = await asyncio.to_thread(self._prepare)
            try:
                await ex.journal.record(
                    integration=change.integration, step=change.step, phase=Phase.APPLY,
                    action=MANIFEST_ACTION, target=f"{self.run_id}/{MANIFEST}",
                    outcome=SEALED,
                    detail={"manifest_sha256": digest, "files": files, "failed": failed,
                            "path": str(self.manifest_path), "after": change.op_id})
            except BaseException:
                _discard(tmp)
                raise
            await asyncio.to_thread(self._install, tmp)
        return digest


def _discard(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# one bundle per executor (per run in this process)
_BUNDLES: weakref.WeakKeyDictionary[Executor, EvidenceBundle] = weakref.WeakKeyDictionary()


def _seals(audit: Any, run_id: str) -> list[tuple[str, int | None]]:
    """Every manifest SHA-256 the trail recorded for ``run_id`` with its seq, oldest first."""
    events = getattr(audit, "events", None)
    if audit is None or events is None:
        return []
    return [(str((e.get("detail") or {}).get("manifest_sha256") or ""), e.get("seq"))
            for e in events(run_id=run_id, outcome=SEALED)
            if e.get("action") == MANIFEST_ACTION]


def _recorded(audit: Any, run_id: str) -> tuple[str, int | None]:
    """The manifest SHA-256 the trail recorded last for ``run_id``, and its seq."""
    seals = _seals(audit, run_id)
    return seals[-1] if seals else ("", None)


def _bundle_of(ex: Executor) -> EvidenceBundle:
    found = _BUNDLES.get(ex)
    if found is not None:
        return found
    base = ex.journal.base
    run_id = str(base.get("run_id") or ex.rt.run_id)
    plan = getattr(ex, "plan", None)
    meta = {"incident": base.get("incident") or "", "mode": base.get("mode") or "",
            "operator": base.get("operator") or "",
            "cause": getattr(plan, "cause", DEFAULT_CAUSE) or DEFAULT_CAUSE}
    root = evidence_root(ex.rt.config)
    recorded: list[str] = []
    if (root / run_id / MANIFEST).is_file():  # a resumed run: carry on what the trail vouches
        recorded = [digest for digest, _ in _seals(ex.journal.audit, run_id)]
    bundle = EvidenceBundle(root, run_id, meta, recorded)
    _BUNDLES[ex] = bundle
    return bundle


def _writes(rt: Runtime) -> bool:
    """False for a rehearsal's runtime (nothing is written)."""
    return bool(getattr(rt, "writes_evidence", True))


async def preserve_op(ex: Executor, change: Change, timeout: float) -> dict[str, Any]:
    """Carry out one evidence change: ``adapter.preserve(ref, sink)`` in the thread pool
    (backend limits and timeout), then seal the manifest and record its hash.

    A source the adapter reports failed is in the manifest and the returned summary; it does
    not fail the operation. An exception from ``preserve`` itself does (after sealing what
    the attempt wrote, with a ``preserve`` failed source), and the executor retries as usual.

    Returns:
        The operation's undo data: ``folder``, ``files`` (relative path, sha256, size) and
        ``failed`` (source, message).

    Raises:
        AdapterError: From ``preserve`` (or the bundle could not be written).
    """
    ref = dict(change.ref)
    if not _writes(ex.rt):
        null = NullSink()
        await ex.rt.call(change.backend, lambda a: a.preserve(ref, null), timeout)
        return {"simulated": True, "files": [], "failed": []}
    try:
        bundle = _bundle_of(ex)
    except EvidenceError as exc:
        raise AdapterError(exc.msg, where=exc.where, hint=exc.hint) from exc
    sink = bundle.sink(change)
    try:
        await ex.rt.call(change.backend, lambda a: a.preserve(ref, sink), timeout)
    except (AdapterError, ConfigError) as exc:
        sink.close()
        sink.note_failure("preserve", exc.msg)
        await _seal(bundle, ex, change)
        raise
    finally:
        sink.close()
    await _seal(bundle, ex, change)
    return sink.summary()


async def _seal(bundle: EvidenceBundle, ex: Executor, change: Change) -> None:
    try:
        await bundle.seal(ex, change)
    except EvidenceError as exc:
        raise AdapterError(exc.msg, where=exc.where, hint=exc.hint) from exc


def _rehash(run_dir: Path, files: Iterable[Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    for entry in files:
        rel = str(entry.get("path", ""))
        path = _inside(run_dir, rel)
        if path is None:
            problems.append(f"outside the bundle: {rel}")
        elif not path.is_file() or path.is_symlink():
            problems.append(f"missing: {rel}")
        elif _sha256_file(path)[0] != entry.get("sha256"):
            problems.append(f"changed: {rel}")
    return problems


async def verify_op(rt: Runtime, change: Change, undo: Mapping[str, Any]) -> Verdict:
    """Verify an evidence change: every file it wrote still has the hash it was written with
    (``preserved``; ``partial`` when some source could not be preserved)."""
    if not _writes(rt) or undo.get("simulated"):
        return Verdict(True, "preserved", "simulated: nothing was written (rehearsal)")
    files = list(undo.get("files") or [])
    failed = list(undo.get("failed") or [])
    run_dir = evidence_root(rt.config) / rt.run_id
    size = sum(int(f.get("size") or 0) for f in files)
    # a few metadata files are hashed at once (verdicts come in a stable order); big
    # provider files in a thread, not to hold up the event loop
    problems = (_rehash(run_dir, files) if size <= _HASH_INLINE else
                await asyncio.to_thread(_rehash, run_dir, files))
    if problems:
        return Verdict(False, "changed", "re-hashed: " + "; ".join(problems))
    detail = f"re-hashed {len(files)} file(s): as written"
    if failed:
        names = ", ".join(sorted({str(f.get("source", "?")) for f in failed}))
        detail += f"; not preserved (in the manifest): {names}"
        return Verdict(True, "partial", detail)
    return Verdict(True, "preserved", detail)


# -- checking and handing over ----------------------------------------------------------------
def _inside(run_dir: Path, rel: str) -> Path | None:
    """``run_dir / rel`` when ``rel`` is a plain relative path inside it, else None."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return run_dir.joinpath(*parts)


@dataclass
class BundleCheck:
    """The result of checking one run's evidence bundle against its manifest and the trail.

    Attributes:
        run_id: The run.
        path: The run's evidence folder.
        manifest: ``ok``, ``changed`` (not the hash the trail recorded), ``missing``,
            ``unreadable`` or ``unrecorded`` (the trail records no manifest for the run).
        manifest_sha256: The SHA-256 of ``manifest.json`` as found.
        recorded_sha256: The SHA-256 the trail recorded last.
        recorded_seq: The seq of that trail event.
        files: Files the manifest lists.
        failed: Sources the manifest lists as not preserved.
        changed: Listed files whose content no longer has the listed SHA-256 (or size).
        missing: Listed files that are gone (or are no longer regular files).
        extra: Files in the folder the manifest does not list.
        outside: Listed paths that point outside the folder.
        listed: The manifest's file entries (for export and show).
        failures: The manifest's failed-source entries.
    """

    run_id: str
    path: str
    manifest: str = "ok"
    manifest_sha256: str = ""
    recorded_sha256: str = ""
    recorded_seq: int | None = None
    files: int = 0
    failed: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def problems(self) -> list[str]:
        """Every problem, one line each."""
        out: list[str] = []
        if self.manifest == "missing":
            out.append(f"{MANIFEST} is missing")
        elif self.manifest == "unreadable":
            out.append(f"{MANIFEST} is not a readable manifest")
        elif self.manifest == "changed":
            out.append(f"{MANIFEST} changed: its SHA-256 {self.manifest_sha256} is not the "
                       f"{self.recorded_sha256} the audit trail recorded (seq "
                       f"{self.recorded_seq})")
        elif self.manifest == "unrecorded":
            out.append(f"the audit trail records no manifest for run {self.run_id}: nothing "
                       "vouches for this bundle")
        out += [f"changed: {p}" for p in self.changed]
        out += [f"missing: {p}" for p in self.missing]
        out += [f"extra: {p}" for p in self.extra]
        out += [f"outside the bundle: {p}" for p in self.outside]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the listed entries)."""
        return {"run_id": self.run_id, "path": self.path, "ok": self.ok,
                "manifest": self.manifest, "manifest_sha256": self.manifest_sha256,
                "recorded_sha256": self.recorded_sha256, "recorded_seq": self.recorded_seq,
                "files": self.files, "failed": self.failed, "changed": self.changed,
                "missing": self.missing, "extra": self.extra, "outside": self.outside,
                "problems": self.problems}


def check_bundle(evidence_dir: str | Path, run_id: str, audit: Any) -> BundleCheck:
    """Check the evidence bundle of ``run_id``: re-hash every listed file, find the missing
    and extra ones, and compare ``manifest.json`` with the hash the trail recorded last.

    Args:
        evidence_dir: ``settings.evidence_dir`` (resolved).
        run_id: The run.
        audit: The audit trail (:class:`console.audit.AuditLog`), or None when there is none.

    Raises:
        UsageError: ``run_id`` is not a run id, or neither a bundle nor a recorded manifest
            exists for it.
    """
    try:
        check_name(run_id, "run id")
    except EvidenceError as exc:
        raise UsageError(exc.msg, hint="give a run id as listed by `killswitch audit show`"
                         ) from exc
    run_dir = Path(evidence_dir) / run_id
    recorded, seq = _recorded(audit, run_id)
    if not run_dir.is_dir() and not recorded:
        raise UsageError(f"no evidence bundle for run {run_id}", where=str(run_dir),
                         hint="list runs with `killswitch audit show`; bundles are written by "
                              "runbooks with an evidence.preserve step (kill-switch, evidence)")
    check = BundleCheck(run_id, str(run_dir), recorded_sha256=recorded, recorded_seq=seq)
    manifest_path = run_dir / MANIFEST
    data: dict[str, Any] = {}
    if not manifest_path.is_file() or manifest_path.is_symlink():
        check.manifest = "missing"
    else:
        raw = manifest_path.read_bytes()
        check.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            loaded = json.loads(raw)
            if not isinstance(loaded, dict) or not isinstance(loaded.get("files"), list):
                raise ValueError("no files list")
            data = loaded
        except ValueError:
            check.manifest = "unreadable"
        if check.manifest == "ok":
            if not recorded:
                check.manifest = "unrecorded"
            elif check.manifest_sha256 != recorded:
                check.manifest = "changed"
    listed: set[str] = {MANIFEST}
    for entry in data.get("files", []):
        if not isinstance(entry, dict):
            continue
        rel = str(entry.get("path", ""))
        check.listed.append(entry)
        path = _inside(run_dir, rel)
        if path is None:
            check.outside.append(rel)
            continue
        listed.add(rel)
        if not path.is_file() or path.is_symlink():
            check.missing.append(rel)
            continue
        digest, size = _sha256_file(path)
        if digest != entry.get("sha256") or size != entry.get("size", size):
            check.changed.append(rel)
    check.failures = [f for f in data.get("failed", []) if isinstance(f, dict)]
    check.files, check.failed = len(check.listed), len(check.failures)
    if run_dir.is_dir():
        for folder, dirs, names in os.walk(run_dir):
            dirs.sort()
            for name in sorted(names):
                rel = os.path.relpath(os.path.join(folder, name), run_dir).replace(os.sep, "/")
                if rel not in listed:
                    check.extra.append(rel)
            for name in dirs:  # a link to a folder is not walked: it is extra as such
                full = os.path.join(folder, name)
                if os.path.islink(full):
                    check.extra.append(os.path.relpath(full, run_dir).replace(os.sep, "/"))
    return check


def verify_bundle(evidence_dir: str | Path, run_id: str, audit: Any) -> list[str]:
    """The problems of ``run_id``'s evidence bundle (empty: it verifies); see
    :func:`check_bundle`."""
    return check_bundle(evidence_dir, run_id, audit).problems


def _epoch(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except (ValueError, AttributeError):
        return 0


def export_bundle(evidence_dir: str | Path, run_id: str, out: str | Path, audit: Any, *,
                  force: bool = False, unverified: bool = False) -> BundleCheck:
    """Write ``run_id``'s bundle as a reproducible ``.tar.gz`` at ``out`` (``0600``).

    Members, under ``<run_id>/``: ``manifest.json``, ``manifest.json.sha256`` (the hash the
    trail recorded, ``sha256sum -c`` format), then every listed file in path order; owners
    ``0``, modes ``0600``, times the manifest's ``created``. The bundle is checked first.

    Args:
        evidence_dir: ``settings.evidence_dir`` (resolved).
        run_id: The run.
        out: The archive to write.
        audit: The audit trail, or None.
        force: Replace an existing ``out``.
        unverified: Export a bundle that does not verify (as found; missing files left out).

    Returns:
        The check made before exporting.

    Raises:
        UsageError: Unknown run, ``out`` exists without ``force``, or it cannot be written.
        VerificationFailed: The bundle does not verify and ``unverified`` is not given, or
            it has no readable manifest.
    """
    check = check_bundle(evidence_dir, run_id, audit)
    target = Path(out).expanduser()
    if target.exists() and not force:
        raise UsageError(f"{target} exists: not overwritten", where=str(target),
                         hint="give another --out, or --force to replace it")
    if check.manifest in ("missing", "unreadable"):
        raise VerificationFailed(f"the evidence bundle of run {run_id} has no readable "
                                 f"{MANIFEST}: nothing to export", where=check.path)
    if not check.ok and not unverified:
        raise VerificationFailed(
            f"the evidence bundle of run {run_id} does not verify: "
            + "; ".join(check.problems), where=check.path,
            hint=f"see `killswitch evidence verify {run_id}`; --unverified exports it as found")
    run_dir = Path(check.path)
    manifest_raw = (run_dir / MANIFEST).read_bytes()
    created = _epoch(str(json.loads(manifest_raw).get("created", "")))
    sha_line = f"{check.recorded_sha256 or check.manifest_sha256}  {MANIFEST}\n".encode()
    members: list[tuple[str, Path | bytes]] = [(MANIFEST, manifest_raw),
                                                (f"{MANIFEST}.sha256", sha_line)]
    bad = set(check.missing) | set(check.outside)
    for entry in sorted(check.listed, key=lambda e: str(e.get("path", ""))):
        rel = str(entry.get("path", ""))
        path = _inside(run_dir, rel)
        if rel not in bad and path is not None:
            members.append((rel, path))
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}{_PART}"
    try:
        fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=created) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in members:
                info = tarfile.TarInfo(f"{run_id}/{name}")
                info.mode, info.mtime = PRIVATE_FILE, created
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if isinstance(content, bytes):
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    with open(content, "rb") as fh:
                        info.size = os.fstat(fh.fileno()).st_size
                        tar.addfile(info, fh)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}", where=str(target),
                         hint="check the folder exists and is writable") from exc
    return check

