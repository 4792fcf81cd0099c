"""AWS CloudTrail stand-in: ``LookupEvents`` (event history), which moto does not implement.

Written from botocore's service model ``cloudtrail/2013-11-01/service-2.json`` (protocol
``json``, ``jsonVersion`` 1.1, ``targetPrefix`` ``com.amazonaws.cloudtrail.v20131101.
CloudTrail_20131101``; shapes ``LookupEventsRequest``, ``LookupEventsResponse``, ``Event``,
``Resource``, ``LookupAttribute``; paginator ``LookupEvents``: ``NextToken`` /
``MaxResults`` / ``Events``) and the API reference
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html.

Protocol (AWS JSON 1.1)::

    POST /
    X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents
    Content-Type: application/x-amz-json-1.1
    Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/cloudtrail/aws4_request...

    {"LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": "AKIA..."}],
     "StartTime": 1795726321, "EndTime": 1795812721, "MaxResults": 50, "NextToken": "..."}

    200 {"Events": [{"EventId", "EventName", "ReadOnly", "AccessKeyId", "EventTime",
                     "EventSource", "Username", "Resources": [{"ResourceType",
                     "ResourceName"}], "CloudTrailEvent": "<the event record as a JSON
                     string>"}], "NextToken": "..."}

Behaviour, each from the model's documentation unless marked:

* events of the signing region only ("You can look up events that occurred in a Region";
  the region is read from the SigV4 credential scope), newest first ("The events list is
  sorted by time. The most recent event is listed first.");
* ``LookupAttributes`` "can contain only one item"; keys ``EventId``, ``EventName``,
  ``ReadOnly``, ``Username``, ``ResourceType``, ``ResourceName``, ``EventSource``,
  ``AccessKeyId`` (else ``InvalidLookupAttributesException``);
* ``StartTime`` after ``EndTime`` -> ``InvalidTimeRangeException``; ``MaxResults`` 1..50,
  default 50 (else ``InvalidMaxResultsException``; botocore checks only the minimum);
* ``NextToken`` "must be passed in with the same parameters that were specified in the
  original call" (else ``InvalidNextTokenException``); ``EventCategory`` ``insight`` only
  (else ``InvalidEventCategoryException``; no Insights events are seeded);
* ``EventTime`` is a JSON number of epoch seconds (the JSON protocol's timestamp format);
* errors have the JSON 1.1 shape: HTTP 400, ``{"__type": "<Code>", "message": "..."}``;
  throttling (a fault) is ``ThrottlingException`` 400 [unconfirmed: status], an unknown
  target ``UnknownOperationException``, no ``Authorization`` header
  ``MissingAuthenticationTokenException`` [unconfirmed: both as in other JSON services].

The record in ``CloudTrailEvent`` follows the CloudTrail record contents
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html):
eventVersion, userIdentity (IAMUser with accessKeyId), eventTime, eventSource, eventName,
awsRegion, sourceIPAddress, userAgent, errorCode / errorMessage, requestParameters,
responseElements, requestID, eventID, readOnly, eventType, managementEvent,
recipientAccountId, eventCategory.

Seed: for every credential reference naming a ``user`` on an ``aws-iam`` backend whose
``cloudtrail_endpoint_url`` points at this machine, a day of plausible events of the user's
access keys: an application's routine calls, then an unfamiliar address probing what the
key can do (AccessDenied on IAM, Bedrock model listing), and one event older than 24 hours.
AWS chooses the key ids, so they are looked up when asked: ``state["keys"][user]`` if set,
else the moto seeder's record ``<sandbox dir>/aws-seed.json`` (``{"iam": {user: [ids]}}``).
``state["events"]`` holds further complete events (tests plant them there).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from console.sandbox.seedkeys import sandbox_dir
from console.sandbox.standin import Request, Response, StandIn

__all__ = ["ACCOUNT", "DEFAULT_PORT", "STANDIN", "TARGET", "CloudTrailStandIn", "event",
           "seed", "wanted"]

DEFAULT_PORT = 8397
TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"
ACCOUNT = "123456789012"
JSON11 = "application/x-amz-json-1.1"
ATTRIBUTE_KEYS = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType",
                  "ResourceName", "EventSource", "AccessKeyId")
LOOKBACK = 90 * 86400
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")
_STATUS = {429: "ThrottlingException", 500: "InternalFailure", 503: "ServiceUnavailable"}

APP_IP, APP_UA = "10.20.31.7", "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux lang/python"
ODD_IP, ODD_UA = "203.0.113.77", "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.5"

# (seconds before the seed, event source, event name, read only, source IP, user agent,
#  request parameters, error code, resources)
TEMPLATES: tuple[tuple[Any, ...], ...] = (
    (30 * 3600, "sts.amazonaws.com", "GetCallerIdentity", True, APP_IP, APP_UA, None, "", ()),
    (23 * 3600, "sts.amazonaws.com", "GetCallerIdentity", True, APP_IP, APP_UA, None, "", ()),
    (20 * 3600, "bedrock.amazonaws.com", "ListFoundationModels", True, APP_IP, APP_UA,
     {"byOutputModality": "TEXT"}, "", ()),
    (6 * 3600, "bedrock.amazonaws.com", "CreateModelInvocationJob", False, APP_IP, APP_UA,
     {"jobName": "nightly-claims", "modelId": "anthropic.claude-3-5-sonnet-20240620-v1:0"},
     "", (("AWS::Bedrock::ModelInvocationJob", "nightly-claims"),)),
    (10200, "sts.amazonaws.com", "GetCallerIdentity", True, ODD_IP, ODD_UA, None,
     "", ()),
    (10140, "iam.amazonaws.com", "ListUsers", True, ODD_IP, ODD_UA, None,
     "AccessDenied", ()),
    (10080, "iam.amazonaws.com", "CreateAccessKey", False, ODD_IP, ODD_UA,
     {"userName": "admin"}, "AccessDenied", (("AWS::IAM::User", "admin"),)),
    (10020, "bedrock.amazonaws.com", "ListFoundationModels", True, ODD_IP, ODD_UA,
     None, "", ()),
    (9960, "s3.amazonaws.com", "ListBuckets", True, ODD_IP, ODD_UA, None,
     "AccessDenied", ()),
)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(user: str, key_id: str, when: float, source: str, name: str, read_only: bool,
          ip: str, agent: str, params: dict[str, Any] | None = None, error: str = "",
          resources: tuple[tuple[str, str], ...] = (), region: str = "us-east-1",
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event as LookupEvents returns it (plus the private ``_region``).

    Args:
        user: The IAM user whose key signed the call.
        key_id: The access key id.
        when: Epoch seconds.
        source, name: ``eventSource`` / ``eventName``.
        read_only: Whether the call only reads.
        ip, agent: ``sourceIPAddress`` / ``userAgent``.
        params: ``requestParameters``.
        error: ``errorCode`` (``AccessDenied``), if the call was refused.
        resources: ``(ResourceType, ResourceName)`` pairs.
        region: ``awsRegion``.
        extra: More fields of the record (tests plant values there).
    """
    eid = str(uuid.UUID(hashlib.sha256(f"{key_id}:{when}:{name}".encode()).hexdigest()[:32]))
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA" + hashlib.sha256(
            user.encode()).hexdigest()[:17].upper(), "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
            "accountId": ACCOUNT, "accessKeyId": key_id, "userName": user},
        "eventTime": _iso(when), "eventSource": source, "eventName": name,
        "awsRegion": region, "sourceIPAddress": ip, "userAgent": agent,
        "requestParameters": params, "responseElements": None,
        "requestID": str(uuid.UUID(hashlib.md5(eid.encode()).hexdigest())),  # noqa: S324
        "eventID": eid, "readOnly": read_only, "eventType": "AwsApiCall",
        "managementEvent": True, "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"}
    if error:
        record["errorCode"] = error
        record["errorMessage"] = (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not "
                                  f"authorized to perform: {source.split('.')[0]}:{name}")
    record.update(extra or {})
    return {"EventId": eid, "EventName": name, "ReadOnly": "true" if read_only else "false",
            "AccessKeyId": key_id, "EventTime": float(int(when)), "EventSource": source,
            "Username": user, "Resources": [{"ResourceType": t, "ResourceName": n}
                                            for t, n in resources],
            "CloudTrailEvent": json.dumps(record), "_region": region}


class BadRequest(ValueError):
    """An error in the JSON 1.1 shape: ``code`` becomes ``__type``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CloudTrailStandIn(StandIn):
    """CloudTrail's ``LookupEvents`` from memory (AWS JSON 1.1)."""

    name: ClassVar[str] = "cloudtrail"

    def setup(self) -> None:
        """Register the one route: every operation is a POST to ``/``."""
        self.route("POST", r"/", self.dispatch)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """The JSON 1.1 error shape."""
        code = kind if kind and kind[0].isupper() else _STATUS.get(status, "InternalFailure")
        return {"__type": code, "message": message}

    def error(self, status: int, message: str, kind: str = "",
              headers: dict[str, str] | None = None) -> Response:
        """An error answer; throttling is answered 400 like AWS's JSON services."""
        body = self.error_body(status, message, kind)
        return Response(400 if status == 429 else status, body,
                        {"Content-Type": JSON11, "x-amzn-RequestId": str(uuid.uuid4()),
                         **(headers or {})})

    def dispatch(self, req: Request) -> Response:
        """Route by ``X-Amz-Target``."""
        target = req.headers.get("x-amz-target", "")
        if not req.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self.error(400, "Missing Authentication Token",
                              "MissingAuthenticationTokenException")
        if target != f"{TARGET}.LookupEvents":
            op = target.rsplit(".", 1)[-1] or "(none)"
            return self.error(400, f"Operation {op} is not served by this stand-in",
                              "UnknownOperationException")
        scope = _SCOPE.search(req.headers.get("authorization", ""))
        try:
            body = self.lookup(req.body if isinstance(req.body, dict) else {},
                               scope["region"] if scope else "us-east-1")
        except BadRequest as exc:
            return self.error(400, str(exc), exc.code)
        return Response(200, body, {"Content-Type": JSON11,
                                    "x-amzn-RequestId": str(uuid.uuid4())})

    # -- LookupEvents ---------------------------------------------------------------------

    def lookup(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """The answer to one LookupEvents call (raises :class:`BadRequest`)."""
        attrs = body.get("LookupAttributes") or []
        if not isinstance(attrs, list) or len(attrs) > 1:
            raise BadRequest("InvalidLookupAttributesException",
                             "You can specify only one lookup attribute.")
        attr = attrs[0] if attrs else None
        if attr is not None:
            key, value = attr.get("AttributeKey"), attr.get("AttributeValue")
            if key not in ATTRIBUTE_KEYS or not isinstance(value, str) or \
                    not 1 <= len(value) <= 2000 or \
                    (key == "ReadOnly" and value not in ("true", "false")):
                raise BadRequest("InvalidLookupAttributesException",
                                 f"Invalid lookup attribute {key}={value!r}.")
        now = time.time()
        start = _time(body.get("StartTime"), now - LOOKBACK)
        end = _time(body.get("EndTime"), now)
        if start > end:
            raise BadRequest("InvalidTimeRangeException",
                             "Start time must be before end time.")
        size = body.get("MaxResults", 50)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 50:
            raise BadRequest("InvalidMaxResultsException",
                             f"Value {size} for MaxResults is invalid: it must be 1..50.")
        category = body.get("EventCategory")
        if category is not None and category != "insight":
            raise BadRequest("InvalidEventCategoryException",
                             f"Invalid event category {category!r}.")
        query = hashlib.sha256(json.dumps([attr, body.get("StartTime"), body.get("EndTime"),
                                           category, region],
                                          sort_keys=True).encode()).hexdigest()[:16]
        offset = _untoken(body.get("NextToken"), query)
        found = [] if category else sorted(
            (e for e in self._all_events()
             if e["_region"] == region and start <= e["EventTime"] <= end
             and _matches(e, attr)),
            key=lambda e: (-e["EventTime"], e["EventId"]))
        page = found[offset:offset + size]
        out: dict[str, Any] = {"Events": [{k: v for k, v in e.items() if not k.startswith("_")}
                                          for e in page]}
        if offset + size < len(found):
            out["NextToken"] = _token(offset + size, query)
        return out

    def _key_ids(self, user: str) -> list[str]:
        """The user's access key ids: planted, else the moto seeder's record."""
        keys = (self.state.get("keys") or {}).get(user)
        if keys:
            return [str(k) for k in keys]
        path = str(self.state.get("keys_file") or "")
        try:
            recorded = json.loads(Path(path).read_text()) if path else {}
        except (OSError, ValueError):
            recorded = {}
        return [str(k) for k in (recorded.get("iam") or {}).get(user) or []]

    def _all_events(self) -> list[dict[str, Any]]:
        out = list(self.state.get("events") or [])
        for user, spec in (self.state.get("users") or {}).items():
            for kid in self._key_ids(user):
                for ago, source, name, ro, ip, ua, params, error, res in TEMPLATES:
                    out.append(event(user, kid, float(spec["seeded_at"]) - ago, source, name,
                                     ro, ip, ua, params, error, res, region=spec["region"]))
        return out


def _time(raw: Any, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest("SerializationException", f"Invalid timestamp {raw!r}.") from None


def _matches(e: dict[str, Any], attr: dict[str, Any] | None) -> bool:
    if attr is None:
        return True
    key, value = attr["AttributeKey"], attr["AttributeValue"]
    if key in ("ResourceType", "ResourceName"):
        return any(r.get(key) == value for r in e.get("Resources") or [])
    return bool(e.get(key) == value)


def _token(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "q": query}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _untoken(raw: Any, query: str) -> int:
    if raw is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(raw).encode()))
        if data["q"] == query and isinstance(data["o"], int) and data["o"] >= 0:
            return int(data["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise BadRequest("InvalidNextTokenException",
                     "Invalid NextToken: it must come with the parameters of the call that "
                     "returned it.")


STANDIN = CloudTrailStandIn


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _backends(config: Any) -> dict[str, Any]:
    return {name: b for name, b in config.backends.items() if b.type == "aws-iam"
            and _loopback(str(b.options.get("cloudtrail_endpoint_url") or ""))}


def seed(config: Any) -> dict[str, Any]:
    """Event templates for every IAM user of an ``aws-iam`` reference on a sandbox backend."""
    backends = _backends(config)
    users: dict[str, Any] = {}
    keys: dict[str, list[str]] = {}
    now = time.time()
    for integ in config.integrations:
        for ref in integ.credentials:
            backend = backends.get(ref.backend)
            fields = ref.fields()
            if backend is None or not fields.get("user"):
                continue
            user = str(fields["user"])
            region = str(backend.options.get("region") or "us-east-1")
            users[user] = {"region": region, "seeded_at": now}
            kid = str(fields.get("access_key_id") or "")
            if re.fullmatch(r"(?:AKIA|ASIA)[A-Z0-9]{16}", kid):
                keys.setdefault(user, []).append(kid)
    return {"users": users, "keys": keys, "events": [],
            "keys_file": str(sandbox_dir(config) / "aws-seed.json")}


def wanted(config: Any) -> bool:
    """True when an ``aws-iam`` backend's ``cloudtrail_endpoint_url`` points here."""
    return bool(_backends(config))
