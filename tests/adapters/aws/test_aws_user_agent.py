"""AWS calls name the run in their User-Agent, so CloudTrail's userAgent shows who acted."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.aws_secrets import SecretsManagerAdapter


class Sent(Exception):
    """Stops the request once its headers were seen (no network)."""


def test_every_aws_request_carries_killswitch_and_the_run_id() -> None:
    adapter = SecretsManagerAdapter("aws-sm", {
        "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9",
        "access_key_env": "KS_UA_KEY", "secret_key_env": "KS_UA_SECRET"})
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        raw = request.headers.get("User-Agent")
        seen.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        raise Sent

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KS_UA_KEY", "AKIAEXAMPLEEXAMPLE00")
        mp.setenv("KS_UA_SECRET", "not-a-real-secret")
        client = adapter.aws.client("secretsmanager")
        client.meta.events.register("before-send", capture)  # after ours: sees the result
        for run_id in ("r-20261127-000000-aaaa", "r-20261127-000001-bbbb"):
            adapter.run_id = run_id  # the engine sets it per phase
            with pytest.raises(Sent):
                client.describe_secret(SecretId="ai/x")
    assert "killswitch/" in seen[0] and seen[0].endswith("run/r-20261127-000000-aaaa")
    assert seen[1].endswith("run/r-20261127-000001-bbbb") and seen[1].count("killswitch/") == 1
    assert seen[0].startswith("Boto3/")  # botocore's own identification is kept
