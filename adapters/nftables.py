"""nftables egress adapter: drop traffic to an integration's destinations on a Linux host.

Backend options::

    [backends.host-fw]
    type = "nftables"
    nft = "nft"              # path of the nft binary (default: nft on PATH)
    netns = ""               # run inside `ip netns exec <netns>` (tests use this)
    table = "killswitch"     # dedicated table, family inet
    probe_port = 443         # verify also tries a TCP connection that must fail (optional)
    probe_timeout = 1.0      # seconds per probe connection
    timeout = 10             # seconds per nft call

Inventory reference::

    {backend = "host-fw", destinations = ["10.200.0.1", "10.200.0.0/24", "api.example.com"]}

Hostnames are resolved at plan time (every A / AAAA answer) and the note says that DNS
answers can change. The adapter owns table ``inet <table>`` and its two base chains, both
``type filter priority 0; policy accept;``:

* ``egress``, hook ``output``: traffic the host itself sends;
* ``forward``, hook ``forward``: traffic the host routes for others — containers, VMs and
  namespaces behind it (a container's packets never pass the host's ``output`` hook).

Both are created on first block and left in place (empty, accepting) after undo; an accept
policy in this table never overrides a drop elsewhere. ``egress.block`` adds, in each chain
that lacks one, an ``ip daddr X counter drop comment "ks:<run id>:<integration>"`` rule per
destination; apply records the rule handles per chain (``nft -j -a list table``); the
inverse deletes exactly those handles. A standalone ``egress.unblock`` deletes every ``ks:``
rule for the reference's destinations, in both chains.

State shape (``before`` / ``after`` / :meth:`NftablesAdapter.read`) — which of the
reference's destinations a ``ks:`` drop rule covers in **both** chains (a destination dropped
in one hook only is not blocked: the plan adds the missing rule)::

    {"table": "killswitch", "blocked": ["10.200.0.0/24", "10.200.0.1"]}

Undo data: ``{"destinations": [...], "comment": "ks:…", "handles": {"10.200.0.1": 7},
"forward_handles": {"10.200.0.1": 8}}`` (``handles`` are the ``egress`` chain's, as before
the forward hook existed, so older journals still undo exactly).

Connections the kernel already tracks are dropped too (the rules sit in the hooks every
packet passes), but DNS answers and already-open connections can outlive a block elsewhere:
every note says so.

Example runbook step::

    [[steps]]
    id = "block-egress"
    action = "egress.block"
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.specs.egress import NFTABLES, NftablesOptions
from console.errors import (
    AdapterError,
    Conflict,
    NotFound,
    PermissionDenied,
    Timeout,
    UndoUnsupported,
)

__all__ = ["CHAIN", "CHAINS", "FORWARD_CHAIN", "OUTLIVE_NOTE", "NftablesAdapter"]

CHAIN = "egress"
"""The adapter's chain on the ``output`` hook (the host's own traffic)."""
FORWARD_CHAIN = "forward"
"""The adapter's chain on the ``forward`` hook (traffic routed for containers, VMs, ...)."""
CHAINS: Mapping[str, str] = {CHAIN: "output", FORWARD_CHAIN: "forward"}
"""Chain -> netfilter hook; a destination is blocked when every chain drops it."""
_HANDLES = {CHAIN: "handles", FORWARD_CHAIN: "forward_handles"}
"""Chain -> the undo-data key of the handles a block added there."""
OUTLIVE_NOTE = ("DNS answers and already-open connections can outlive a block: clients may "
                "keep talking over connections opened before it; restart them to be sure")
"""Carried by every egress change note and report."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _canon(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """``10.0.0.1`` for a single address, ``10.0.0.0/24`` for a network."""
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _rule_dest(expr: list[Any]) -> str | None:
    """The destination a ``(ip|ip6) daddr X ... drop`` rule matches, canonical, else None."""
    dest, drops = None, False
    for item in expr:
        if not isinstance(item, dict):
            continue
        if "drop" in item:
            drops = True
        match = item.get("match")
        if not isinstance(match, dict) or match.get("op") != "==":
            continue
        payload = (match.get("left") or {}).get("payload") or {}
        if payload.get("field") != "daddr" or payload.get("protocol") not in ("ip", "ip6"):
            continue
        right = match.get("right")
        try:
            if isinstance(right, str):
                dest = _canon(ipaddress.ip_network(right))
            elif isinstance(right, dict) and "prefix" in right:
                p = right["prefix"]
                dest = _canon(ipaddress.ip_network(f"{p['addr']}/{p['len']}"))
        except (ValueError, KeyError, TypeError):
            return None
    return dest if drops else None


class NftablesAdapter(Adapter):
    """Drop egress to destinations with one commented nftables rule each; undo deletes them.

    See the module docstring for options, reference and state shapes.
    """

    name: ClassVar[str] = "nftables"
    Options: ClassVar[type[NftablesOptions]] = NftablesOptions
    OPTIONS: ClassVar[Mapping[str, str]] = NftablesOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = NFTABLES.actions  # adapters/specs/egress.py
    SUPPORTS_UNDO: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.nft = str(self.options.get("nft") or "nft")
        self.netns = str(self.options.get("netns") or "")
        self.table = str(self.options.get("table") or "killswitch")
        for opt, value in (("table", self.table), ("netns", self.netns or "x")):
            if not _NAME.match(value):
                raise AdapterError(f"backend {backend!r}: option {opt} must be letters, digits, "
                                   f"'-' or '_', got {value!r}", where=backend)
        try:
            port = self.options.get("probe_port")
            self.probe_port = int(port) if port not in (None, "") else None
            self.probe_timeout = float(self.options.get("probe_timeout") or 1.0)
            self.timeout = float(self.options.get("timeout") or 10.0)
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"backend {backend!r}: probe_port, probe_timeout and timeout "
                               "must be numbers", where=backend) from exc
        self._lock = threading.Lock()

    # -- running nft ----------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.backend}:inet {self.table}" + (f" (netns {self.netns})"
                                                       if self.netns else "")

    def _wrap(self, argv: list[str]) -> list[str]:
        return (["ip", "netns", "exec", self.netns, *argv] if self.netns else argv)

    def _run(self, args: list[str], script: str | None = None,
             missing_ok: bool = False) -> str | None:
        """Run ``nft args`` (stdin ``script``); None when the table is absent and missing_ok."""
        argv = self._wrap([self.nft, *args])
        try:
            proc = subprocess.run(argv, input=script, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise AdapterError(f"cannot run {argv[0]}: not found", where=self._where(),
                               hint="apt-get install -y nftables, or set option nft") from exc
        except subprocess.TimeoutExpired as exc:
            raise Timeout(f"nft did not finish within {self.timeout:g}s",
                          where=self._where()) from exc
        if proc.returncode == 0:
            return proc.stdout
        said = " ".join((proc.stderr or proc.stdout).split())[:400]
        if "Cannot open network namespace" in said:
            raise NotFound(f"network namespace {self.netns!r} does not exist: {said}",
                           where=self._where())
        if missing_ok and "No such file or directory" in said:
            return None
        if "Operation not permitted" in said or "Permission denied" in said:
            raise PermissionDenied(f"nft refused: {said}", where=self._where(),
                                   hint="run as root or grant CAP_NET_ADMIN")
        raise AdapterError(f"nft {' '.join(args[:3])} failed: {said}", where=self._where())

    def _rules(self) -> list[dict[str, Any]]:
        """Every rule of the adapter's chains: ``{chain, handle, comment, dest}``."""
        out = self._run(["-j", "-a", "list", "table", "inet", self.table], missing_ok=True)
        if not out:
            return []
        try:
            items = json.loads(out).get("nftables", [])
        except ValueError as exc:
            raise AdapterError(f"nft printed no JSON: {out[:200]}", where=self._where()) from exc
        rules = []
        for item in items:
            rule = item.get("rule") if isinstance(item, dict) else None
            if rule and rule.get("chain") in CHAINS:
                rules.append({"chain": str(rule["chain"]), "handle": int(rule.get("handle", 0)),
                              "comment": str(rule.get("comment") or ""),
                              "dest": _rule_dest(rule.get("expr") or [])})
        return rules

    # -- helpers --------------------------------------------------------------------------
    def _resolve(self, ref: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Destinations as canonical IPs / CIDRs, plus notes on resolved hostnames."""
        raw = ref.get("destinations")
        if isinstance(raw, str):
            raw = [raw]
        if not raw or not isinstance(raw, list):
            raise AdapterError("egress reference needs `destinations` (IPs, CIDRs or hosts)",
                               where=self.backend)
        dests: list[str] = []
        notes: list[str] = []
        for item in raw:
            text = str(item).strip()
            try:
                dests.append(_canon(ipaddress.ip_network(text, strict=False)))
                continue
            except ValueError:
                pass
            try:
                infos = socket.getaddrinfo(text, None, proto=socket.IPPROTO_TCP)
            except (socket.gaierror, UnicodeError) as exc:
                raise NotFound(f"destination {text!r} is neither an IP/CIDR nor a resolvable "
                               f"hostname: {exc}", where=self.backend) from exc
            ips = sorted({str(ipaddress.ip_address(i[4][0])) for i in infos})
            dests += ips
            notes.append(f"{text} resolved to {', '.join(ips)} at plan time (DNS answers can "
                         "change: re-plan if the block must follow them)")
        return sorted(set(dests)), notes

    @staticmethod
    def _comment(ctx: PlanContext) -> str:
        raw = f"ks:{ctx.run_id or 'adhoc'}:{ctx.integration}"
        return re.sub(r"[^A-Za-z0-9._:-]", "_", raw)[:120]

    @staticmethod
    def _dropped(rules: list[dict[str, Any]], chain: str) -> set[str]:
        """Destinations a ``ks:`` drop rule covers in ``chain``."""
        return {r["dest"] for r in rules
                if r["chain"] == chain and r["comment"].startswith("ks:") and r["dest"]}

    def _blocked(self, dests: list[str], rules: list[dict[str, Any]] | None = None) -> list[str]:
        """The destinations a ``ks:`` drop rule covers in every chain (both hooks)."""
        rules = self._rules() if rules is None else rules
        have = set.intersection(*(self._dropped(rules, c) for c in CHAINS))
        return sorted(d for d in dests if d in have)

    # -- phases ---------------------------------------------------------------------------
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Resolve the destinations and read which of them a ``ks:`` rule already drops."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the nftables adapter does not offer {action}",
                               where=self.backend)
        dests, notes = self._resolve(ref)
        blocked = self._blocked(dests)
        before = {"table": self.table, "blocked": blocked}
        block = action == "egress.block"
        after = {"table": self.table, "blocked": dests if block else []}
        shown = ", ".join(dests)
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self._where()} egress to {shown}"
        undo = {"destinations": dests, "comment": self._comment(ctx)}
        tail = " ".join([*notes, OUTLIVE_NOTE])
        if before == after:
            what = "already dropped" if block else "not blocked by a ks: rule"
            return [ctx.change(target, before, after, undo=undo, status=NOOP,
                               note=f"{shown}: {what}. {tail}")]
        if block:
            todo = [d for d in dests if d not in blocked]
            note = (f"drops traffic to {', '.join(todo)} in inet {self.table}, both on the "
                    f"output hook (chain {CHAIN}: the host's own traffic) and the forward "
                    f"hook (chain {FORWARD_CHAIN}: containers, VMs and namespaces routed "
                    f"through the host), comment {undo['comment']}; undo deletes "
                    f"exactly those rules. {tail}")
        else:
            note = (f"deletes every ks: drop rule for {', '.join(blocked)} from inet "
                    f"{self.table} chains {CHAIN} and {FORWARD_CHAIN}. {tail}")
        return [ctx.change(target, before, after, undo=undo, note=note)]

    def read(self, change: Change) -> dict[str, Any]:
        """Which of the change's destinations a ``ks:`` drop rule covers now."""
        dests = list(change.undo.get("destinations") or self._resolve(change.ref)[0])
        return {"table": self.table, "blocked": self._blocked(dests)}

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Add the missing drop rules, or delete the rules the state no longer wants.

        The table is listed again under the adapter's lock: which chain lacks a rule and
        the handles to delete are not part of the state (``current``), and the listing is
        the write's own, local read (no network request).
        """
        dests = list(change.undo.get("destinations") or self._resolve(change.ref)[0])
        comment = str(change.undo.get("comment") or "ks:adhoc")
        wanted = set(change.after.get("blocked", []))
        with self._lock:
            rules = self._rules()
            blocked = set(self._blocked(dests, rules))
            add = sorted(wanted - blocked)
            # unblock: every destination a ks: rule still covers in either hook
            covered = set.union(*(self._dropped(rules, c) for c in CHAINS))
            drop = sorted((covered & set(dests)) - wanted)
            if add:
                lines = [f"add table inet {self.table}"]
                lines += [f"add chain inet {self.table} {chain} {{ type filter hook {hook} "
                          "priority 0; policy accept; }" for chain, hook in CHAINS.items()]
                for chain in CHAINS:
                    have = self._dropped(rules, chain)
                    for d in add:
                        if d in have:
                            continue
                        fam = "ip6" if ":" in d else "ip"
                        lines.append(f"add rule inet {self.table} {chain} {fam} daddr {d} "
                                     f'counter drop comment "{comment}"')
                self._run(["-f", "-"], "\n".join(lines) + "\n")
            if drop:
                mine = {chain: {str(h) for h in (change.undo.get(key) or {}).values()}
                        for chain, key in _HANDLES.items()}
                recorded = any(mine.values())

                def chosen(r: dict[str, Any]) -> bool:
                    if r["dest"] not in drop or not r["comment"].startswith("ks:"):
                        return False
                    if recorded:  # undo of a block: exactly the handles it recorded
                        return str(r["handle"]) in mine[r["chain"]]
                    # undo without handles (apply's answer was lost): its own comment only
                    return r["comment"] == comment if change.inverse_of else True

                victims = [r for r in rules if chosen(r)]
                if victims:
                    script = "".join(f"delete rule inet {self.table} {r['chain']} handle "
                                     f"{r['handle']}\n" for r in victims)
                    self._run(["-f", "-"], script)
            rules = self._rules()
        now = set(self._blocked(dests, rules))
        if now != wanted:
            raise Conflict(f"inet {self.table} {CHAIN} does not match the plan after the "
                           f"change: blocked {sorted(now)}, wanted {sorted(wanted)} (another "
                           "ks: rule may cover these destinations)", where=change.target)
        handles = {key: {r["dest"]: r["handle"] for r in rules if r["chain"] == chain
                         and r["comment"] == comment and r["dest"] in add}
                   for chain, key in _HANDLES.items()}
        return {"destinations": dests, "comment": comment, **handles,
                "added": add, "deleted": drop}

    def _probe(self, dest: str) -> bool | None:
        """True when a TCP connection to ``dest:probe_port`` succeeds; None if not probed."""
        if self.probe_port is None or "/" in dest:
            return None
        code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], "
                "int(sys.argv[2])), timeout=float(sys.argv[3])).close()\nexcept OSError:\n"
                " sys.exit(1)\n")
        argv = self._wrap([sys.executable, "-c", code, dest, str(self.probe_port),
                           str(self.probe_timeout)])
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=self.probe_timeout + 10,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.returncode == 0

    def verify(self, change: Change) -> Verdict:
        """List the chain's rules and, with ``probe_port``, try a TCP connection."""
        state = self.read(change)
        wanted = change.after.get("blocked", [])
        probes = {d: self._probe(d) for d in state["blocked"] + [
            d for d in change.undo.get("destinations", []) if d not in state["blocked"]]}
        probed = "; ".join(f"tcp {d}:{self.probe_port} {'connects' if ok else 'fails'}"
                           for d, ok in probes.items() if ok is not None)
        detail = (f"nft list table inet {self.table}: "
                  f"{', '.join(state['blocked']) or 'no destination'} dropped on the output "
                  "and forward hooks"
                  + (f"; {probed}" if probed else ""))
        if state["blocked"] != sorted(wanted):
            return Verdict(False, "open" if change.action == "egress.block" else "blocked",
                           detail)
        if change.action == "egress.block":
            leaks = [d for d in wanted if probes.get(d)]
            if leaks:
                return Verdict(False, "open", f"{detail}; rule present but {', '.join(leaks)} "
                               "still connects")
            return Verdict(True, "blocked", f"{detail}; open connections elsewhere may "
                           "outlive it")
        return Verdict(True, "restored", detail)

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that deletes exactly the rules ``change`` added (or re-adds them)."""
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in "
                                  "that state before this run", where=change.target)
        back = "egress.unblock" if change.action == "egress.block" else "egress.block"
        undo: dict[str, Any] = {
            "destinations": list(change.undo.get("destinations", [])),
            "comment": str(applied.get("comment") or change.undo.get("comment", "")),
            **{key: dict(applied.get(key) or {}) for key in _HANDLES.values()}}
        if back == "egress.unblock":
            shown = [f"{chain} {h}" for chain, key in _HANDLES.items()
                     for h in undo[key].values()]
            what = (f"deletes the rule(s) this run added (handles "
                    f"{', '.join(shown) or 'by comment'})")
        else:
            what = "adds the drop rules back"
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after=dict(change.before), undo=undo,
            note=f"{what}; restores {change.target}", inverse_of=change.op_id)
