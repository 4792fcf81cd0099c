"""Evidence from AWS: IAM access keys and their CloudTrail events, Secrets Manager and SSM
version histories (read-only calls only, never a secret value).

``aws-iam`` (:class:`~adapters.aws_iam.IamAccessKeyAdapter`), per reference:

* ``keys``: ``ListAccessKeys`` of the user (paginated): AccessKeyId, Status, CreateDate
  (only the key the reference names, when it names one);
* ``last-used``: ``GetAccessKeyLastUsed`` of each key: LastUsedDate, ServiceName, Region;
* ``cloudtrail``: ``LookupEvents`` with ``LookupAttributes=[{AttributeKey: AccessKeyId,
  AttributeValue: <key id>}]`` over the last 24 h, every page (``NextToken``, 50 events a
  page, at most 20 pages), in each region of ``cloudtrail_regions`` (default: the
  backend's region). Events keep EventId, EventName, ReadOnly, AccessKeyId, EventTime,
  EventSource, Username, Resources and the full ``CloudTrailEvent`` (parsed from its JSON
  string), redacted like everything else. One item per key and region,
  ``cloudtrail-<key id>-<region>``. CloudTrail is reached at ``cloudtrail_endpoint_url``
  (the sandbox's stand-in, :mod:`console.sandbox.api_cloudtrail`) or AWS's own endpoint,
  never at ``endpoint_url`` (moto does not implement LookupEvents).

``aws-secrets``: ``secret`` (``DescribeSecret``: dates, rotation, KMS key, tags, the
stages of each version) and ``versions`` (``ListSecretVersionIds`` with
``IncludeDeprecated=True``: VersionId, VersionStages, CreatedDate, LastAccessedDate) —
never ``GetSecretValue``.

``aws-ssm``: ``versions``: ``GetParameterHistory`` with ``WithDecryption=False``, every
entry without its ``Value`` (Version, Type, LastModifiedDate, LastModifiedUser, Labels,
KeyId, Tier, Policies, Description, DataType).

Shapes: botocore's service models (``iam``, ``cloudtrail`` 2013-11-01 ``LookupEvents``,
``secretsmanager``, ``ssm``). Permissions: ``iam:ListAccessKeys``,
``iam:GetAccessKeyLastUsed``, ``cloudtrail:LookupEvents``, ``secretsmanager:DescribeSecret``,
``secretsmanager:ListSecretVersionIds``, ``ssm:GetParameterHistory``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.aws_common import AwsClients
from adapters.aws_iam import _matches
from adapters.evidence import EvidenceSink
from adapters.preserve_common import (
    MAX_PAGES,
    jsonable,
    pick,
    redact_json,
    run_source,
    safe_name,
    window,
    write_json,
)

if TYPE_CHECKING:
    from adapters.aws_iam import IamAccessKeyAdapter
    from adapters.aws_secrets import SecretsManagerAdapter
    from adapters.aws_ssm import SsmParameterAdapter

__all__ = ["lookup_events", "preserve_iam", "preserve_secret", "preserve_ssm"]

_KEY_ID = re.compile(r"^(?:AKIA|ASIA)[A-Z0-9]{12,124}$")
EVENT_FIELDS = ("EventId", "EventName", "ReadOnly", "AccessKeyId", "EventTime",
                "EventSource", "Username", "Resources")
SECRET_FIELDS = ("ARN", "Name", "Description", "KmsKeyId", "RotationEnabled",
                 "RotationLambdaARN", "RotationRules", "LastRotatedDate", "LastChangedDate",
                 "LastAccessedDate", "DeletedDate", "NextRotationDate", "VersionIdsToStages",
                 "OwningService", "CreatedDate", "PrimaryRegion", "ReplicationStatus")
SECRET_VERSION_FIELDS = ("VersionId", "VersionStages", "CreatedDate", "LastAccessedDate",
                         "KmsKeyIds")
PARAMETER_FIELDS = ("Name", "Type", "KeyId", "LastModifiedDate", "LastModifiedUser",
                    "Description", "Version", "Labels", "Tier", "Policies", "DataType")


# -- IAM + CloudTrail ------------------------------------------------------------------------


def lookup_events(client: Any, key_id: str) -> dict[str, Any]:
    """Every CloudTrail event of ``key_id`` in the last 24 h (one region's client)."""
    start, end = window()
    kw: dict[str, Any] = {"LookupAttributes": [{"AttributeKey": "AccessKeyId",
                                                "AttributeValue": key_id}],
                          "StartTime": start, "EndTime": end, "MaxResults": 50}
    events: list[dict[str, Any]] = []
    pages, capped = 0, False
    while True:
        page = client.lookup_events(**kw)
        pages += 1
        for e in page.get("Events") or []:
            item = pick(e, EVENT_FIELDS)
            raw = e.get("CloudTrailEvent")
            try:
                item["CloudTrailEvent"] = json.loads(raw) if raw else None
            except ValueError:
                item["CloudTrailEvent"] = raw
            events.append(item)
        token = page.get("NextToken")
        if not token:
            break
        if pages >= MAX_PAGES:
            capped = True
            break
        kw["NextToken"] = token
    return {"access_key_id": key_id, "start_time": start.isoformat(),
            "end_time": end.isoformat(), "events": events, "pages": pages, "capped": capped}


def _regions(adapter: IamAccessKeyAdapter) -> list[str]:
    regions = [str(r) for r in adapter.options.get("cloudtrail_regions") or ()]
    return regions or [adapter.aws.region or "us-east-1"]


def _cloudtrail(adapter: IamAccessKeyAdapter, region: str) -> AwsClients:
    """A client set whose ``cloudtrail`` client signs for ``region`` at the CloudTrail
    endpoint (``cloudtrail_endpoint_url``, else AWS's own)."""
    options = {**adapter.options, "region": region,
               "endpoint_url": str(adapter.options.get("cloudtrail_endpoint_url") or "")}
    clients = AwsClients(adapter.backend, options)
    clients.run_id_source = lambda: adapter.run_id
    return clients


def preserve_iam(adapter: IamAccessKeyAdapter, ref: Mapping[str, Any],
                 sink: EvidenceSink) -> None:
    """The user's keys, when each was last used, and each key's CloudTrail events."""
    user, key, target = adapter._ids(ref)
    found: list[str] = []

    def keys() -> dict[str, Any]:
        with adapter.aws.errors(target, "IAM"):
            pages = adapter.iam.get_paginator("list_access_keys").paginate(UserName=user)
            listed = [m for page in pages for m in page.get("AccessKeyMetadata") or []]
        mine = [m for m in listed if key is None or _matches(key, str(m["AccessKeyId"]))]
        found.extend(str(m["AccessKeyId"]) for m in mine)
        return {"user": user, "access_key_id": key, "keys": [
            pick(m, ("AccessKeyId", "Status", "CreateDate", "UserName")) for m in mine]}

    if not write_json(sink, "keys", "keys", keys) and key and _KEY_ID.match(key):
        found.append(key)  # the listing failed: the reference's own full key id still works

    last_used: dict[str, Any] = {}
    for kid in found:
        def one(kid: str = kid) -> None:
            with adapter.aws.errors(f"{user}/{kid}", "IAM"):
                got = adapter.iam.get_access_key_last_used(AccessKeyId=kid)
            last_used[kid] = jsonable(got.get("AccessKeyLastUsed") or {})

        run_source(sink, f"last-used {kid}", one)
    if last_used:
        run_source(sink, "last-used", lambda: sink.json(
            "last-used", redact_json({"user": user, "keys": last_used}), source="last-used"))

    for region in _regions(adapter):
        clients = _cloudtrail(adapter, region)
        try:
            for kid in found:
                def events(kid: str = kid, clients: AwsClients = clients,
                           region: str = region) -> dict[str, Any]:
                    with clients.errors(f"CloudTrail events of {kid} in {region}",
                                        "CloudTrail"):
                        return {"region": region,
                                **lookup_events(clients.client("cloudtrail"), kid)}

                write_json(sink, safe_name(f"cloudtrail-{kid}-{region}"), "cloudtrail", events,
                           failure=f"cloudtrail {kid} {region}")
        finally:
            clients.close()


# -- Secrets Manager --------------------------------------------------------------------------


def _tags(tags: Any) -> dict[str, Any]:
    """AWS ``[{Key, Value}]`` tags as ``{key: value}`` (so a tag value is not taken for a
    secret value; a tag whose name says secret is still redacted)."""
    return {str(t.get("Key")): t.get("Value") for t in tags or [] if isinstance(t, Mapping)}


def preserve_secret(adapter: SecretsManagerAdapter, ref: Mapping[str, Any],
                    sink: EvidenceSink) -> None:
    """``DescribeSecret`` and every version id with its stages (no value is read)."""
    secret = adapter._secret(ref)

    def describe() -> dict[str, Any]:
        with adapter.aws.errors(secret, "Secrets Manager"):
            d = adapter.sm.describe_secret(SecretId=secret)
        return {**pick(d, SECRET_FIELDS), "Tags": _tags(d.get("Tags"))}

    def versions() -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        with adapter.aws.errors(secret, "Secrets Manager"):
            kw: dict[str, Any] = {"SecretId": secret, "IncludeDeprecated": True,
                                  "MaxResults": 100}
            for _ in range(MAX_PAGES):
                page = adapter.sm.list_secret_version_ids(**kw)
                out += [pick(v, SECRET_VERSION_FIELDS) for v in page.get("Versions") or []]
                if not page.get("NextToken"):
                    break
                kw["NextToken"] = page["NextToken"]
        return {"secret_id": secret, "versions": out}

    write_json(sink, "secret", "secret", describe)
    write_json(sink, "versions", "versions", versions)


# -- SSM Parameter Store ---------------------------------------------------------------------


def preserve_ssm(adapter: SsmParameterAdapter, ref: Mapping[str, Any],
                 sink: EvidenceSink) -> None:
    """The parameter's history without values (``WithDecryption=False``, Value dropped)."""
    name = adapter._name(ref)

    def history() -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        capped = False
        with adapter.aws.errors(name, "SSM Parameter Store"):
            kw: dict[str, Any] = {"Name": name, "WithDecryption": False, "MaxResults": 50}
            for n in range(MAX_PAGES):
                page = adapter.ssm.get_parameter_history(**kw)
                out += [pick(p, PARAMETER_FIELDS) for p in page.get("Parameters") or []]
                if not page.get("NextToken"):
                    break
                capped = n == MAX_PAGES - 1
                kw["NextToken"] = page["NextToken"]
        return {"name": name, "versions": out, "capped": capped}

    write_json(sink, "versions", "versions", history)
