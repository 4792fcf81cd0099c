"""AWS EC2 security-group egress adapter: block an integration's destinations by revoking rules.

Backend options (see :mod:`adapters.aws_common`)::

    [backends.aws-sandbox-ec2]
    type = "aws-sg"
    region = "us-east-1"
    endpoint_url = "http://127.0.0.1:5055"        # moto (sandbox); omit for AWS
    access_key_env = "KS_AWS_ACCESS_KEY_ID"       # env var NAMES, or profile / standard chain
    secret_key_env = "KS_AWS_SECRET_ACCESS_KEY"

Inventory reference (``group_name`` instead of ``group_id`` is looked up, optionally within
``vpc_id``)::

    {backend = "aws-sandbox-ec2", group_id = "sg-0123456789abcdef0",
     destinations = ["10.0.0.0/8", "203.0.113.7"]}

Security groups only allow; there are no deny rules and they work on CIDRs only (a hostname
is a plan error). ``egress.block`` revokes every egress rule of the group whose IPv4/IPv6
range overlaps a destination. A rule wider than the destination (``10.0.0.0/8`` for
``10.1.2.3``, and above all ``0.0.0.0/0``) is revoked whole: revoking ``0.0.0.0/0`` blocks
ALL egress of the group, and the plan says so (``undo.blocks_all_egress``). Rules that
reference prefix lists or other groups cannot be matched to a CIDR and stay; the note says so.
``egress.unblock`` (the inverse) re-authorises exactly the saved rules (new rule ids).
A standalone ``egress.unblock`` cannot know what was revoked: use ``killswitch restore``.

State shape (``before`` / ``after`` / :meth:`SecurityGroupEgressAdapter.read`) — the group's
egress rules that reach the destinations, normalised and sorted (no rule ids, which change)::

    {"group_id": "sg-…", "rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443,
                                    "cidr": "10.0.0.0/8", "description": "corp"}]}

Undo data: ``{"snapshot": [every egress rule of the group at plan time], "rules": [...],
"blocks_all_egress": bool}``. Verify reads ``DescribeSecurityGroupRules`` back.

DNS answers and already-open connections can outlive a block: every note says so.

Example runbook step::

    [[steps]]
    id = "block-egress"
    action = "egress.block"
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.aws_common import AwsClients
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.specs.aws import AWS_SG, AwsOptions
from console.errors import AdapterError, Conflict, NotFound, UndoUnsupported

__all__ = ["OUTLIVE_NOTE", "SecurityGroupEgressAdapter", "parse_cidrs"]

OUTLIVE_NOTE = ("DNS answers and already-open connections can outlive a block: clients may "
                "keep talking over connections opened before it; restart them to be sure")
"""Carried by every egress change note and report."""

_WORLD = {"0.0.0.0/0", "::/0"}

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(destinations: Any, where: str) -> list[Net]:
    """Destinations as networks (single addresses become /32 or /128).

    Raises:
        AdapterError: No destinations, or one is not an address / CIDR (hostnames included).
    """
    if isinstance(destinations, str):
        destinations = [destinations]
    if not destinations or not isinstance(destinations, list):
        raise AdapterError("egress reference needs `destinations` (a list of CIDRs)",
                           where=where)
    nets: list[Net] = []
    for raw in destinations:
        try:
            nets.append(ipaddress.ip_network(str(raw).strip(), strict=False))
        except ValueError as exc:
            raise AdapterError(
                f"destination {raw!r} is not an IP address or CIDR: security groups work on "
                "CIDRs only and cannot match a hostname (its addresses change behind CDNs)",
                where=where, hint="list the CIDRs, or block the hostname with a proxy "
                "denylist (squid) or DNS firewall backend") from exc
    return nets


def _norm(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeSecurityGroupRules entry without ids, in the adapter's state shape."""
    proto = str(rule.get("IpProtocol", "-1"))
    out: dict[str, Any] = {"protocol": proto}
    if proto != "-1":
        out["from_port"] = rule.get("FromPort")
        out["to_port"] = rule.get("ToPort")
    if rule.get("CidrIpv4"):
        out["cidr"] = rule["CidrIpv4"]
    elif rule.get("CidrIpv6"):
        out["cidr"] = rule["CidrIpv6"]
    elif rule.get("PrefixListId"):
        out["prefix_list"] = rule["PrefixListId"]
    elif rule.get("ReferencedGroupInfo"):
        out["group"] = (rule["ReferencedGroupInfo"] or {}).get("GroupId", "")
    if rule.get("Description"):
        out["description"] = rule["Description"]
    return out


def _key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    """Identity of a rule for AWS (the description does not take part in matching)."""
    return (rule.get("protocol"), rule.get("from_port"), rule.get("to_port"), rule.get("cidr"))


def _sorted(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rules, key=lambda r: tuple(str(x) for x in (*_key(r), r.get("description"))))


def _permission(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One IpPermissions entry for a normalised CIDR rule."""
    perm: dict[str, Any] = {"IpProtocol": rule["protocol"]}
    if rule["protocol"] != "-1":
        perm["FromPort"] = rule.get("from_port")
        perm["ToPort"] = rule.get("to_port")
    cidr = str(rule["cidr"])
    rng: dict[str, Any] = {}
    if ":" in cidr:
        rng["CidrIpv6"] = cidr
    else:
        rng["CidrIp"] = cidr
    if rule.get("description"):
        rng["Description"] = rule["description"]
    perm["Ipv6Ranges" if ":" in cidr else "IpRanges"] = [rng]
    return perm


def _reaches(rule: Mapping[str, Any], nets: list[Net]) -> bool:
    cidr = rule.get("cidr")
    if not cidr:
        return False
    net = ipaddress.ip_network(str(cidr), strict=False)
    return any(n.version == net.version and n.overlaps(net) for n in nets)


def _within(net: Net, of: Net) -> bool:
    """``net.subnet_of(of)`` for two networks of the same IP version, else False."""
    if isinstance(net, ipaddress.IPv4Network) and isinstance(of, ipaddress.IPv4Network):
        return net.subnet_of(of)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(of, ipaddress.IPv6Network):
        return net.subnet_of(of)
    return False


def _wider(rule: Mapping[str, Any], nets: list[Net]) -> bool:
    net = ipaddress.ip_network(str(rule["cidr"]), strict=False)
    return not any(_within(net, n) for n in nets)


def _show(rule: Mapping[str, Any]) -> str:
    proto = rule["protocol"]
    ports = "all traffic" if proto == "-1" else f"{proto} {rule.get('from_port')}" + (
        f"-{rule.get('to_port')}" if rule.get("to_port") != rule.get("from_port") else "")
    return f"{ports} to {rule['cidr']}"


class SecurityGroupEgressAdapter(Adapter):
    """Block egress to CIDRs by revoking a security group's allow rules; undo re-authorises.

    See the module docstring for options, reference and state shapes.
    """

    name: ClassVar[str] = "aws-sg"
    Options: ClassVar[type[AwsOptions]] = AwsOptions
    OPTIONS: ClassVar[Mapping[str, str]] = AwsOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = AWS_SG.actions  # adapters/specs/aws.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    SUPPORTS_NATIVE_DRY_RUN: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.aws = AwsClients(backend, self.options)
        self.aws.run_id_source = lambda: self.run_id

    def open(self) -> None:
        """Build the EC2 client (no request is sent)."""
        self.aws.client("ec2")

    def close(self) -> None:
        """Close the client's connection pool."""
        self.aws.close()

    @property
    def _ec2(self) -> Any:
        return self.aws.client("ec2")

    # -- reads ----------------------------------------------------------------------------
    def _group_id(self, ref: Mapping[str, Any]) -> str:
        gid = str(ref.get("group_id") or "")
        if gid:
            return gid
        name = str(ref.get("group_name") or "")
        if not name:
            raise AdapterError("security-group reference needs `group_id` (or `group_name`)",
                               where=self.backend)
        filters = [{"Name": "group-name", "Values": [name]}]
        if ref.get("vpc_id"):
            filters.append({"Name": "vpc-id", "Values": [str(ref["vpc_id"])]})
        with self.aws.errors(f"security group {name}", "EC2"):
            groups = self._ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
        if len(groups) != 1:
            what = "no" if not groups else f"{len(groups)}"
            raise NotFound(f"{what} security group named {name!r}"
                           + (" (set vpc_id)" if groups else ""), where=self.backend)
        return str(groups[0]["GroupId"])

    def _egress(self, gid: str) -> list[dict[str, Any]]:
        """Every egress rule of ``gid``, normalised (paginated DescribeSecurityGroupRules)."""
        rules: list[dict[str, Any]] = []
        kw: dict[str, Any] = {"Filters": [{"Name": "group-id", "Values": [gid]}]}
        with self.aws.errors(gid, "EC2"):
            # a group that does not exist answers an empty rule list: check it exists
            self._ec2.describe_security_groups(GroupIds=[gid])
            while True:
                page = self._ec2.describe_security_group_rules(**kw)
                rules += [_norm(r) for r in page.get("SecurityGroupRules", [])
                          if r.get("IsEgress") and r.get("GroupId", gid) == gid]
                token = page.get("NextToken")
                if not token:
                    break
                kw["NextToken"] = token
        return _sorted(rules)

    def _state(self, gid: str, nets: list[Net]) -> dict[str, Any]:
        return {"group_id": gid, "rules": [r for r in self._egress(gid) if _reaches(r, nets)]}

    # -- phases ---------------------------------------------------------------------------
    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Snapshot the group's egress rules and list those that reach the destinations."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the aws-sg adapter does not offer {action}", where=self.backend)
        nets = parse_cidrs(ref.get("destinations"), self.backend)
        if action == "egress.unblock":
            raise AdapterError(
                "security groups keep no record of revoked rules: a standalone unblock cannot "
                "know what to re-authorise", where=self.backend,
                hint="undo the block with `killswitch restore RUN_ID`, which re-authorises "
                "exactly the rules the block saved")
        gid = self._group_id(ref)
        snapshot = self._egress(gid)
        reaching = [r for r in snapshot if _reaches(r, nets)]
        dests = ", ".join(str(n) for n in nets)
        before = {"group_id": gid, "rules": reaching}
        after: dict[str, Any] = {"group_id": gid, "rules": []}
        everything = any(r["cidr"] in _WORLD for r in reaching)
        wide = [r for r in reaching if r["cidr"] not in _WORLD and _wider(r, nets)]
        untested = [r for r in snapshot if "cidr" not in r]
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{gid} egress to {dests}"
        undo = {"snapshot": snapshot, "rules": reaching, "blocks_all_egress": everything}
        extra = (f"; {len(untested)} rule(s) to prefix lists / other groups were not matched "
                 "and stay") if untested else ""
        if not reaching:
            return [ctx.change(target, before, after, undo=undo, status=NOOP,
                               note=f"no egress rule of {gid} reaches {dests}: already "
                               f"blocked{extra}. {OUTLIVE_NOTE}")]
        parts = []
        if everything:
            parts.append(f"BLOCKS ALL EGRESS: revoking 0.0.0.0/0 (or ::/0) blocks ALL egress "
                         f"of {gid} to every destination, not only {dests} — security groups "
                         "have no deny rules; only its narrower rules still allow traffic")
        parts.append(f"revokes {len(reaching)} egress rule(s) of {gid}: "
                     + "; ".join(_show(r) for r in reaching))
        if wide:
            parts.append("wider than the destinations, revoked whole: "
                         + ", ".join(str(r["cidr"]) for r in wide))
        parts.append(f"undo re-authorises exactly these rules{extra}")
        parts.append(OUTLIVE_NOTE)
        return [ctx.change(target, before, after, undo=undo, note=". ".join(parts))]

    def read(self, change: Change) -> dict[str, Any]:
        """The group's egress rules that reach the destinations (DescribeSecurityGroupRules)."""
        nets = parse_cidrs(change.ref.get("destinations"), self.backend)
        gid = str(change.before.get("group_id") or self._group_id(change.ref))
        return self._state(gid, nets)

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Revoke the planned rules still present, or re-authorise the saved ones missing.

        ``current`` is the state the engine read just before (the group's rules that reach
        the destinations, which are all the rules a change names); without it apply reads
        the group. After a write the group is read back: EC2 does not raise for rules it
        did not match.
        """
        gid = str(change.before.get("group_id") or change.after.get("group_id"))
        wanted = {_key(r): r for r in change.after.get("rules", [])}
        dropped = {_key(r): r for r in change.before.get("rules", []) if _key(r) not in wanted}
        rules = current.get("rules", []) if current is not None and \
            current.get("group_id") == gid else self._egress(gid)
        present = {_key(r) for r in rules}
        revoke = [r for k, r in dropped.items() if k in present]
        add = [r for k, r in wanted.items() if k not in present]
        if revoke:
            self._call(gid, "revoke_security_group_egress", revoke, "InvalidPermission.NotFound")
        if add:
            self._call(gid, "authorize_security_group_egress", add, "InvalidPermission.Duplicate")
        left = {_key(r) for r in self._egress(gid)} if revoke or add else present
        if any(k in left for k in dropped) or any(k not in left for k in wanted):
            raise Conflict(f"EC2 did not carry out the change on {gid}: rules still differ "
                           "from the plan after the call", where=change.target)
        out: dict[str, Any] = {"revoked": revoke, "authorised": add}
        if change.action == "egress.block":
            out.update(rules=list(change.before.get("rules", [])),
                       snapshot=list(change.undo.get("snapshot", [])))
        return out

    def _call(self, gid: str, op: str, rules: list[dict[str, Any]], benign: str) -> None:
        """Revoke / authorise ``rules``; ``benign`` (already done) is re-checked by the caller."""
        from botocore.exceptions import ClientError

        try:
            with self.aws.errors(gid, "EC2"):
                try:
                    # UnknownIpPermissions (rules that did not match) are not raised by
                    # AWS: the caller re-reads the group and checks the outcome itself
                    getattr(self._ec2, op)(GroupId=gid,
                                           IpPermissions=[_permission(r) for r in rules])
                except ClientError as exc:
                    if (exc.response.get("Error") or {}).get("Code") == benign:
                        return
                    raise
        except AdapterError as exc:
            exc.msg = f"{exc.msg} ({'revoking' if 'revoke' in op else 'authorising'} " \
                      f"{'; '.join(_show(r) for r in rules)})"
            raise

    def verify(self, change: Change) -> Verdict:
        """Read the group's rules back: none may reach the destinations (or all restored)."""
        state = self.read(change)
        gid = state["group_id"]
        if change.action == "egress.block":
            if not state["rules"]:
                extra = (" (0.0.0.0/0 revoked: ALL egress of the group is blocked)"
                         if change.undo.get("blocks_all_egress") else "")
                return Verdict(True, "blocked", f"DescribeSecurityGroupRules: no egress rule "
                               f"of {gid} reaches the destinations{extra}; open connections "
                               "may outlive it")
            return Verdict(False, "open", f"{gid} still allows: "
                           + "; ".join(_show(r) for r in state["rules"]))
        if {_key(r) for r in state["rules"]} >= {_key(r) for r in change.after["rules"]}:
            return Verdict(True, "restored", f"DescribeSecurityGroupRules: the "
                           f"{len(change.after['rules'])} saved rule(s) of {gid} are back")
        return Verdict(False, "blocked", f"{gid} is missing saved rules")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that re-authorises exactly the rules the block revoked."""
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: no rule was revoked "
                                  "by this run", where=change.target)
        if change.action != "egress.block":
            raise UndoUnsupported(f"undo of {change.action} on {change.target} is not "
                                  "supported: run the block again", where=change.target)
        rules = list(applied.get("rules") or change.undo.get("rules") or change.before["rules"])
        gid = change.before["group_id"]
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action="egress.unblock", backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after={"group_id": gid, "rules": rules},
            undo={"rules": rules},
            note=f"re-authorises the {len(rules)} saved egress rule(s) of {gid}: "
            + "; ".join(_show(r) for r in rules), inverse_of=change.op_id)
