"""Declarations of the Google Cloud adapters: options, references, IAM permissions.

:func:`grants` of each adapter names the IAM permissions one action on one reference needs
and the resource to grant them on (a secret, a service account, a project's location), so
``killswitch permissions`` can print a custom role and where to bind it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, HttpUrl, Seconds, Wait
from adapters.specs import AdapterSpec, Grant

__all__ = [
    "GCP_KEYS",
    "GCP_SECRETS",
    "VERTEX_BATCH",
    "GcpKeysOptions",
    "GcpSecretsOptions",
    "VertexBatchOptions",
]


class GcpSecretsOptions(AdapterOptions):
    """Options of a ``gcp-secrets`` backend (credentials: Google ADC unless anonymous)."""

    project: str = ""
    """Default project id (references by secret id, and scan)."""
    endpoint: HttpUrl = ""
    """API endpoint, e.g. http://127.0.0.1:8383 for the sandbox (default: Google); the
    http:// scheme selects plain HTTP."""
    regional_endpoint: HttpUrl = ""
    """Endpoint of regional secrets; may contain {location} (default
    https://secretmanager.{location}.rep.googleapis.com; sandbox http://127.0.0.1:8384)."""
    anonymous: bool = False
    """Send no credentials (sandbox only); default: Google ADC."""
    request_timeout: Seconds = 30.0
    """Seconds per API call (default 30)."""


class GcpKeysOptions(AdapterOptions):
    """Options of a ``gcp-keys`` backend (credentials: Google ADC unless anonymous)."""

    endpoint: HttpUrl = ""
    """IAM API root (default https://iam.googleapis.com; http://127.0.0.1:8383 sandbox)."""
    anonymous: bool = False
    """Send no Authorization header (sandbox only); default: Google ADC."""
    project: str = ""
    """Project of service accounts whose email does not name one (optional)."""
    request_timeout: Seconds = 30.0
    """Seconds per HTTP call (default 30)."""


class VertexBatchOptions(AdapterOptions):
    """Options of a ``vertex-batch`` backend (credentials: Google ADC unless anonymous)."""

    base_url: HttpUrl = ""
    """API host; may contain {location} (default: the location's host:
    https://{location}-aiplatform.googleapis.com, aiplatform.googleapis.com for global,
    aiplatform.{us|eu}.rep.googleapis.com for the multi-regions)."""
    anonymous: bool = False
    """Send no credentials (sandbox only); default: Google ADC."""
    request_timeout: Seconds = Field(default=30.0,
                                     validation_alias=AliasChoices("request_timeout", "timeout"))
    """Seconds per HTTP call (default 30)."""
    wait: Wait = 60.0
    """Seconds verify waits for cancelling -> cancelled (default 60); keep it below the
    backend's operation timeout."""


_STR = {"type": "string", "minLength": 1}
_BASE = {"backend": {"type": "string"}, "label": {"type": "string"}}

SECRET_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_BASE,
        "name": {**_STR, "description": "projects/P/secrets/S, projects/P/locations/L/secrets/S "
                 "(regional), or the secret id with `project`"},
        "secret": {**_STR, "description": "alias of `name` (prefer name: the audit scrubber "
                   "redacts fields called secret)"},
        "project": {**_STR, "description": "project id when `name` is a secret id"},
        "location": {**_STR, "pattern": "^[a-z][a-z0-9-]*$",
                     "description": "location of a regional secret named by its id"},
        "field": {**_STR, "description": "JSON field holding the key (proof, scan)"},
    },
    "anyOf": [{"required": ["name"]}, {"required": ["secret"]}],
}
KEY_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["service_account"],
    "properties": {
        **_BASE,
        "service_account": {**_STR, "pattern": r"^[^@\s/]+@[^@\s/]+$",
                            "description": "service account email, sa@p.iam.gserviceaccount.com"},
        "key": {**_STR, "description": "key id; omitted: every user-managed key"},
        "project": {**_STR, "description": "project id (default: from the email)"},
    },
}
JOBS_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["project", "location", "labels"],
    "properties": {
        **_BASE,
        "project": {**_STR, "description": "project id of the jobs"},
        "location": {**_STR, "description": "region of the jobs, e.g. europe-west4"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "job labels that mark the integration's jobs"},
    },
}


def secret_name(ref: Mapping[str, Any], options: Any) -> str:
    """``projects/P[/locations/L]/secrets/S`` of a reference (a bare id: the reference's or
    the backend's project, and the reference's location)."""
    sid = str(ref.get("name") or ref.get("secret") or "").strip().strip("/")
    if sid.startswith("projects/"):
        parts = sid.split("/")
        return "/".join(parts[:6] if len(parts) > 2 and parts[2] == "locations" else parts[:4])
    project = str(ref.get("project") or getattr(options, "project", "") or "PROJECT")
    where = f"/locations/{ref['location']}" if ref.get("location") else ""
    return f"projects/{project}{where}/secrets/{sid}"


def _secret_grants(action: str, ref: Mapping[str, Any], options: Any,
                   step: Mapping[str, Any]) -> list[Grant]:
    name = secret_name(ref, options)
    if action == "credential.write":
        return [Grant("secretmanager.versions.list", name),
                Grant("secretmanager.versions.access", name,
                      note="the copy's current value (its JSON shape is kept) and verify"),
                Grant("secretmanager.versions.add", name,
                      note="rotation: a new version holding the new key")]
    verb = {"credential.disable": "disable", "credential.enable": "enable",
            "credential.destroy": "destroy"}.get(action, "")
    out = [Grant("secretmanager.versions.list", name),
           Grant("secretmanager.versions.access", name, note="verify and proof of death")]
    return out + ([Grant(f"secretmanager.versions.{verb}", name)] if verb else [])


GCP_SECRETS = AdapterSpec(
    name="gcp-secrets",
    options=GcpSecretsOptions,
    actions={
        kind: ActionSpec(kind, "credentials", kind != "credential.destroy", inverse,
                         ("secretmanager.versions.list", "secretmanager.versions.access",
                          f"secretmanager.versions.{verb}"), SECRET_REF)
        for kind, inverse, verb in (
            ("credential.disable", "credential.enable", "disable"),
            ("credential.enable", "credential.disable", "enable"),
            ("credential.destroy", "", "destroy"))
    } | {
        # rotation: a new version holding the new key; undo writes the previous value back
        # as a newer version (disabling the new one would break reads of versions/latest)
        "credential.write": ActionSpec(
            "credential.write", "credentials", True, "credential.write",
            ("secretmanager.versions.list", "secretmanager.versions.access",
             "secretmanager.versions.add"), SECRET_REF)},
    iam="gcp",
    grants=_secret_grants,
)
"""The gcp-secrets adapter's declarations."""


def service_account_name(ref: Mapping[str, Any], options: Any) -> str:
    """``projects/P/serviceAccounts/EMAIL`` of a reference."""
    sa = str(ref.get("service_account") or "").strip()
    m = re.search(r"@([^.]+)\.iam\.gserviceaccount\.com$", sa)
    project = str(ref.get("project") or (m.group(1) if m else "") or
                  getattr(options, "project", "") or "-")
    return f"projects/{project}/serviceAccounts/{sa}"


def _key_grants(action: str, ref: Mapping[str, Any], options: Any,
                step: Mapping[str, Any]) -> list[Grant]:
    name = service_account_name(ref, options)
    if action == "credential.issue":
        return [Grant("iam.serviceAccountKeys.list", name),
                Grant("iam.serviceAccountKeys.create", name,
                      note="rotation: a new JSON key file (org policy "
                      "iam.disableServiceAccountKeyCreation must allow it)"),
                Grant("iam.serviceAccountKeys.get", name,
                      note="verify: the new key's published public key")]
    verb = {"credential.disable": "disable", "credential.enable": "enable",
            "credential.destroy": "delete", "credential.retire": "disable"}.get(action, "")
    return [Grant("iam.serviceAccountKeys.list", name)] + (
        [Grant(f"iam.serviceAccountKeys.{verb}", name)] if verb else [])


GCP_KEYS = AdapterSpec(
    name="gcp-keys",
    options=GcpKeysOptions,
    actions={
        kind: ActionSpec(kind, "credentials", kind != "credential.destroy", inverse,
                         ("iam.serviceAccountKeys.list", f"iam.serviceAccountKeys.{verb}"),
                         KEY_REF)
        for kind, inverse, verb in (
            ("credential.disable", "credential.enable", "disable"),
            ("credential.enable", "credential.disable", "enable"),
            ("credential.destroy", "", "delete"),
            # rotation: retire disables the old key(s) (undo: enable, with consent)
            ("credential.retire", "credential.enable", "disable"))
    } | {
        # rotation: a new key of the same account (undo disables it)
        "credential.issue": ActionSpec(
            "credential.issue", "credentials", True, "credential.disable",
            ("iam.serviceAccountKeys.list", "iam.serviceAccountKeys.create",
             "iam.serviceAccountKeys.get"), KEY_REF)},
    iam="gcp",
    grants=_key_grants,
)
"""The gcp-keys adapter's declarations."""


def _job_grants(action: str, ref: Mapping[str, Any], options: Any,
                step: Mapping[str, Any]) -> list[Grant]:
    project = str(ref.get("project") or "PROJECT")
    where = f"projects/{project}"
    note = f"jobs in {ref.get('location', '?')} labelled " + ",".join(
        f"{k}={v}" for k, v in sorted(dict(ref.get("labels") or {}).items()))
    return [Grant(f"aiplatform.batchPredictionJobs.{verb}", where, note=note)
            for verb in ("list", "get", "cancel")]


VERTEX_BATCH = AdapterSpec(
    name="vertex-batch",
    options=VertexBatchOptions,
    actions={"batch.cancel": ActionSpec(
        "batch.cancel", "batches", False, "",
        ("aiplatform.batchPredictionJobs.list", "aiplatform.batchPredictionJobs.get",
         "aiplatform.batchPredictionJobs.cancel"), JOBS_REF)},
    iam="gcp",
    grants=_job_grants,
)
"""The vertex-batch adapter's declarations."""
