"""Declarations of the AWS adapters: options, references, IAM actions and resource ARNs.

Every ``aws-*`` backend (and ``bedrock-batch``) takes the options of :class:`AwsOptions`;
``timeout`` in a backend table is the console's per-operation timeout, as for any backend.

Each adapter's :func:`grants` names the IAM actions one action on one reference calls, on the
narrowest resource the reference allows (the account is ``*``: the console does not know
it; the region is the backend's, else ``*``). Actions without resource-level permissions
(``Describe*``, ``List*`` of EC2 and Bedrock) are on ``*``. KMS actions are limited to calls
made through the service (``kms:ViaService``) and matter only for customer-managed keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, EnvName, FilePath, HttpUrl, Seconds, Wait
from adapters.specs import AdapterSpec, Grant

__all__ = [
    "AWS_IAM",
    "AWS_SECRETS",
    "AWS_SG",
    "AWS_SSM",
    "BEDROCK_BATCH",
    "METHODS",
    "AwsOptions",
    "BedrockBatchOptions",
    "IamOptions",
    "SecretsManagerOptions",
]

METHODS = ("schedule-deletion", "tombstone")
"""Reversible Secrets Manager disable methods; the first is the default."""


class AwsOptions(AdapterOptions):
    """Options of every ``aws-*`` backend: where the console's AWS credentials come from."""

    region: str = ""
    """AWS region, e.g. us-east-1 (default: profile / AWS_REGION, else us-east-1)."""
    endpoint_url: HttpUrl = ""
    """Service endpoint override, e.g. http://127.0.0.1:5055 for moto (optional)."""
    profile: str = ""
    """Named AWS profile for the console's credentials (optional)."""
    credentials_file: FilePath = ""
    """Shared-credentials file holding that profile (optional; default ~/.aws/credentials)."""
    access_key_env: EnvName = ""
    """Env var NAME holding an access key id (optional; else the standard chain)."""
    secret_key_env: EnvName = ""
    """Env var NAME holding the secret access key (with access_key_env)."""
    session_token_env: EnvName = ""
    """Env var NAME holding a session token (optional)."""


class IamOptions(AwsOptions):
    """Options of an ``aws-iam`` backend."""

    probe_keys: Literal["auto", "on", "off"] = "auto"
    """Test keys at STS (GetCallerIdentity signed with the key): proof that a key is dead and
    that a rotation's new key works. auto (default): on for AWS itself, off when
    endpoint_url points elsewhere (moto accepts any signature unless it checks IAM users'
    keys, as the sandbox's does); on; off."""
    cloudtrail_endpoint_url: HttpUrl = ""
    """CloudTrail endpoint for evidence (LookupEvents of each access key), e.g.
    http://127.0.0.1:8397 for the sandbox's stand-in (default: AWS's own endpoint of each
    region; endpoint_url is not used for CloudTrail)."""
    cloudtrail_regions: tuple[Annotated[str, Field(pattern=r"^[a-z0-9-]+$")], ...] = ()
    """Regions whose CloudTrail event history evidence searches for the keys' events
    (default: the backend's region, else us-east-1; IAM's own events are in us-east-1)."""


class SecretsManagerOptions(AwsOptions):
    """Options of an ``aws-secrets`` backend."""

    method: Literal["schedule-deletion", "tombstone"] = "schedule-deletion"
    """Default disable method: schedule-deletion (default) or tombstone."""
    recovery_window_days: int = Field(default=7, ge=7, le=30)
    """Recovery window for schedule-deletion, 7..30 days (default 7)."""


class BedrockBatchOptions(AwsOptions):
    """Options of a ``bedrock-batch`` backend."""

    request_timeout: Seconds = Field(default=30.0,
                                     validation_alias=AliasChoices("request_timeout", "timeout"))
    """Seconds per API call (default 30)."""
    wait: Wait = 60.0
    """Seconds verify waits for stopping -> stopped (default 60); keep it below the
    backend's operation timeout."""


_STR = {"type": "string", "minLength": 1}


def _ref(props: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {"backend": {"type": "string"}, "label": {"type": "string"},
                           **props}}


SECRET_REF = _ref({
    "secret_id": {**_STR, "description": "secret name or ARN (SecretId)"},
    "method": {"enum": list(METHODS), "description": "disable method for this secret "
               "(default: the backend's)"},
    "recovery_window_days": {"type": "integer", "minimum": 7, "maximum": 30,
                             "description": "recovery window of schedule-deletion, days"},
    "field": {**_STR, "description": "JSON field holding the key (proof, scan)"},
}, ["secret_id"])
PARAMETER_REF = _ref({
    "name": {**_STR, "description": "parameter name, e.g. /ai/bot/openai"},
    "field": {**_STR, "description": "JSON field holding the key (proof, scan)"},
}, ["name"])
ACCESS_KEY_REF = _ref({
    "user": {**_STR, "description": "IAM user name (always sent as UserName)"},
    "access_key_id": {**_STR, "description": "one key id; default: every key of the user"},
}, ["user"])
GROUP_REF = {
    **_ref({
        "group_id": {**_STR, "pattern": "^sg-", "description": "security group id, sg-..."},
        "group_name": {**_STR, "description": "group name (instead of group_id)"},
        "vpc_id": {**_STR, "description": "VPC of group_name (optional)"},
        "destinations": {"type": "array", "minItems": 1, "items": _STR,
                         "description": "IPv4/IPv6 addresses or CIDRs (no hostnames)"},
    }, ["destinations"]),
    "anyOf": [{"required": ["group_id"]}, {"required": ["group_name"]}],
}
JOB_PREFIX_REF = _ref({
    "name_prefix": {**_STR, "description": "jobName prefix of the integration's jobs"},
}, ["name_prefix"])


def _region(options: Any) -> str:
    return str(getattr(options, "region", "") or "*")


def _via(service: str, options: Any) -> dict[str, Any]:
    region = _region(options)
    op = "StringEquals" if region != "*" else "StringLike"
    return {op: {"kms:ViaService": f"{service}.{region}.amazonaws.com"}}


# -- Secrets Manager ------------------------------------------------------------------------

_SM_READ = ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")


def secret_arn(secret_id: str, region: str) -> str:
    """The ARN of a secret named by name or ARN (``-??????`` matches the random suffix)."""
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:*:secret:{secret_id}-??????"


def _secrets_grants(action: str, ref: Mapping[str, Any], options: Any,
                    step: Mapping[str, Any]) -> list[Grant]:
    arn = secret_arn(str(ref.get("secret_id") or ""), _region(options))
    method = str(step.get("method") or ref.get("method") or
                 getattr(options, "method", "") or METHODS[0])
    names = list(_SM_READ)
    kms = ["kms:Decrypt"]
    if action == "credential.write":  # rotation: a new AWSCURRENT (undo: move it back)
        names += ["secretsmanager:PutSecretValue", "secretsmanager:RestoreSecret",
                  "secretsmanager:UpdateSecretVersionStage"]
        kms.append("kms:GenerateDataKey")
    elif action == "credential.destroy" or (action == "credential.disable" and
                                            method == "schedule-deletion"):
        names.append("secretsmanager:DeleteSecret")
    elif action == "credential.enable" and method == "schedule-deletion":
        names.append("secretsmanager:RestoreSecret")
    elif action == "credential.disable":
        names += ["secretsmanager:PutSecretValue", "secretsmanager:ListSecretVersionIds",
                  "secretsmanager:UpdateSecretVersionStage"]
        kms.append("kms:GenerateDataKey")
    elif action == "credential.enable":
        names.append("secretsmanager:UpdateSecretVersionStage")
    via = _via("secretsmanager", options)
    return [Grant(n, arn) for n in names] + [
        Grant(k, "*", via, "only for secrets encrypted with a customer-managed KMS key")
        for k in kms]


AWS_SECRETS = AdapterSpec(
    name="aws-secrets",
    options=SecretsManagerOptions,
    actions={
        "credential.disable": ActionSpec(
            "credential.disable", "credentials", True, "credential.enable",
            (*_SM_READ, "secretsmanager:DeleteSecret", "secretsmanager:PutSecretValue",
             "secretsmanager:ListSecretVersionIds", "secretsmanager:UpdateSecretVersionStage",
             "kms:Decrypt", "kms:GenerateDataKey"), SECRET_REF),
        "credential.enable": ActionSpec(
            "credential.enable", "credentials", True, "credential.disable",
            (*_SM_READ, "secretsmanager:RestoreSecret",
             "secretsmanager:UpdateSecretVersionStage", "kms:Decrypt"), SECRET_REF),
        "credential.destroy": ActionSpec(
            "credential.destroy", "credentials", False, "",
            (*_SM_READ, "secretsmanager:DeleteSecret", "kms:Decrypt"), SECRET_REF),
        "credential.write": ActionSpec(
            "credential.write", "credentials", True, "credential.write",
            (*_SM_READ, "secretsmanager:PutSecretValue", "secretsmanager:RestoreSecret",
             "secretsmanager:UpdateSecretVersionStage", "kms:Decrypt", "kms:GenerateDataKey"),
            SECRET_REF),
    },
    iam="aws",
    grants=_secrets_grants,
)
"""The aws-secrets adapter's declarations."""


# -- SSM Parameter Store ---------------------------------------------------------------------

_SSM_READ = ("ssm:GetParameter", "ssm:GetParameterHistory", "kms:Decrypt")


def parameter_arn(name: str, region: str) -> str:
    """The ARN of an SSM parameter (``/a/b`` and ``a`` alike)."""
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:*:parameter/{name.lstrip('/')}"


def _ssm_grants(action: str, ref: Mapping[str, Any], options: Any,
                step: Mapping[str, Any]) -> list[Grant]:
    arn = parameter_arn(str(ref.get("name") or ""), _region(options))
    write = "ssm:DeleteParameter" if action == "credential.destroy" else "ssm:PutParameter"
    via = _via("ssm", options)
    out = [Grant("ssm:GetParameter", arn), Grant("ssm:GetParameterHistory", arn),
           Grant(write, arn),
           Grant("kms:Decrypt", "*", via, "SecureString with a customer-managed KMS key")]
    if write == "ssm:PutParameter":
        out.append(Grant("kms:Encrypt", "*", via,
                         "SecureString with a customer-managed KMS key"))
    return out


AWS_SSM = AdapterSpec(
    name="aws-ssm",
    options=AwsOptions,
    actions={
        "credential.disable": ActionSpec(
            "credential.disable", "credentials", True, "credential.enable",
            (*_SSM_READ, "ssm:PutParameter", "kms:Encrypt"), PARAMETER_REF),
        "credential.enable": ActionSpec(
            "credential.enable", "credentials", True, "credential.disable",
            (*_SSM_READ, "ssm:PutParameter", "kms:Encrypt"), PARAMETER_REF),
        "credential.destroy": ActionSpec(
            "credential.destroy", "credentials", False, "",
            (*_SSM_READ, "ssm:DeleteParameter"), PARAMETER_REF),
        "credential.write": ActionSpec(
            "credential.write", "credentials", True, "credential.write",
            (*_SSM_READ, "ssm:PutParameter", "kms:Encrypt"), PARAMETER_REF),
    },
    iam="aws",
    grants=_ssm_grants,
)
"""The aws-ssm adapter's declarations."""


# -- IAM access keys -------------------------------------------------------------------------


def _iam_grants(action: str, ref: Mapping[str, Any], options: Any,
                step: Mapping[str, Any]) -> list[Grant]:
    user = str(ref.get("user") or "")
    users = [f"arn:aws:iam::*:user/{user}", f"arn:aws:iam::*:user/*/{user}"]
    write = {"credential.destroy": "iam:DeleteAccessKey",
             "credential.issue": "iam:CreateAccessKey"}.get(action, "iam:UpdateAccessKey")
    return [Grant(n, u) for n in ("iam:ListAccessKeys", write) for u in users]


AWS_IAM = AdapterSpec(
    name="aws-iam",
    options=IamOptions,
    actions={
        "credential.disable": ActionSpec(
            "credential.disable", "credentials", True, "credential.enable",
            ("iam:ListAccessKeys", "iam:UpdateAccessKey"), ACCESS_KEY_REF),
        "credential.enable": ActionSpec(
            "credential.enable", "credentials", True, "credential.disable",
            ("iam:ListAccessKeys", "iam:UpdateAccessKey"), ACCESS_KEY_REF),
        "credential.destroy": ActionSpec(
            "credential.destroy", "credentials", False, "",
            ("iam:ListAccessKeys", "iam:DeleteAccessKey"), ACCESS_KEY_REF),
        # rotation: a new access key (undo: deactivate it), then the old one(s) Inactive
        "credential.issue": ActionSpec(
            "credential.issue", "credentials", True, "credential.disable",
            ("iam:ListAccessKeys", "iam:CreateAccessKey"), ACCESS_KEY_REF),
        "credential.retire": ActionSpec(
            "credential.retire", "credentials", True, "credential.enable",
            ("iam:ListAccessKeys", "iam:UpdateAccessKey"), ACCESS_KEY_REF),
    },
    iam="aws",
    grants=_iam_grants,
)
"""The aws-iam adapter's declarations."""


# -- EC2 security-group egress --------------------------------------------------------------

_SG_READ = ("ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules")


def _sg_grants(action: str, ref: Mapping[str, Any], options: Any,
               step: Mapping[str, Any]) -> list[Grant]:
    region = _region(options)
    gid = str(ref.get("group_id") or "")
    group = f"arn:aws:ec2:{region}:*:security-group/{gid or '*'}"
    rules = f"arn:aws:ec2:{region}:*:security-group-rule/*"
    write = ("ec2:AuthorizeSecurityGroupEgress" if action == "egress.unblock"
             else "ec2:RevokeSecurityGroupEgress")
    note = "" if gid else "the reference names the group by name: give group_id to narrow it"
    return [Grant(n, "*", note="no resource-level permissions") for n in _SG_READ] + [
        Grant(write, group, note=note), Grant(write, rules)]


AWS_SG = AdapterSpec(
    name="aws-sg",
    options=AwsOptions,
    actions={
        "egress.block": ActionSpec("egress.block", "egress", True, "egress.unblock",
                                   (*_SG_READ, "ec2:RevokeSecurityGroupEgress"), GROUP_REF),
        "egress.unblock": ActionSpec("egress.unblock", "egress", True, "egress.block",
                                     (*_SG_READ, "ec2:AuthorizeSecurityGroupEgress"),
                                     GROUP_REF),
    },
    iam="aws",
    grants=_sg_grants,
)
"""The aws-sg adapter's declarations."""


# -- Bedrock batch inference -----------------------------------------------------------------


def _bedrock_grants(action: str, ref: Mapping[str, Any], options: Any,
                    step: Mapping[str, Any]) -> list[Grant]:
    jobs = f"arn:aws:bedrock:{_region(options)}:*:model-invocation-job/*"
    return [Grant("bedrock:ListModelInvocationJobs", "*", note="no resource-level "
                  "permissions"),
            Grant("bedrock:GetModelInvocationJob", jobs),
            Grant("bedrock:StopModelInvocationJob", jobs,
                  note="job ids are not known in advance; the adapter stops only jobs "
                  f"named {ref.get('name_prefix', '')}*")]


BEDROCK_BATCH = AdapterSpec(
    name="bedrock-batch",
    options=BedrockBatchOptions,
    actions={"batch.cancel": ActionSpec(
        "batch.cancel", "batches", False, "",
        ("bedrock:ListModelInvocationJobs", "bedrock:GetModelInvocationJob",
         "bedrock:StopModelInvocationJob"), JOB_PREFIX_REF)},
    iam="aws",
    grants=_bedrock_grants,
)
"""The bedrock-batch adapter's declarations."""
