"""What each built-in adapter declares, importable without its SDK (hvac, boto3, google, httpx).

An adapter's declarations (its options model, its action kinds with their reference schema
and permissions, and how those permissions are granted) live in one light module per family
here, and the adapter class points at them (``Options = VaultOptions``,
``ACTIONS = VAULT.actions``). The config loader validates every backend and reference
against these on every command, so ``killswitch --help`` and ``inventory list`` never pay for
an SDK import; a meta-test checks that each adapter class and its spec are the same objects.

Third-party adapters need nothing here: :func:`spec_of` builds a spec from the adapter class
itself (its ``Options``, ``ACTIONS``, ``OPTIONS``), importing it as any entry point would.

Like Cloud Custodian's resource map, :data:`BUILTIN` is a lazy map of strings: nothing is
imported until a config names the type.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from adapters.base import ActionSpec
from adapters.options import AdapterOptions

if TYPE_CHECKING:
    from adapters.base import Adapter

__all__ = ["BUILTIN", "AdapterSpec", "Grant", "IamKind", "builtin_spec", "spec_of"]

IamKind = Literal["aws", "gcp", "vault", "launchdarkly", "token", "host", ""]
"""How the console's identity is granted an adapter's permissions (how they are rendered by
``killswitch permissions``): an AWS IAM policy, GCP IAM permissions, a Vault policy, a
LaunchDarkly custom role, an API token / key of the provider, privileges on a host."""


@dataclass(frozen=True)
class Grant:
    """One permission the console's identity needs, on one resource.

    Attributes:
        permission: AWS IAM action, GCP permission, Vault capability, LaunchDarkly action,
            or the token / key kind and what it must allow.
        resource: ARN, GCP resource name, Vault path, LaunchDarkly resource specifier, or
            API object (``*`` when it cannot be narrowed).
        condition: AWS IAM condition block, if any.
        note: Why, or when it is needed (one line).
    """

    permission: str
    resource: str = "*"
    condition: Mapping[str, Any] | None = None
    note: str = ""


Grants = Callable[[str, Mapping[str, Any], Any, Mapping[str, Any]], list[Grant]]
"""``grants(action, ref, options, step_options)``: what one action on one reference needs,
with the backend's typed options and the runbook step's options."""


@dataclass(frozen=True)
class AdapterSpec:
    """The declarations of one adapter type.

    Attributes:
        name: The adapter (backend ``type``) name.
        options: The options model.
        actions: The action kinds offered, by kind.
        iam: How the permissions are granted (see :data:`IamKind`).
        grants: Per action and reference, the exact permissions and resources; None: the
            action's declared ``permissions`` on ``*``.
        option_names: Accepted option keys when the adapter has no typed options model
            (third-party adapters declaring only ``OPTIONS``); empty: from ``options``.
    """

    name: str
    options: type[AdapterOptions]
    actions: Mapping[str, ActionSpec]
    iam: IamKind = ""
    grants: Grants | None = field(default=None, compare=False)
    option_names: tuple[str, ...] = ()

    def grants_for(self, action: str, ref: Mapping[str, Any], options: AdapterOptions,
                   step_options: Mapping[str, Any] | None = None) -> list[Grant]:
        """What ``action`` on ``ref`` needs, with this backend's ``options``.

        Args:
            action: The action kind.
            ref: The inventory reference.
            options: The backend's validated options.
            step_options: The runbook step's options (they may pick a method).
        """
        if self.grants is not None:
            return self.grants(action, ref, options, step_options or {})
        spec = self.actions.get(action)
        return [Grant(p) for p in (spec.permissions if spec else ())]

    def known_options(self) -> list[str]:
        """Accepted option keys (empty: unknown, nothing is refused)."""
        return list(self.option_names) or self.options.names()


BUILTIN: Mapping[str, tuple[str, str]] = {
    "vault": ("adapters.vault:VaultAdapter", "adapters.specs.vault:VAULT"),
    "flagfile": ("adapters.flagfile:FlagFileAdapter", "adapters.specs.flags:FLAGFILE"),
    "unleash": ("adapters.unleash:UnleashAdapter", "adapters.specs.flags:UNLEASH"),
    "launchdarkly": ("adapters.launchdarkly:LaunchDarklyAdapter",
                     "adapters.specs.flags:LAUNCHDARKLY"),
    "fake": ("adapters.fake:FakeAdapter", "adapters.specs.fake:FAKE"),
    "aws-secrets": ("adapters.aws_secrets:SecretsManagerAdapter",
                    "adapters.specs.aws:AWS_SECRETS"),
    "aws-ssm": ("adapters.aws_ssm:SsmParameterAdapter", "adapters.specs.aws:AWS_SSM"),
    "aws-iam": ("adapters.aws_iam:IamAccessKeyAdapter", "adapters.specs.aws:AWS_IAM"),
    "aws-sg": ("adapters.aws_sg:SecurityGroupEgressAdapter", "adapters.specs.aws:AWS_SG"),
    "bedrock-batch": ("adapters.bedrock_batch:BedrockBatchAdapter",
                      "adapters.specs.aws:BEDROCK_BATCH"),
    "gcp-secrets": ("adapters.gcp_secrets:GcpSecretManagerAdapter",
                    "adapters.specs.gcp:GCP_SECRETS"),
    "gcp-keys": ("adapters.gcp_keys:GcpServiceAccountKeyAdapter", "adapters.specs.gcp:GCP_KEYS"),
    "vertex-batch": ("adapters.vertex_batch:VertexBatchAdapter",
                     "adapters.specs.gcp:VERTEX_BATCH"),
    "openai": ("adapters.openai_admin:OpenAIAdminAdapter", "adapters.specs.providers:OPENAI"),
    "anthropic": ("adapters.anthropic_admin:AnthropicAdminAdapter",
                  "adapters.specs.providers:ANTHROPIC"),
    "openai-batch": ("adapters.openai_batch:OpenAIBatchAdapter",
                     "adapters.specs.providers:OPENAI_BATCH"),
    "azure-openai-batch": ("adapters.openai_batch:AzureOpenAIBatchAdapter",
                           "adapters.specs.providers:AZURE_OPENAI_BATCH"),
    "anthropic-batch": ("adapters.anthropic_batch:AnthropicBatchAdapter",
                        "adapters.specs.providers:ANTHROPIC_BATCH"),
    "nftables": ("adapters.nftables:NftablesAdapter", "adapters.specs.egress:NFTABLES"),
    "squid": ("adapters.squid:SquidDenylistAdapter", "adapters.specs.egress:SQUID"),
    "slack": ("adapters.slack:SlackWebhookAdapter", "adapters.specs.notify:SLACK"),
    "pagerduty": ("adapters.pagerduty:PagerDutyAdapter", "adapters.specs.notify:PAGERDUTY"),
}
"""Built-in adapter name -> (its entry point, its spec), as strings: nothing imported."""


def builtin_spec(name: str, entry_point: str | None = None) -> AdapterSpec | None:
    """The light spec of built-in adapter ``name``; None for any other.

    Args:
        name: The adapter name.
        entry_point: The installed entry point's value; when given and not the built-in
            one (a package replaced the adapter), None: read the replacement's class.
    """
    found = BUILTIN.get(name)
    if found is None or (entry_point is not None and entry_point != found[0]):
        return None
    module, _, attr = found[1].partition(":")
    spec = getattr(importlib.import_module(module), attr)
    assert isinstance(spec, AdapterSpec)
    return spec


def spec_of(cls: type[Adapter]) -> AdapterSpec:
    """The spec of an adapter class (a third-party adapter, or any class in tests)."""
    options = getattr(cls, "Options", AdapterOptions)
    declared = tuple(getattr(cls, "OPTIONS", {}) or ())
    names = () if options.model_fields else declared
    return AdapterSpec(cls.name, options, cls.ACTIONS, option_names=names)
