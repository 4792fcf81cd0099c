"""Least privilege of the console's own identity for one runbook on some integrations.

Cloud Custodian asks every action for ``get_permissions()``; this module takes the step
beyond it and writes the policy. For each backend a runbook touches on the selected
integrations it collects, from the adapter's declarations (:mod:`adapters.specs`), exactly
the permissions each step's action needs on each inventory reference, on the narrowest
resource that reference names, and renders them in that system's own language:

==============  =====================================================================
adapter family  rendered as
==============  =====================================================================
AWS             an IAM policy document (``Version`` 2012-10-17), resource ARNs
GCP             the permission list, a custom role (YAML for ``gcloud iam roles
                create --file``) and the resources to grant it on
Vault           a policy in HCL with the exact KV v2 / token / lease paths
LaunchDarkly    a custom role policy (``updateOn`` per project / environment / flag)
API keys        the key each provider needs (admin key, project key, webhook,
                routing key) with its scope and the exact calls
host            privileges on the host (capability, files, commands)
==============  =====================================================================

Reads count: planning observes every target, verify reads it back, and a run that touches
credentials reads the key from a store copy for the proof of death. ``restore`` needs the
inverse of every reversible kill the integrations' references can receive. Not included:
what ``credentials scan`` and ``--include-unlisted`` need (listing whole stores).
``evidence.preserve`` (on every credential and batch reference) is itemised where an adapter
declares it as an action; otherwise a note says its reads are not itemised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapters.specs import AdapterSpec, Grant
from console.declarations import declared

if TYPE_CHECKING:
    from console.config import Config
    from console.inventory import Integration
    from console.runbook import Runbook

__all__ = [
    "KILLS",
    "BackendNeeds",
    "Permissions",
    "aws_policy",
    "gcp_role",
    "launchdarkly_role",
    "least_privilege",
    "render_text",
    "vault_policy",
]

KILLS: tuple[str, ...] = ("credential.disable", "flag.disable", "egress.block", "notify")
"""Reversible kills whose inverses a ``restore`` may apply."""

_CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo")


@dataclass
class BackendNeeds:
    """What the console's identity needs on one backend.

    Attributes:
        backend: Backend name.
        type: Adapter name.
        iam: How the permissions are granted (``aws``, ``gcp``, ``vault``, ...).
        actions: The action kinds the runbook takes there.
        grants: Every permission on every resource, without duplicates, in order.
        integrations: The integrations whose references are there.
    """

    backend: str
    type: str
    iam: str
    actions: list[str] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)

    def add(self, action: str, integration: str, grants: Iterable[Grant]) -> None:
        """Record ``grants`` needed by ``action`` on a reference of ``integration``."""
        if action not in self.actions:
            self.actions.append(action)
        if integration not in self.integrations:
            self.integrations.append(integration)
        for g in grants:
            if g not in self.grants:
                self.grants.append(g)

    def to_dict(self, runbook: str) -> dict[str, Any]:
        """JSON-ready: the rendered policy for the backend's family, plus the raw grants."""
        out: dict[str, Any] = {"backend": self.backend, "type": self.type, "iam": self.iam,
                               "actions": self.actions, "integrations": self.integrations}
        if self.iam == "aws":
            out["policy"] = aws_policy(self.grants)
        elif self.iam == "gcp":
            role, bindings = gcp_role(self.grants, runbook, self.backend)
            out["permissions"] = role["includedPermissions"]
            out["role"] = role
            out["bindings"] = bindings
        elif self.iam == "vault":
            out["policy_hcl"] = vault_policy(self.grants, runbook, self.backend)
        elif self.iam == "launchdarkly":
            out["role_policy"] = launchdarkly_role(self.grants)
        else:
            out["credentials"] = _by_permission(self.grants)
        out["grants"] = [{"permission": g.permission, "resource": g.resource,
                          **({"condition": dict(g.condition)} if g.condition else {}),
                          **({"note": g.note} if g.note else {})} for g in self.grants]
        return out


@dataclass
class Permissions:
    """The least privilege of one runbook on some integrations.

    Attributes:
        runbook: The runbook's name.
        integrations: The selected integrations' ids.
        backends: What each backend needs, in config order.
        notes: What is not covered (a reference no adapter can act on, a broken adapter).
    """

    runbook: str
    integrations: list[str]
    backends: list[BackendNeeds]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"runbook": self.runbook, "integrations": self.integrations,
                "backends": [b.to_dict(self.runbook) for b in self.backends],
                "notes": self.notes}


def _actions(runbook: Runbook, integ: Integration) -> list[tuple[str, Mapping[str, Any]]]:
    """``(action, step options)`` the runbook takes on ``integ`` (a restore: the inverses
    of every reversible kill)."""
    if runbook.is_restore:
        return [(kind, {}) for kind in KILLS]
    return [(s.action, s.options) for s in runbook.steps if s.applies_to(integ)]


def _references(integ: Integration, kill_point: str) -> list[dict[str, Any]]:
    if kill_point == "contacts":
        return [c.model_dump(exclude_none=True) for c in integ.contacts if c.backend]
    return [ref.fields() for ref in integ.refs(kill_point)]


def least_privilege(config: Config, runbook: Runbook,
                    integrations: Sequence[Integration]) -> Permissions:
    """What the console's identity needs to run ``runbook`` on ``integrations``.

    Args:
        config: The loaded config (backends and their options).
        runbook: The runbook; a ``restore`` runbook needs the inverse of every reversible
            kill (:data:`KILLS`) the references can receive.
        integrations: The selected integrations.

    Returns:
        Per backend, the grants and the rendered policy; notes for what is not covered.
    """
    from adapters.base import KILL_POINTS
    from adapters.evidence import EVIDENCE_ACTION, EVIDENCE_KILL_POINTS
    from adapters.rotation import ROTATION_ACTIONS

    kinds = declared(b.type for b in config.backends.values())
    needs: dict[str, BackendNeeds] = {}
    notes: list[str] = []
    for integ in integrations:
        for action, step_options in _actions(runbook, integ):
            point = KILL_POINTS.get(action, "")
            refs = ([r for kp in EVIDENCE_KILL_POINTS for r in _references(integ, kp)]
                    if action == EVIDENCE_ACTION else _references(integ, point))
            for ref in refs:
                name = str(ref.get("backend", ""))
                backend = config.backends.get(name)
                spec = kinds[backend.type].spec if backend is not None else None
                if backend is None or spec is None:
                    notes.append(f"{integ.id}: {point} on backend {name!r}: its adapter "
                                 "cannot be loaded; not covered")
                    continue
                wanted = _wanted(spec, action, runbook.is_restore)
                if wanted is None and action == EVIDENCE_ACTION:
                    note = (f"{integ.id}: evidence.preserve on backend {name!r}: read-only "
                            f"calls of the {spec.name} adapter, not itemised (it declares "
                            "no evidence.preserve action)")
                    if note not in notes:
                        notes.append(note)
                    continue
                if wanted is None:
                    # a rotation step's non-targets (a store copy is not issued a key) are
                    # no gap: the plan skips them with a note of its own
                    if not runbook.is_restore and action not in ROTATION_ACTIONS:
                        notes.append(f"{integ.id}: the {spec.name} adapter of backend {name!r} "
                                     f"cannot do {action}; nothing needed there")
                    continue
                options = spec.options.parse(name, backend.options, config.path.parent)
                entry = needs.setdefault(name, BackendNeeds(name, spec.name, spec.iam))
                entry.add(wanted, integ.id, spec.grants_for(wanted, ref, options,
                                                            step_options))
    order = list(config.backends)
    return Permissions(runbook.name, [i.id for i in integrations],
                       sorted(needs.values(), key=lambda b: order.index(b.backend)), notes)


def _wanted(spec: AdapterSpec, action: str, restore: bool) -> str | None:
    """The action to grant: ``action`` itself, or (restore) its inverse when reversible."""
    found = spec.actions.get(action)
    if found is None:
        return None
    if not restore:
        return action
    if not found.reversible or not found.inverse or found.inverse not in spec.actions:
        return None
    return found.inverse


# -- AWS ------------------------------------------------------------------------------------


def aws_policy(grants: Sequence[Grant]) -> dict[str, Any]:
    """An IAM policy document: one statement per set of resources (and condition).

    Actions that share exactly the same resources share a statement; a ``*`` resource
    makes the others redundant for that action.
    """
    resources: dict[tuple[str, str], set[str]] = {}
    conditions: dict[str, Mapping[str, Any]] = {}
    for g in grants:
        cond = json.dumps(g.condition, sort_keys=True) if g.condition else ""
        if cond:
            conditions[cond] = g.condition or {}
        resources.setdefault((g.permission, cond), set()).add(g.resource)
    groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for (action, cond), res in resources.items():
        key = (("*",) if "*" in res else tuple(sorted(res)), cond)
        groups.setdefault(key, []).append(action)
    statements = []
    for n, ((arns, cond), actions) in enumerate(sorted(groups.items()), start=1):
        stmt: dict[str, Any] = {"Sid": f"Killswitch{n}", "Effect": "Allow",
                                "Action": sorted(actions),
                                "Resource": arns[0] if arns == ("*",) else list(arns)}
        if cond:
            stmt["Condition"] = conditions[cond]
        statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


# -- GCP ------------------------------------------------------------------------------------


def _role_id(runbook: str, backend: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"killswitch_{runbook}_{backend}")[:64]


def gcp_role(grants: Sequence[Grant], runbook: str,
             backend: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A custom role with exactly the permissions, and where to grant it.

    Returns:
        ``(role, bindings)``: the role (``gcloud iam roles create ID --file``) and, per
        resource, the permissions needed there (grant the role on each: a secret, a
        service account, or a project).
    """
    perms = sorted({g.permission for g in grants})
    role = {"roleId": _role_id(runbook, backend),
            "title": f"Killswitch {runbook} ({backend})"[:100],
            "description": f"Least privilege of the Killswitch console for runbook {runbook} "
                           f"on backend {backend}"[:256],
            "stage": "GA", "includedPermissions": perms}
    where: dict[str, list[str]] = {}
    for g in grants:
        if g.permission not in where.setdefault(g.resource, []):
            where[g.resource].append(g.permission)
    return role, [{"resource": r, "permissions": sorted(p)} for r, p in where.items()]


def _role_yaml(role: Mapping[str, Any]) -> str:
    lines = [f"title: {json.dumps(role['title'])}",
             f"description: {json.dumps(role['description'])}",
             f"stage: {role['stage']}", "includedPermissions:"]
    return "\n".join(lines + [f"- {p}" for p in role["includedPermissions"]])


# -- Vault ----------------------------------------------------------------------------------


def vault_policy(grants: Sequence[Grant], runbook: str = "", backend: str = "") -> str:
    """A Vault policy (HCL): one ``path`` block per path, capabilities in Vault's order."""
    caps: dict[str, set[str]] = {}
    for g in grants:
        caps.setdefault(g.resource, set()).add(g.permission)
    head = f"# Killswitch: runbook {runbook}, backend {backend}\n" if runbook else ""
    blocks = []
    for path in sorted(caps):
        listed = ", ".join(json.dumps(c) for c in _CAPABILITIES if c in caps[path])
        blocks.append(f'path {json.dumps(path)} {{\n  capabilities = [{listed}]\n}}')
    return head + "\n\n".join(blocks) + "\n"


# -- LaunchDarkly ---------------------------------------------------------------------------


def launchdarkly_role(grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """A LaunchDarkly custom role policy: one statement per action."""
    by_action: dict[str, list[str]] = {}
    for g in grants:
        if g.resource not in by_action.setdefault(g.permission, []):
            by_action[g.permission].append(g.resource)
    return [{"effect": "allow", "actions": [a], "resources": sorted(r)}
            for a, r in sorted(by_action.items())]


# -- API keys, host, other ------------------------------------------------------------------


def _by_permission(grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """Per key / privilege: the calls or resources it must reach."""
    out: dict[str, dict[str, Any]] = {}
    for g in grants:
        entry = out.setdefault(g.permission, {"credential": g.permission, "for": []})
        item = g.resource + (f" ({g.note})" if g.note else "")
        if item not in entry["for"]:
            entry["for"].append(item)
    return list(out.values())


def _notes(grants: Sequence[Grant]) -> list[str]:
    seen: list[str] = []
    for g in grants:
        if g.note and f"note: {g.permission}: {g.note}" not in seen:
            seen.append(f"note: {g.permission}: {g.note}")
    return seen


_TITLES = {"aws": "AWS IAM policy", "gcp": "GCP IAM permissions", "vault": "Vault policy",
           "launchdarkly": "LaunchDarkly custom role", "token": "API credentials",
           "host": "host privileges", "": "permissions"}


def render_text(perms: Permissions) -> str:
    """The report for a terminal: one section per backend, each in its own language."""
    ids = ", ".join(perms.integrations) or "none"
    lines = [f"Least privilege of the console's identity for runbook {perms.runbook} on "
             f"{len(perms.integrations)} integration(s): {ids}"]
    if not perms.backends:
        lines.append("\nnothing: the runbook acts on no backend of these integrations")
    for b in perms.backends:
        data = b.to_dict(perms.runbook)
        lines += ["", f"== {b.backend} ({b.type}): {_TITLES.get(b.iam, b.iam)} -- "
                      f"{', '.join(b.actions)}"]
        if b.iam == "aws":
            lines.append(json.dumps(data["policy"], indent=2))
            lines += _notes(b.grants)
        elif b.iam == "gcp":
            lines.append("permissions: " + ", ".join(data["permissions"]))
            lines.append(f"custom role (gcloud iam roles create {data['role']['roleId']} "
                         "--project PROJECT --file role.yaml):")
            lines.append(_role_yaml(data["role"]))
            lines.append("grant the role on:")
            lines += [f"  {x['resource']}" for x in data["bindings"]]
            lines += _notes(b.grants)
        elif b.iam == "vault":
            lines.append(data["policy_hcl"].rstrip())
        elif b.iam == "launchdarkly":
            lines.append("custom role policy (a token with this role; not an SDK key):")
            lines.append(json.dumps(data["role_policy"], indent=2))
        else:
            for entry in data["credentials"]:
                lines.append(f"- {entry['credential']}")
                lines += [f"    {x}" for x in entry["for"]]
    if perms.notes:
        lines += ["", "notes:"] + [f"  {n}" for n in perms.notes]
    lines += ["", "Not included: what `credentials scan` / `--include-unlisted` need (listing "
                  "whole stores)."]
    return "\n".join(lines)
