"""Evidence from AWS: IAM keys + CloudTrail (stand-in), Secrets Manager and SSM (real moto).

The CloudTrail stand-in is proven with boto3's own ``cloudtrail`` client first (paginator,
attribute filter, region, the JSON 1.1 error shape); then the adapters' ``preserve()``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adapters.aws_iam import IamAccessKeyAdapter
from adapters.aws_secrets import SecretsManagerAdapter
from adapters.aws_ssm import SsmParameterAdapter
from console.config import load_config
from console.sandbox import api_cloudtrail
from console.sandbox.api_cloudtrail import TEMPLATES, CloudTrailStandIn, event
from console.sandbox.standin import Faults, serve
from tests.adapters.aws.conftest import CANARY, client, options
from tests.adapters.evidence.recorder import Recorder

REPO = Path(__file__).resolve().parents[3]
USER = "claims-summariser-bedrock"
OTHER_KEY = "AKIAOTHERUSERKEY0001"


@pytest.fixture
def cloudtrail() -> Iterator[tuple[CloudTrailStandIn, str]]:
    """An empty CloudTrail stand-in on a free port (tests plant users and keys)."""
    app = CloudTrailStandIn({"users": {}, "keys": {}, "events": []})
    server = serve(app, port=0)
    try:
        yield app, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def plant(app: CloudTrailStandIn, key_id: str, region: str = "us-east-1") -> None:
    """The user's day of events for ``key_id`` and one event of another user's key."""
    now = time.time()
    app.state["users"][USER] = {"region": region, "seeded_at": now}
    app.state["keys"][USER] = [key_id]
    app.state["events"].append(event("someone-else", OTHER_KEY, now - 600, "sts.amazonaws.com",
                                     "GetCallerIdentity", True, "10.0.0.9", "boto3"))


def ct_client(url: str, region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("cloudtrail", endpoint_url=url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))


def by_key(key_id: str) -> list[dict[str, str]]:
    return [{"AttributeKey": "AccessKeyId", "AttributeValue": key_id}]


# -- the stand-in, driven by boto3 ----------------------------------------------------------------

def test_moto_still_lacks_lookup_events(moto: str) -> None:
    """Why the stand-in exists: when moto implements LookupEvents, this fails (use moto)."""
    with pytest.raises(ClientError) as err:
        client(moto, "cloudtrail").lookup_events(LookupAttributes=by_key("AKIAX"))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_boto3_paginates_lookup_events_newest_first(cloudtrail: tuple[CloudTrailStandIn, str]
                                                     ) -> None:
    app, url = cloudtrail
    plant(app, "AKIAEXAMPLEKEY000001")
    ct = ct_client(url)
    pages = list(ct.get_paginator("lookup_events").paginate(
        LookupAttributes=by_key("AKIAEXAMPLEKEY000001"), PaginationConfig={"PageSize": 2}))
    assert [len(p["Events"]) for p in pages] == [2, 2, 2, 2, 1]
    assert all("NextToken" in p for p in pages[:-1]) and "NextToken" not in pages[-1]
    events = [e for p in pages for e in p["Events"]]
    assert len(events) == len(TEMPLATES)
    assert {e["AccessKeyId"] for e in events} == {"AKIAEXAMPLEKEY000001"}, "filtered by key"
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True) and isinstance(times[0], dt.datetime)
    denied = [e for e in events if json.loads(e["CloudTrailEvent"]).get("errorCode")]
    assert {e["EventName"] for e in denied} == {"ListUsers", "CreateAccessKey", "ListBuckets"}
    record = json.loads(events[0]["CloudTrailEvent"])
    assert record["userIdentity"]["accessKeyId"] == "AKIAEXAMPLEKEY000001"
    assert record["eventID"] == events[0]["EventId"] and record["awsRegion"] == "us-east-1"
    # the time range and other attributes filter too
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
    recent = ct.lookup_events(LookupAttributes=by_key("AKIAEXAMPLEKEY000001"),
                              StartTime=start)["Events"]
    assert len(recent) == len(TEMPLATES) - 1, "the 30-hour-old event is outside"
    names = ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName",
                                                "AttributeValue": "GetCallerIdentity"}])
    assert {e["AccessKeyId"] for e in names["Events"]} == {"AKIAEXAMPLEKEY000001", OTHER_KEY}
    # another region's event history does not hold them
    assert ct_client(url, "eu-west-1").lookup_events(
        LookupAttributes=by_key("AKIAEXAMPLEKEY000001"))["Events"] == []


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"MaxResults": 100}, "InvalidMaxResultsException"),
    ({"StartTime": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
      "EndTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "InvalidTimeRangeException"),
    ({"LookupAttributes": by_key("AKIAX") + [{"AttributeKey": "Username",
                                               "AttributeValue": "u"}]},
     "InvalidLookupAttributesException"),
    ({"LookupAttributes": [{"AttributeKey": "Colour", "AttributeValue": "red"}]},
     "InvalidLookupAttributesException"),
    ({"NextToken": "not-a-token"}, "InvalidNextTokenException"),
    ({"EventCategory": "data"}, "InvalidEventCategoryException"),
])
def test_bad_input_has_the_json_error_shape(cloudtrail: tuple[CloudTrailStandIn, str],
                                            kwargs: dict[str, Any], code: str) -> None:
    _, url = cloudtrail
    with pytest.raises(ClientError) as err:
        ct_client(url).lookup_events(**kwargs)
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Message"]


def test_a_token_only_works_with_its_own_query(cloudtrail: tuple[CloudTrailStandIn, str]
                                               ) -> None:
    app, url = cloudtrail
    plant(app, "AKIAEXAMPLEKEY000001")
    ct = ct_client(url)
    first = ct.lookup_events(LookupAttributes=by_key("AKIAEXAMPLEKEY000001"), MaxResults=1)
    with pytest.raises(ClientError) as err:
        ct.lookup_events(LookupAttributes=by_key(OTHER_KEY), NextToken=first["NextToken"])
    assert err.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_sandbox_seed_finds_the_moto_seeded_key(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.example.toml", tmp_path / "config.toml")
    config = load_config(tmp_path / "config.toml")
    assert api_cloudtrail.wanted(config)
    app = CloudTrailStandIn(api_cloudtrail.seed(config))
    (tmp_path / ".sandbox").mkdir(exist_ok=True)
    (tmp_path / ".sandbox" / "aws-seed.json").write_text(
        json.dumps({"iam": {USER: ["AKIASEEDEDBYMOTO0001"]}}))
    server = serve(app, port=0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        got = ct_client(url).lookup_events(LookupAttributes=by_key("AKIASEEDEDBYMOTO0001"))
        assert len(got["Events"]) == len(TEMPLATES)
        assert {e["Username"] for e in got["Events"]} == {USER}
    finally:
        server.shutdown()
        server.server_close()


# -- aws-iam preserve --------------------------------------------------------------------------


@pytest.fixture
def iam_key(moto: str) -> str:
    iam = client(moto, "iam")
    iam.create_user(UserName=USER)
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    assert key["SecretAccessKey"]  # never asked for again
    return str(key["AccessKeyId"])


def iam_adapter(moto: str, url: str, **extra: Any) -> IamAccessKeyAdapter:
    return IamAccessKeyAdapter("aws-iam", options(moto, cloudtrail_endpoint_url=url, **extra))


def test_iam_preserve_keys_last_used_and_cloudtrail(moto: str, iam_key: str,
                                                    cloudtrail: tuple[CloudTrailStandIn, str]
                                                    ) -> None:
    app, url = cloudtrail
    plant(app, iam_key)
    adapter = iam_adapter(moto, url)
    sink = Recorder()
    try:
        adapter.preserve({"backend": "aws-iam", "user": USER}, sink)
    finally:
        adapter.close()
    assert sink.failures == []
    assert sink.sources == {"keys", "last-used", "cloudtrail"}
    keys = sink.data("keys")["keys"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(iam_key, "Active")]
    assert keys[0]["CreateDate"].startswith(str(dt.date.today().year))
    assert set(sink.data("last-used")["keys"]) == {iam_key}
    trail = sink.data(f"cloudtrail-{iam_key}-us-east-1")
    assert trail["access_key_id"] == iam_key and not trail["capped"]
    assert len(trail["events"]) == len(TEMPLATES) - 1, "the last 24 hours only"
    assert {e["AccessKeyId"] for e in trail["events"]} == {iam_key}
    odd = [e for e in trail["events"] if e["CloudTrailEvent"]["sourceIPAddress"] == "203.0.113.77"]
    assert [e["EventName"] for e in odd][-1] == "GetCallerIdentity", "newest first"
    assert odd[0]["CloudTrailEvent"]["errorCode"] == "AccessDenied"
    # what the stand-in was asked: the key's id, a 24-hour window, 50 a page, signed for
    # us-east-1 with the run in the User-Agent
    [req] = app.requests
    assert req["headers"]["x-amz-target"].endswith(".LookupEvents")
    assert "/us-east-1/cloudtrail/" in req["headers"]["authorization"]
    assert "killswitch/" in req["headers"]["user-agent"]


def test_iam_preserve_each_configured_region(moto: str, iam_key: str,
                                             cloudtrail: tuple[CloudTrailStandIn, str]) -> None:
    app, url = cloudtrail
    plant(app, iam_key, region="eu-west-1")
    adapter = iam_adapter(moto, url, cloudtrail_regions=["us-east-1", "eu-west-1"])
    sink = Recorder()
    try:
        adapter.preserve({"backend": "aws-iam", "user": USER, "access_key_id": iam_key}, sink)
    finally:
        adapter.close()
    assert sink.failures == []
    assert sink.data(f"cloudtrail-{iam_key}-us-east-1")["events"] == []
    assert len(sink.data(f"cloudtrail-{iam_key}-eu-west-1")["events"]) == len(TEMPLATES) - 1


def test_iam_cloudtrail_down_is_reported_and_the_rest_comes(
        moto: str, iam_key: str, cloudtrail: tuple[CloudTrailStandIn, str]) -> None:
    app, url = cloudtrail
    plant(app, iam_key)
    app.faults = Faults(error_rate=1.0, error_status=503)
    adapter = iam_adapter(moto, url)
    sink = Recorder()
    try:
        adapter.preserve({"backend": "aws-iam", "user": USER}, sink)
    finally:
        adapter.close()
    assert sink.sources == {"keys", "last-used"}
    [(source, message)] = sink.failures
    assert source == f"cloudtrail {iam_key} us-east-1"
    assert "ServiceUnavailable" in message and "CloudTrail" in message


def test_iam_listing_fails_but_a_named_key_is_still_looked_up(
        moto: str, cloudtrail: tuple[CloudTrailStandIn, str]) -> None:
    app, url = cloudtrail
    plant(app, "AKIAEXAMPLEKEY000001")
    adapter = iam_adapter(moto, url)
    sink = Recorder()
    try:  # no such user in moto: ListAccessKeys fails
        adapter.preserve({"backend": "aws-iam", "user": USER,
                          "access_key_id": "AKIAEXAMPLEKEY000001"}, sink)
    finally:
        adapter.close()
    assert "keys" in sink.failed_sources
    assert len(sink.data("cloudtrail-AKIAEXAMPLEKEY000001-us-east-1")["events"]) == \
        len(TEMPLATES) - 1


# -- Secrets Manager and SSM ------------------------------------------------------------------


def test_secrets_manager_versions_and_stages_without_values(moto: str) -> None:
    sm = client(moto, "secretsmanager")
    sm.create_secret(Name="ai/claims/openai", SecretString=json.dumps({"api_key": "sk-old"}),
                     Tags=[{"Key": "owner", "Value": "claims-team"}])
    sm.put_secret_value(SecretId="ai/claims/openai", SecretString=json.dumps({"api_key": CANARY}))
    adapter = SecretsManagerAdapter("aws-sm", options(moto))
    sink = Recorder()
    try:
        adapter.preserve({"backend": "aws-sm", "secret_id": "ai/claims/openai"}, sink)
    finally:
        adapter.close()
    assert sink.failures == [] and sink.sources == {"secret", "versions"}
    secret = sink.data("secret")
    assert secret["Name"] == "ai/claims/openai" and secret["Tags"] == {"owner": "claims-team"}
    stages = sorted(s for v in secret["VersionIdsToStages"].values() for s in v)
    assert stages == ["AWSCURRENT", "AWSPREVIOUS"]
    versions = sink.data("versions")["versions"]
    assert sorted(s for v in versions for s in v["VersionStages"]) == stages
    assert all(v["CreatedDate"] for v in versions)
    assert CANARY not in sink.everything() and "sk-old" not in sink.everything()


def test_ssm_history_without_values(moto: str) -> None:
    ssm = client(moto, "ssm")
    for value in ("sk-older", CANARY):
        ssm.put_parameter(Name="/ai/bot/openai", Value=value, Type="SecureString",
                          Overwrite=True, Description="support bot key")
    adapter = SsmParameterAdapter("aws-ssm", options(moto))
    sink = Recorder()
    try:
        adapter.preserve({"backend": "aws-ssm", "name": "/ai/bot/openai"}, sink)
        adapter.preserve({"backend": "aws-ssm", "name": "/ai/none"}, second := Recorder())
    finally:
        adapter.close()
    assert sink.failures == []
    versions = sink.data("versions")["versions"]
    assert [v["Version"] for v in versions] == [1, 2]
    assert all(v["Type"] == "SecureString" and "Value" not in v for v in versions)
    assert CANARY not in sink.everything() and "sk-older" not in sink.everything()
    [(source, message)] = second.failures
    assert source == "versions" and "/ai/none" in message
