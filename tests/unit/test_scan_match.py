"""Which listed reference a found copy matches: forms the local servers cannot produce.

Real Google Secret Manager lists secrets under the project *number*; AWS references may be
ARNs. The copies found on the real servers are covered in tests/adapters (aws, gcp, vault).
"""

from __future__ import annotations

from typing import Any

import pytest

from console.engine.scan import _same

ACCOUNT = "arn:aws:{svc}:us-east-1:123456789012"
GCP = {"project": "ks-sandbox"}


@pytest.mark.parametrize(("kind", "options", "found", "listed", "same"), [
    # Google lists projects/<number>/secrets/S; the inventory names the project id
    ("gcp-secrets", GCP, {"name": "projects/731846/secrets/bot-key"},
     {"name": "projects/ks-sandbox/secrets/bot-key"}, True),
    ("gcp-secrets", GCP, {"name": "projects/731846/secrets/bot-key"},
     {"name": "bot-key"}, True),
    ("gcp-secrets", GCP, {"name": "projects/ks-sandbox/secrets/bot-key"},
     {"name": "projects/other-project/secrets/bot-key"}, False),
    ("gcp-secrets", GCP, {"name": "projects/ks-sandbox/secrets/bot-key"},
     {"name": "projects/ks-sandbox/locations/eu/secrets/bot-key"}, False),
    ("gcp-secrets", GCP, {"name": "projects/ks-sandbox/secrets/bot-key"},
     {"name": "bot-key-2"}, False),
    # SSM: a parameter ARN names the same parameter
    ("aws-ssm", {}, {"name": "/ai/bot", "field": "api_key"},
     {"name": ACCOUNT.format(svc="ssm") + ":parameter/ai/bot"}, True),
    ("aws-ssm", {}, {"name": "/ai/bot"}, {"name": "/ai/bot2"}, False),
    # Secrets Manager: name, full ARN (6 random characters), partial ARN
    ("aws-secrets", {}, {"secret_id": "ai/bot", "field": "token"},
     {"secret_id": ACCOUNT.format(svc="secretsmanager") + ":secret:ai/bot-Ab12Cd"}, True),
    ("aws-secrets", {}, {"secret_id": "ai/bot"}, {"secret_id": "ai/bot2"}, False),
    ("aws-secrets", {}, {"secret_id": "ai/bot"}, {"secret_id": "/ai/bot"}, False),
    # Vault: a token accessor is not a KV secret; another mount is another secret
    ("vault", {}, {"kind": "kv", "mount": "secret", "path": "ai/bot"},
     {"kind": "token", "accessor": "ai/bot"}, False),
    ("vault", {}, {"kind": "kv", "mount": "kv2", "path": "ai/bot"}, {"path": "ai/bot"}, False),
    # any other adapter: every identifying key, the field inside the secret aside
    ("my-store", {}, {"vault_id": "v1", "item": "bot", "field": "password"},
     {"vault_id": "v1", "item": "bot"}, True),
    ("my-store", {}, {"vault_id": "v1", "item": "bot"}, {"vault_id": "v2", "item": "bot"},
     False),
])
def test_same_stored_secret(kind: str, options: dict[str, Any], found: dict[str, Any],
                            listed: dict[str, Any], same: bool) -> None:
    found = {"backend": "b", **found}
    listed = {"backend": "b", "label": "a copy", **listed}
    assert _same(found, listed, kind, options) is same
