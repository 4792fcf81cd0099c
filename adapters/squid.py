"""Forward-proxy denylist adapter: deny an integration's domains in a Squid dstdomain ACL file.

Backend options::

    [backends.proxy]
    type = "squid"
    denylist = "/etc/squid/killswitch-deny.txt"   # the file of `acl … dstdomain "<file>"`
    reload = ["squid", "-f", "/etc/squid/squid.conf", "-k", "reconfigure"]
    proxy = "http://127.0.0.1:3128"                 # verify requests through it (optional)
    verify_wait = 5                                 # seconds verify waits for a reconfigure
    timeout = 15                                    # seconds for the reload command

``path`` is accepted as an alias of ``denylist`` (the console resolves it against the
config's folder). The Squid config must deny the ACL before anything allows, e.g.::

    acl killswitch_blocked dstdomain "/etc/squid/killswitch-deny.txt"
    http_access deny killswitch_blocked

Inventory reference (a leading dot, ``.openai.com``, also matches subdomains in Squid)::

    {backend = "proxy", destinations = ["api.openai.com"]}

``egress.block`` appends the domains not yet listed (one per line; every other line, comment
and blank kept) with an atomic write (temporary file, fsync, rename) under a thread lock plus
``fcntl.flock`` on ``<denylist>.lock``, then runs ``reload``; if the reload fails the file is
put back and the error is retryable. The inverse removes exactly the lines the block added.
A standalone ``egress.unblock`` removes the reference's domains wherever they are listed.

State shape (``before`` / ``after`` / :meth:`SquidDenylistAdapter.read`) — which of the
reference's domains the file lists::

    {"denied": ["api.openai.com"]}

Undo data: ``{"added": ["api.openai.com"]}`` (block) / ``{"removed": [...]}`` (unblock).

Verify re-reads the file and, with ``proxy``, requests ``http://<domain>/`` through the proxy
expecting 403 (block) or anything else (unblock), waiting up to ``verify_wait`` seconds for
the reconfigure. DNS answers and already-open connections can outlive a block (a client
holding a CONNECT tunnel keeps it): every note says so.

Example runbook step::

    [[steps]]
    id = "block-egress"
    action = "egress.block"
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import locked, plan_context, write_atomic
from adapters.specs.egress import SQUID, SquidOptions
from console.errors import AdapterError, Timeout, Unavailable, UndoUnsupported

__all__ = ["OUTLIVE_NOTE", "SquidDenylistAdapter", "read_denylist"]

OUTLIVE_NOTE = ("DNS answers and already-open connections can outlive a block: clients may "
                "keep talking over connections (CONNECT tunnels) opened before it; restart "
                "them to be sure")
"""Carried by every egress change note and report."""

_DOMAIN = re.compile(r"^\.?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
                     r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$")
def read_denylist(path: Path) -> list[str]:
    """The file's lines (a missing file reads as empty).

    Raises:
        AdapterError: The file cannot be read.
    """
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AdapterError(f"cannot read denylist {path}: {exc.strerror}",
                           where=str(path)) from exc


def _entries(lines: list[str]) -> set[str]:
    return {ln.strip().lower() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}


def _write_atomic(path: Path, lines: list[str]) -> None:
    write_atomic(path, "".join(f"{ln}\n" for ln in lines), keep_owner=True)


class SquidDenylistAdapter(Adapter):
    """Deny domains at a Squid forward proxy by editing its dstdomain ACL file and reloading.

    See the module docstring for options, reference and state shapes.
    """

    name: ClassVar[str] = "squid"
    Options: ClassVar[type[SquidOptions]] = SquidOptions
    OPTIONS: ClassVar[Mapping[str, str]] = SquidOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = SQUID.actions  # adapters/specs/egress.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        raw = str(self.options.get("denylist") or self.options.get("path") or "")
        self.path = Path(raw).expanduser() if raw else None
        reload = self.options.get("reload") or []
        if isinstance(reload, str):
            reload = shlex.split(reload)
        if not isinstance(reload, list) or not all(isinstance(a, str) for a in reload):
            raise AdapterError(f"backend {backend!r}: option reload must be a command (list of "
                               "strings)", where=backend)
        self.reload: list[str] = list(reload)
        self.proxy = str(self.options.get("proxy") or "")
        if self.proxy and not self.proxy.startswith(("http://", "https://")):
            raise AdapterError(f"backend {backend!r}: proxy must be an http(s) URL",
                               where=backend)
        try:
            self.verify_wait = float(self.options.get("verify_wait") or 5.0)
            self.timeout = float(self.options.get("timeout") or 15.0)
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"backend {backend!r}: verify_wait and timeout must be numbers",
                               where=backend) from exc

    # -- helpers --------------------------------------------------------------------------
    def _file(self) -> Path:
        if self.path is None:
            raise AdapterError(f"backend {self.backend!r}: option denylist (the dstdomain ACL "
                               "file) is required", where=self.backend)
        return self.path

    def _proxy_shown(self) -> str:
        """The proxy URL without any user:password."""
        u = urllib.parse.urlsplit(self.proxy)
        return f"{u.scheme}://{u.hostname}" + (f":{u.port}" if u.port else "")

    def _domains(self, ref: Mapping[str, Any]) -> list[str]:
        raw = ref.get("destinations")
        if isinstance(raw, str):
            raw = [raw]
        if not raw or not isinstance(raw, list):
            raise AdapterError("egress reference needs `destinations` (domains)",
                               where=self.backend)
        out = []
        for item in raw:
            d = str(item).strip().lower().rstrip(".")
            if not _DOMAIN.match(d):
                raise AdapterError(f"destination {item!r} is not a domain name (the proxy "
                                   "denylist is a dstdomain ACL)", where=self.backend)
            out.append(d)
        return sorted(set(out))

    def _state(self, domains: list[str]) -> dict[str, Any]:
        have = _entries(read_denylist(self._file()))
        return {"denied": [d for d in domains if d in have]}

    def _run_reload(self) -> None:
        if not self.reload:
            return
        try:
            proc = subprocess.run(self.reload, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise Unavailable(f"reload command {self.reload[0]!r} not found",
                              where=self.backend) from exc
        except subprocess.TimeoutExpired as exc:
            raise Timeout(f"reload command did not finish within {self.timeout:g}s",
                          where=self.backend) from exc
        if proc.returncode != 0:
            said = " ".join((proc.stderr or proc.stdout).split())[:400]
            raise Unavailable(f"reload command failed (exit {proc.returncode}): {said}",
                              where=self.backend, hint="is the proxy running? check the "
                              "reload option")

    # -- phases ---------------------------------------------------------------------------
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Read which of the domains the denylist already lists (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the squid adapter does not offer {action}", where=self.backend)
        domains = self._domains(ref)
        path = self._file()
        before = self._state(domains)
        block = action == "egress.block"
        after = {"denied": domains if block else []}
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{path.name} deny {', '.join(domains)}"
        if before == after:
            what = "already denied" if block else "not in the denylist"
            return [ctx.change(target, before, after, undo={}, status=NOOP,
                               note=f"{', '.join(domains)}: {what}. {OUTLIVE_NOTE}")]
        if block:
            todo = [d for d in domains if d not in before["denied"]]
            note = (f"appends {', '.join(todo)} to {path} and reloads the proxy; undo removes "
                    f"exactly these lines. {OUTLIVE_NOTE}")
            undo = {"added": todo}
        else:
            note = f"removes {', '.join(before['denied'])} from {path} and reloads. {OUTLIVE_NOTE}"
            undo = {"removed": list(before["denied"])}
        return [ctx.change(target, before, after, undo=undo, note=note)]

    def read(self, change: Change) -> dict[str, Any]:
        """Which of the change's domains the file lists now."""
        return self._state(self._domains(change.ref))

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append or remove the lines (atomic, locked), then run the reload command.

        The file is read again under its lock: that read is the write's own (every other
        line is kept as it is now), so ``current`` is not needed.
        """
        path = self._file()
        domains = self._domains(change.ref)
        wanted = set(change.after.get("denied", []))
        try:
            with locked(path):
                lines = read_denylist(path)
                have = _entries(lines)
                add = [d for d in domains if d in wanted and d not in have]
                gone = {d for d in domains if d not in wanted and d in have}
                if change.action == "egress.unblock" and change.inverse_of:
                    gone &= {str(d) for d in change.undo.get("added", [])}
                kept = [ln for ln in lines if ln.strip().lower() not in gone]
                new = kept + add
                if new == lines:
                    return {"added": [], "removed": []}
                _write_atomic(path, new)
                try:
                    self._run_reload()
                except AdapterError:
                    _write_atomic(path, lines)  # leave nothing half-applied; retry redoes it
                    raise
        except OSError as exc:
            raise AdapterError(f"cannot update denylist {path}: {exc.strerror}",
                               where=str(path)) from exc
        return {"added": add, "removed": sorted(gone)}

    def _probe(self, domain: str) -> int | None:
        """HTTP status of ``http://<domain>/`` through the proxy; None when unreachable."""
        if domain.startswith("."):
            domain = domain[1:]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler(
            {"http": self.proxy, "https": self.proxy}))
        try:
            with opener.open(f"http://{domain}/", timeout=3) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return None

    def verify(self, change: Change) -> Verdict:
        """Re-read the file; with ``proxy``, a request per domain must get 403 (block)."""
        state = self.read(change)
        block = change.action == "egress.block"
        listed = f"{self._file().name} lists {', '.join(state['denied']) or 'none of them'}"
        if state != change.after:
            return Verdict(False, "open" if block else "blocked", listed)
        if not self.proxy:
            return Verdict(True, "blocked" if block else "restored",
                           f"{listed} (no proxy option: the proxy itself was not asked)")
        domains = list(change.after["denied"] if block else change.before.get("denied", []))
        deadline = time.monotonic() + self.verify_wait
        while True:
            codes = {d: self._probe(d) for d in domains}
            good = all((c == 403) if block else (c is not None and c != 403)
                       for c in codes.values())
            if good or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        shown = ", ".join(f"{d} -> {c if c is not None else 'no answer'}"
                          for d, c in codes.items())
        via = f"via {self._proxy_shown()}: {shown}"
        if good:
            return Verdict(True, "blocked" if block else "restored", f"{listed}; {via}"
                           + ("; open connections may outlive it" if block else ""))
        return Verdict(False, "open" if block else "blocked", f"{listed} but {via}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that removes exactly the lines the block added (or re-adds them)."""
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in "
                                  "that state before this run", where=change.target)
        if change.action == "egress.block":
            added = list(applied.get("added") or change.undo.get("added") or [])
            back, undo, what = "egress.unblock", {"added": added}, "removes " + ", ".join(added)
        else:
            removed = list(applied.get("removed") or change.undo.get("removed") or [])
            back, undo, what = "egress.block", {"added": removed}, "re-adds " + ", ".join(removed)
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after=dict(change.before), undo=undo,
            note=f"{what}; restores {change.target}", inverse_of=change.op_id)
