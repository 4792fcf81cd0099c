"""The inventory of approved AI integrations: models, selectors and lint.

An integration carries who owns it, what it touches, and typed references to every kill point
(never secret values)::

    [[integrations]]
    id = "support-bot"
    name = "Support assistant"
    owner = "team-support"
    environment = "prod"
    provider = "openai"
    kill_switch_owner = { name = "Priya N.", role = "lead", how = "slack:#support-oncall" }

    [[integrations.credentials]]
    backend = "vault-sandbox"
    path = "ai/support-bot/provider-key"

Selectors pick integrations the way an incident commander names them:
``select(items, ["provider=openai", "env=prod"])``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from console.declarations import Declared, check_backends, declared, reference_problems
from console.errors import UsageError

if TYPE_CHECKING:
    from console.config import Config

__all__ = [
    "DATA_CLASSES",
    "ENDPOINT_MODES",
    "ENVIRONMENTS",
    "KILL_POINT_LISTS",
    "SELECTOR_KEYS",
    "STATUSES",
    "Contact",
    "Finding",
    "Integration",
    "KillPointRef",
    "lint",
    "matches_text",
    "select",
    "select_one",
]

Environment = Literal["prod", "staging", "dev"]
Status = Literal["approved", "prototype", "suspended"]
EndpointMode = Literal["sync", "batch", "tool-calling", "embedding"]
DataClass = Literal[
    "public", "internal", "customer", "personal", "regulated", "source-code", "secrets"
]

ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
STATUSES: tuple[str, ...] = get_args(Status)
ENDPOINT_MODES: tuple[str, ...] = get_args(EndpointMode)
DATA_CLASSES: tuple[str, ...] = get_args(DataClass)
KILL_POINT_LISTS: tuple[str, ...] = ("credentials", "batches", "flags", "egress")
"""Integration fields holding :class:`KillPointRef` lists (``contacts`` holds contacts)."""


class Contact(BaseModel):
    """A person or channel to reach: kill-switch owner, vendor support, notification channel."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Person, team or vendor."""
    role: str | None = None
    """What they are to the integration: ``owner``, ``on-call``, ``vendor support``, ..."""
    how: str | None = None
    """How to reach them: ``email:...``, ``phone:...``, ``slack:#channel``, or a URL."""
    backend: str | None = None
    """Notification backend that delivers to this contact (for ``notify`` steps)."""


class KillPointRef(BaseModel):
    """A typed reference to one kill point. Extra fields are adapter-specific (see lint)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    backend: str
    """Name of a configured backend."""
    label: str | None = None
    """Optional human label shown in plans."""
    role: Literal["downstream"] | None = None
    """Credentials only: ``downstream`` marks a credential the integration's tools or agents
    hold (a database token, a ticketing API key, an OAuth client) rather than its provider
    key. ``kill-switch`` disables it in the same step as the provider key; plans and reports
    list it apart, and ``rotate`` leaves it alone."""

    @property
    def extra(self) -> dict[str, Any]:
        """The adapter-specific fields only."""
        return dict(self.model_extra or {})

    def fields(self) -> dict[str, Any]:
        """Everything, ``backend`` included, as passed to ``Adapter.plan(ref=...)``."""
        out: dict[str, Any] = {"backend": self.backend}
        if self.label is not None:
            out["label"] = self.label
        if self.role is not None:
            out["role"] = self.role
        out.update(self.extra)
        return out


class Integration(BaseModel):
    """One approved AI integration (an ``[[integrations]]`` table)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    """Stable slug: lower-case letters, digits, ``.``, ``_``, ``-``."""
    name: str
    """Human name."""
    owner: str
    """Owning team or person."""
    kill_switch_owner: Contact | None = None
    """Who may pull the switch, and how to reach them."""
    environment: Environment
    """prod / staging / dev."""
    status: Status = "approved"
    """approved / prototype / suspended."""
    tenants: list[str] = Field(default_factory=list)
    """Tenants or business units served."""
    region: str | None = None
    """Where the data is processed."""
    provider: str
    """AI provider: ``openai``, ``anthropic``, ``bedrock``, ``vertex``, ..."""
    models: list[str] = Field(default_factory=list)
    """Model ids used."""
    endpoint_mode: list[EndpointMode] = Field(default_factory=list)
    """sync / batch / tool-calling / embedding."""
    data_classes: list[DataClass] = Field(default_factory=list)
    """Classes of data sent to the provider."""
    approval_record: str | None = None
    """Link to the security review."""
    review_due: date | None = None
    """When the approval must be reviewed again."""
    tags: list[str] = Field(default_factory=list)
    """Free tags for selection."""
    credentials: list[KillPointRef] = Field(default_factory=list)
    """Provider keys and every stored copy."""
    batches: list[KillPointRef] = Field(default_factory=list)
    """Where this integration's batch jobs are found."""
    flags: list[KillPointRef] = Field(default_factory=list)
    """Feature flags that switch it off."""
    egress: list[KillPointRef] = Field(default_factory=list)
    """Egress controls and destinations."""
    contacts: list[Contact] = Field(default_factory=list)
    """Vendor support and notification channels."""

    def kill_point_lists(self) -> dict[str, list[KillPointRef]]:
        """The reference lists by field name: credentials, batches, flags, egress."""
        return {kind: list(getattr(self, kind)) for kind in KILL_POINT_LISTS}

    def refs(self, kill_point: str) -> list[KillPointRef]:
        """The references of one kill-point list (empty for ``contacts`` or unknown names)."""
        return list(getattr(self, kill_point, [])) if kill_point in KILL_POINT_LISTS else []

    def all_contacts(self) -> list[Contact]:
        """The kill-switch owner (if any) followed by the other contacts."""
        return ([self.kill_switch_owner] if self.kill_switch_owner else []) + list(self.contacts)

    @property
    def has_kill_points(self) -> bool:
        """True when at least one credential, batch, flag or egress reference exists."""
        return any(getattr(self, kind) for kind in KILL_POINT_LISTS)


# --------------------------------------------------------------------------- selectors

SELECTOR_KEYS: tuple[str, ...] = (
    "id",
    "provider",
    "env",
    "environment",
    "data_class",
    "owner",
    "status",
    "tag",
)
"""Keys a ``key=value`` selector may use."""

_ENUMS: Mapping[str, tuple[str, ...]] = {
    "env": ENVIRONMENTS,
    "environment": ENVIRONMENTS,
    "status": STATUSES,
    "data_class": DATA_CLASSES,
}


def _values(integration: Integration, key: str) -> list[str]:
    if key in ("env", "environment"):
        return [integration.environment]
    if key == "data_class":
        return list(integration.data_classes)
    if key == "tag":
        return list(integration.tags)
    return [str(getattr(integration, key))]


def select(integrations: Sequence[Integration], selectors: Sequence[str]) -> list[Integration]:
    """Pick integrations by selectors.

    A bare word is an integration id; ``key=value`` filters on ``provider``, ``env`` /
    ``environment``, ``data_class``, ``owner``, ``status``, ``tag`` (or ``id``), case-
    insensitively. ``value`` may list alternatives separated by commas
    (``provider=openai,anthropic``). Filters AND together; several bare ids name several
    integrations (they are alternatives, then AND with the filters). No selectors selects all.

    Args:
        integrations: The inventory.
        selectors: Selector strings, e.g. ``["provider=openai", "env=prod"]``.

    Returns:
        The matching integrations, in inventory order.

    Raises:
        UsageError: Unknown key, empty or invalid value, or a bare id that matches nothing.
    """
    ids: list[str] = []
    filters: list[tuple[str, set[str]]] = []
    known_ids = {i.id for i in integrations}
    for raw in selectors:
        sel = raw.strip()
        if not sel:
            continue
        if "=" not in sel:
            if sel not in known_ids:
                close = difflib.get_close_matches(sel, sorted(known_ids), n=1)
                raise UsageError(
                    f"no integration with id {sel!r}",
                    where=sel,
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + "use `killswitch inventory list` to see the ids, or key=value "
                    f"selectors ({', '.join(SELECTOR_KEYS)})",
                )
            ids.append(sel)
            continue
        key, _, value = sel.partition("=")
        key = key.strip().lower().replace("-", "_")
        if key not in SELECTOR_KEYS:
            close = difflib.get_close_matches(key, SELECTOR_KEYS, n=1)
            raise UsageError(
                f"unknown selector key {key!r} in {sel!r}",
                where=sel,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"valid keys: {', '.join(SELECTOR_KEYS)}",
            )
        wanted = {v.strip().lower() for v in value.split(",") if v.strip()}
        if not wanted:
            raise UsageError(f"selector {sel!r} has no value", where=sel, hint=f"{key}=VALUE")
        allowed = _ENUMS.get(key)
        if allowed:
            bad = sorted(wanted - set(allowed))
            if bad:
                raise UsageError(
                    f"{key} cannot be {', '.join(bad)}",
                    where=sel,
                    hint=f"{key} is one of: {', '.join(allowed)}",
                )
        filters.append((key, wanted))

    out: list[Integration] = []
    for integ in integrations:
        if ids and integ.id not in ids:
            continue
        if all(
            any(v.lower() in wanted for v in _values(integ, key)) for key, wanted in filters
        ):
            out.append(integ)
    return out


def select_one(integrations: Sequence[Integration], selector: str) -> Integration:
    """The one integration ``selector`` names (an id, or filters that match exactly one).

    Raises:
        UsageError: The selector is invalid (see :func:`select`), or matches none or
            several; the message lists the matches and the hint the command listing them.
    """
    matches = select(integrations, [selector])
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(i.id for i in matches[:20]) + (", ..." if len(matches) > 20 else "")
    listing = " ".join(["killswitch inventory list", selector.strip()]).strip()
    raise UsageError(
        f"{selector!r} matches {len(matches)} integrations: {shown}" if matches
        else f"{selector!r} matches no integration",
        where=selector,
        hint=f"give exactly one integration id; see the matches with `{listing}`",
    )


def matches_text(integration: Integration, text: str) -> bool:
    """Free-text filter: ``text`` is a case-insensitive substring of id, name, owner or provider."""
    needle = text.strip().lower()
    if not needle:
        return True
    hay = (integration.id, integration.name, integration.owner, integration.provider)
    return any(needle in h.lower() for h in hay)


# --------------------------------------------------------------------------- lint


@dataclass(frozen=True)
class Finding:
    """One lint finding.

    Attributes:
        level: ``error`` or ``warning``.
        integration: The integration id, or None for backend-wide findings.
        where: ``file:line`` when known, else ``""``.
        message: What is wrong.
        hint: How to fix it.
    """

    level: Literal["error", "warning"]
    integration: str | None
    where: str
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return asdict(self)

    def __str__(self) -> str:
        parts = (self.integration or "", f"({self.where})" if self.where else "")
        head = " ".join(x for x in parts if x)
        text = f"{self.level}: {head + ': ' if head else ''}{self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


def _declaration_findings(config: Config, adapters: Mapping[str, Declared]) -> list[Finding]:
    """What the config loader enforces (types, options, reference schemas), as findings.

    A config read by :func:`~console.config.load_config` never has any: loading refuses it.
    A config built in code (tests, tools) gets them here.
    """
    findings: list[Finding] = []
    raw_backends = {n: {"type": b.type, **b.options} for n, b in config.backends.items()}
    problems, _ = check_backends(raw_backends, adapters, config.path.parent, config.locate)
    findings += [Finding("error", None, p.where, p.msg, p.hint) for p in problems]
    raws = [("config", i, _raw(integ)) for i, integ in enumerate(config.integrations)]
    types = {n: b.type for n, b in config.backends.items()}
    for i, p in reference_problems(raws, types, adapters, lambda _src: config.locate):
        findings.append(Finding("error", config.integrations[i].id, p.where, p.msg, p.hint))
    return findings


def _raw(integ: Integration) -> dict[str, Any]:
    """An integration's references as the TOML tables they came from."""
    out: dict[str, Any] = {"id": integ.id}
    for kind in KILL_POINT_LISTS:
        out[kind] = [ref.fields() for ref in getattr(integ, kind)]
    out["contacts"] = [c.model_dump(exclude_none=True) for c in integ.contacts]
    return out


def lint(config: Config, today: date | None = None) -> list[Finding]:
    """Check the inventory against the configured backends and installed adapters.

    Errors: a kill point naming an undefined backend, a reference on a backend whose adapter
    offers no action on that kill point, a contact on a backend that cannot notify, and
    (for a config built in code: loading refuses them) what the adapters' declarations
    refuse: an unknown backend type, an unknown or invalid option, a reference that breaks
    its adapter's schema.
    Warnings: a backend whose adapter fails to import, no kill points at all, no
    kill-switch owner, review overdue, and a prod integration whose only kill points are
    irreversible.

    Args:
        config: The loaded config.
        today: The date to compare ``review_due`` with (default: today).

    Returns:
        Findings, errors first, then in inventory order.
    """
    today = today or date.today()
    adapters = declared(b.type for b in config.backends.values())
    findings = _declaration_findings(config, adapters)

    for name, backend in config.backends.items():
        info = adapters[backend.type]
        if info.spec is None and info.problem != "unknown":
            findings.append(
                Finding(
                    "warning",
                    None,
                    config.locate(("backends", name, "type")),
                    f"adapter {backend.type!r} of backend {name!r} could not be loaded "
                    f"({info.problem}); its kill points are not checked",
                    "reinstall the package providing the adapter",
                )
            )

    for index, integ in enumerate(config.integrations):
        findings += _lint_integration(config, index, integ, adapters, today)

    findings.sort(key=lambda f: 0 if f.level == "error" else 1)
    return findings


def _lint_integration(
    config: Config,
    index: int,
    integ: Integration,
    adapters: Mapping[str, Declared],
    today: date,
) -> list[Finding]:
    out: list[Finding] = []
    base = ("integrations", index)
    defined = ", ".join(sorted(config.backends)) or "none"

    lists: list[tuple[str, list[Any]]] = list(integ.kill_point_lists().items())
    lists.append(("contacts", [c for c in integ.contacts if c.backend]))
    for kind, refs in lists:
        for j, ref in enumerate(refs):
            backend = config.backends.get(ref.backend)
            if backend is None:
                out.append(
                    Finding(
                        "error",
                        integ.id,
                        config.locate((*base, kind, j, "backend")),
                        f"{kind}[{j}] names undefined backend {ref.backend!r}",
                        f"defined backends: {defined}",
                    )
                )
                continue
            spec = adapters[backend.type].spec
            if spec is None:
                continue
            if not any(s.kill_point == kind for s in spec.actions.values()):
                what = "cannot notify" if kind == "contacts" else f"offers no action on {kind}"
                out.append(
                    Finding(
                        "error",
                        integ.id,
                        config.locate((*base, kind, j, "backend")),
                        f"{kind}[{j}] is on backend {ref.backend!r} (type {backend.type!r}), "
                        f"which {what}",
                        "move the reference to the list it belongs to or use another backend",
                    )
                )

    here = config.locate(base)
    if not integ.has_kill_points:
        out.append(
            Finding(
                "warning",
                integ.id,
                here,
                "no kill points: nothing can be switched off",
                "add credentials, flags, batches or egress references",
            )
        )
    if integ.kill_switch_owner is None:
        out.append(
            Finding(
                "warning",
                integ.id,
                here,
                "no kill_switch_owner",
                'add kill_switch_owner = { name = "...", how = "slack:#channel" }',
            )
        )
    if integ.review_due is not None and integ.review_due < today:
        out.append(
            Finding(
                "warning",
                integ.id,
                config.locate((*base, "review_due")),
                f"review was due on {integ.review_due.isoformat()}",
                "renew the approval and update review_due",
            )
        )
    if integ.environment == "prod" and integ.has_kill_points and _only_irreversible(
        config, integ, adapters
    ):
        out.append(
            Finding(
                "warning",
                integ.id,
                here,
                "prod integration whose kill points are all irreversible: "
                "it cannot be switched off and back on",
                "add a feature flag or an egress control, or keep keys in a backend that can "
                "disable them reversibly",
            )
        )
    return out


def _only_irreversible(
    config: Config, integ: Integration, adapters: Mapping[str, Declared]
) -> bool:
    """True when no flag, no egress, and no credential backend offers a reversible action.

    Credentials on a backend whose adapter cannot be loaded count as unknown: no warning.
    """
    if integ.flags or integ.egress:
        return False
    for ref in integ.credentials:
        backend = config.backends.get(ref.backend)
        if backend is None:
            return False
        spec = adapters[backend.type].spec if backend.type in adapters else None
        if spec is None:
            return False
        if any(s.kill_point == "credentials" and s.reversible for s in spec.actions.values()):
            return False
    return True
