"""Declarations of the AI provider adapters: admin-key adapters and batch adapters.

The console reaches these providers with an API key, never an IAM identity, so a grant names
the key (admin key, project key, workspace key) with the scope it needs and, as its
resource, the exact API call on the exact object::

    Grant("admin key (organization owner): api.management.write",
          "DELETE /v1/organization/projects/proj_x/api_keys/key_y")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, EnvName, FilePath, HttpUrl, Seconds, Wait
from adapters.specs import AdapterSpec, Grant

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_BATCH",
    "AZURE_OPENAI_BATCH",
    "OPENAI",
    "OPENAI_BATCH",
    "AnthropicAdminOptions",
    "AnthropicBatchOptions",
    "AzureOpenAIBatchOptions",
    "BatchOptions",
    "OpenAIAdminOptions",
    "OpenAIBatchOptions",
]



def _timeout() -> Any:
    """``request_timeout`` (alias ``timeout``), 30 s by default."""
    return Field(default=30.0, validation_alias=AliasChoices("request_timeout", "timeout"))


class OpenAIAdminOptions(AdapterOptions):
    """Options of an ``openai`` backend (the OpenAI Admin API)."""

    base_url: HttpUrl = ""
    """API root including /v1 (default https://api.openai.com/v1)."""
    admin_key_env: EnvName = "OPENAI_ADMIN_KEY"
    """Environment variable NAME holding the admin key (default OPENAI_ADMIN_KEY)."""
    admin_key_file: FilePath = ""
    """Fallback file holding the admin key (optional)."""
    request_timeout: Seconds = _timeout()
    """Seconds per HTTP call (default 30)."""


class AnthropicAdminOptions(AdapterOptions):
    """Options of an ``anthropic`` backend (the Anthropic Admin API)."""

    base_url: HttpUrl = ""
    """API root without /v1 (default https://api.anthropic.com)."""
    admin_key_env: EnvName = "ANTHROPIC_ADMIN_KEY"
    """Environment variable NAME holding the admin key (default ANTHROPIC_ADMIN_KEY)."""
    admin_key_file: FilePath = ""
    """Fallback file holding the admin key (optional)."""
    anthropic_version: str = "2023-06-01"
    """anthropic-version header (default 2023-06-01)."""
    request_timeout: Seconds = _timeout()
    """Seconds per HTTP call (default 30)."""


class BatchOptions(AdapterOptions):
    """Options every batch adapter that authenticates with an API key shares."""

    key_file: FilePath = ""
    """Fallback file holding the key (optional)."""
    request_timeout: Seconds = _timeout()
    """Seconds per HTTP call (default 30)."""
    wait: Wait = 60.0
    """Seconds verify waits for cancelling -> cancelled (default 60); keep it below the
    backend's operation timeout."""


class OpenAIBatchOptions(BatchOptions):
    """Options of an ``openai-batch`` backend."""

    base_url: HttpUrl = ""
    """API root including /v1 (default https://api.openai.com/v1)."""
    key_env: EnvName = "OPENAI_API_KEY"
    """Env var NAME of the project or incident-response key (default OPENAI_API_KEY)."""
    organization: str = ""
    """OpenAI-Organization header (optional)."""


class AzureOpenAIBatchOptions(BatchOptions):
    """Options of an ``azure-openai-batch`` backend."""

    endpoint: HttpUrl = Field(default="", validation_alias=AliasChoices("endpoint", "url"))
    """Resource endpoint, https://<resource>.openai.azure.com (the adapter calls
    {endpoint}/openai/v1/batches)."""
    base_url: HttpUrl = ""
    """Full API root instead of endpoint (optional)."""
    key_env: EnvName = "AZURE_OPENAI_API_KEY"
    """Env var NAME of the resource key (default AZURE_OPENAI_API_KEY)."""


class AnthropicBatchOptions(BatchOptions):
    """Options of an ``anthropic-batch`` backend."""

    base_url: HttpUrl = ""
    """API root without /v1 (default https://api.anthropic.com)."""
    key_env: EnvName = "ANTHROPIC_API_KEY"
    """Env var NAME of the workspace or incident-response key (default ANTHROPIC_API_KEY)."""


_STR = {"type": "string", "minLength": 1}
_BASE = {"backend": {"type": "string"}, "label": {"type": "string"}}
_META = {"type": "object", "additionalProperties": {"type": "string"},
         "description": "batch metadata pairs that mark the integration's batches"}

OPENAI_KEY_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["project"],
    "properties": {
        **_BASE,
        "project": {**_STR, "description": "project id, proj_..."},
        "api_key_id": {**_STR, "description": "project API key id, key_..."},
        "service_account_id": {**_STR,
                               "description": "project service account id (all its keys)"},
    },
    "oneOf": [{"required": ["api_key_id"]}, {"required": ["service_account_id"]}],
}
ANTHROPIC_KEY_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["api_key_id"],
    "properties": {**_BASE, "api_key_id": {**_STR, "description": "API key id, apikey_..."}},
}
OPENAI_BATCH_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["metadata"],
    "properties": {**_BASE, "metadata": _META,
                   "project": {**_STR, "description": "OpenAI-Project header, proj_..."}},
}
AZURE_BATCH_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["metadata"],
    "properties": {**_BASE, "metadata": _META},
}
ANTHROPIC_BATCH_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["workspace"],
    "properties": {**_BASE, "workspace": {
        **_STR, "description": "the integration's dedicated workspace, wrkspc_..."}},
}

_OPENAI_KEY = "OpenAI admin key (organization owner)"
_OPENAI_PERMS = (
    f"{_OPENAI_KEY}: api.management.read (GET the key or service account)",
    f"{_OPENAI_KEY}: api.management.write (DELETE /organization/projects/{{project}}/"
    "api_keys|service_accounts/{id})",
)
_OPENAI_ISSUE_PERMS = (
    f"{_OPENAI_KEY}: api.management.read (GET /organization/projects/{{project}}/"
    "service_accounts)",
    f"{_OPENAI_KEY}: api.management.write (POST /organization/projects/{{project}}/"
    "service_accounts: a new account with its key)",
)


def _openai_grants(action: str, ref: Mapping[str, Any], options: Any,
                   step: Mapping[str, Any]) -> list[Grant]:
    project = str(ref.get("project") or "")
    if action == "credential.issue":
        accounts = f"/v1/organization/projects/{project}/service_accounts"
        return [Grant(f"{_OPENAI_KEY}: api.management.read", f"GET {accounts}"),
                Grant(f"{_OPENAI_KEY}: api.management.write", f"POST {accounts}",
                      note="creates killswitch-rotation-<run>-<integration> with a new key"),
                Grant(f"{_OPENAI_KEY}: api.management.write", f"DELETE {accounts}/{{id}}",
                      note="only an account of the same run whose key was lost")]
    if ref.get("api_key_id"):
        path = f"/v1/organization/projects/{project}/api_keys/{ref['api_key_id']}"
    else:
        path = (f"/v1/organization/projects/{project}/service_accounts/"
                f"{ref.get('service_account_id', '')}")
    return [Grant(f"{_OPENAI_KEY}: api.management.read", f"GET {path}"),
            Grant(f"{_OPENAI_KEY}: api.management.write", f"DELETE {path}",
                  note="irreversible: OpenAI has no disable")]


OPENAI = AdapterSpec(
    name="openai",
    options=OpenAIAdminOptions,
    actions={
        "credential.disable": ActionSpec("credential.disable", "credentials", False, "",
                                         _OPENAI_PERMS, OPENAI_KEY_REF),
        "credential.destroy": ActionSpec("credential.destroy", "credentials", False, "",
                                         _OPENAI_PERMS, OPENAI_KEY_REF),
        # rotation: a new service account and key (undo deletes it); the old key's retire
        # is the delete above, irreversible
        "credential.issue": ActionSpec("credential.issue", "credentials", True,
                                       "credential.destroy", _OPENAI_ISSUE_PERMS,
                                       OPENAI_KEY_REF),
        "credential.retire": ActionSpec("credential.retire", "credentials", False, "",
                                        _OPENAI_PERMS, OPENAI_KEY_REF),
    },
    iam="token",
    grants=_openai_grants,
)
"""The openai adapter's declarations."""

_ANTHROPIC_KEY = "Anthropic admin key (sk-ant-admin..., organization admin)"
_ANTHROPIC_PERMS = (f"{_ANTHROPIC_KEY}: GET /v1/organizations/api_keys/{{id}}",
                    f"{_ANTHROPIC_KEY}: POST /v1/organizations/api_keys/{{id}} (status)")


def _anthropic_grants(action: str, ref: Mapping[str, Any], options: Any,
                      step: Mapping[str, Any]) -> list[Grant]:
    path = f"/v1/organizations/api_keys/{ref.get('api_key_id', '')}"
    if action == "credential.issue":
        return [Grant(_ANTHROPIC_KEY, f"GET {path}", note="the old key's hint: not pasted again"),
                Grant(_ANTHROPIC_KEY, "GET /v1/organizations/api_keys?status=active",
                      note="finds the pasted key's id; the key itself is created in the "
                      "Claude Console")]
    status = "inactive" if action in ("credential.disable", "credential.retire") else "active"
    return [Grant(_ANTHROPIC_KEY, f"GET {path}"),
            Grant(_ANTHROPIC_KEY, f"POST {path} (status {status})")]


ANTHROPIC = AdapterSpec(
    name="anthropic",
    options=AnthropicAdminOptions,
    actions={
        "credential.disable": ActionSpec("credential.disable", "credentials", True,
                                         "credential.enable", _ANTHROPIC_PERMS,
                                         ANTHROPIC_KEY_REF),
        "credential.enable": ActionSpec("credential.enable", "credentials", True,
                                        "credential.disable", _ANTHROPIC_PERMS,
                                        ANTHROPIC_KEY_REF),
        # rotation: the new key is pasted (the Admin API cannot create keys) and checked;
        # undo sets it inactive; retire sets the old one inactive (undo: active, consent)
        "credential.issue": ActionSpec(
            "credential.issue", "credentials", True, "credential.disable",
            (f"{_ANTHROPIC_KEY}: GET /v1/organizations/api_keys (find the pasted key)",
             f"{_ANTHROPIC_KEY}: GET /v1/organizations/api_keys/{{id}}"), ANTHROPIC_KEY_REF),
        "credential.retire": ActionSpec("credential.retire", "credentials", True,
                                        "credential.enable", _ANTHROPIC_PERMS,
                                        ANTHROPIC_KEY_REF),
    },
    iam="token",
    grants=_anthropic_grants,
)
"""The anthropic adapter's declarations."""


def _openai_batch_grants(action: str, ref: Mapping[str, Any], options: Any,
                         step: Mapping[str, Any]) -> list[Grant]:
    project = str(ref.get("project") or "")
    key = (f"OpenAI project key of {project}" if project else "OpenAI project key of the "
           "integration's project") + " (or an incident-response key; a restricted key "
    key += "needs write access to Batch)"
    return [Grant(key, "GET /v1/batches"), Grant(key, "GET /v1/batches/{id}"),
            Grant(key, "POST /v1/batches/{id}/cancel",
                  note="only batches whose metadata matches the reference")]


OPENAI_BATCH = AdapterSpec(
    name="openai-batch",
    options=OpenAIBatchOptions,
    actions={"batch.cancel": ActionSpec(
        "batch.cancel", "batches", False, "",
        ("project API key (or incident-response key) of the integration's project: "
         "GET /batches, GET /batches/{id}, POST /batches/{id}/cancel",), OPENAI_BATCH_REF)},
    iam="token",
    grants=_openai_batch_grants,
)
"""The openai-batch adapter's declarations."""


def _azure_batch_grants(action: str, ref: Mapping[str, Any], options: Any,
                        step: Mapping[str, Any]) -> list[Grant]:
    where = str(getattr(options, "endpoint", "") or getattr(options, "base_url", "") or
                "the Azure OpenAI resource")
    key = (f"Azure OpenAI resource key of {where} (or Entra ID role Cognitive Services "
           "OpenAI Contributor on the resource)")
    return [Grant(key, "GET /openai/v1/batches"),
            Grant(key, "POST /openai/v1/batches/{id}/cancel",
                  note="only batches whose metadata matches the reference")]


AZURE_OPENAI_BATCH = AdapterSpec(
    name="azure-openai-batch",
    options=AzureOpenAIBatchOptions,
    actions={"batch.cancel": ActionSpec(
        "batch.cancel", "batches", False, "",
        ("Azure OpenAI resource key (or Cognitive Services OpenAI Contributor): "
         "GET /openai/v1/batches, POST /openai/v1/batches/{id}/cancel",), AZURE_BATCH_REF)},
    iam="token",
    grants=_azure_batch_grants,
)
"""The azure-openai-batch adapter's declarations."""


def _anthropic_batch_grants(action: str, ref: Mapping[str, Any], options: Any,
                            step: Mapping[str, Any]) -> list[Grant]:
    key = (f"Anthropic API key of workspace {ref.get('workspace', '?')} (or an "
           "incident-response key allowed in it; not an admin key)")
    return [Grant(key, "GET /v1/messages/batches"),
            Grant(key, "POST /v1/messages/batches/{id}/cancel")]


ANTHROPIC_BATCH = AdapterSpec(
    name="anthropic-batch",
    options=AnthropicBatchOptions,
    actions={"batch.cancel": ActionSpec(
        "batch.cancel", "batches", False, "",
        ("workspace API key of the integration's workspace (or an incident-response key "
         "allowed in it): GET /v1/messages/batches, POST /v1/messages/batches/{id}/cancel",),
        ANTHROPIC_BATCH_REF)},
    iam="token",
    grants=_anthropic_batch_grants,
)
"""The anthropic-batch adapter's declarations."""
