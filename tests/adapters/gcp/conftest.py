"""Fixtures for the Google Cloud adapters: the GCP stand-ins served in-process per test.

``gcp`` is the global endpoint (Secret Manager global secrets + IAM keys); ``regional`` is the
regional Secret Manager endpoint, seeded from the same planted state (each keeps only the
secrets it serves).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager_v1 as sm

from console.sandbox.api_gcp import GcpRegionalStandIn, GcpStandIn, new_key, new_secret
from console.sandbox.standin import serve

PROJECT = "ks-test"
SA = f"search-embeddings@{PROJECT}.iam.gserviceaccount.com"
SECRET = f"projects/{PROJECT}/secrets/support-bot-openai"
OTHER = f"projects/{PROJECT}/secrets/unlisted-copy"
LOCATION = "europe-west4"
REGIONAL = f"projects/{PROJECT}/locations/{LOCATION}/secrets/support-bot-openai"
CANARY = "sk-canary-" + "c0ffee" * 6
OLD = "sk-sandbox-old-rotated-value"


@dataclass
class Gcp:
    """The running stand-in and what the test planted in it."""

    app: GcpStandIn
    endpoint: str
    canary: str = CANARY

    def versions(self, name: str = SECRET) -> dict[str, str]:
        """The stand-in's own view of a secret's version states."""
        return {k: v["state"] for k, v in self.app.state["secrets"][name]["versions"].items()}

    def keys(self, sa: str = SA) -> dict[str, Any]:
        """The stand-in's own view of a service account's keys."""
        return {k: dict(v) for k, v in self.app.state["service_accounts"][sa]["keys"].items()}


def planted_state() -> dict[str, Any]:
    """Secret with v1 DISABLED (old), v2 ENABLED (canary), v3 ENABLED (JSON with the canary)."""
    secret = new_secret([("DISABLED", OLD), ("ENABLED", CANARY),
                         ("ENABLED", '{"api_key": "' + CANARY + '"}')])
    other = new_secret([("ENABLED", "sk-sandbox-unlisted")])
    regional = new_secret([("DISABLED", OLD), ("ENABLED", CANARY)])
    return {
        "secrets": {SECRET: secret, OTHER: other, REGIONAL: regional},
        "service_accounts": {SA: {"project": PROJECT, "keys": {
            "k1aaaa": new_key(PROJECT), "k2bbbb": new_key(PROJECT, disabled=True),
            "k3cccc": new_key(PROJECT),
            "sysdddd": new_key(PROJECT, kind="SYSTEM_MANAGED")}}},
    }


@pytest.fixture
def gcp() -> Iterator[Gcp]:
    """A fresh GCP stand-in on a free loopback port."""
    app = GcpStandIn(planted_state())
    server = serve(app, port=0)
    try:
        yield Gcp(app, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def regional() -> Iterator[Gcp]:
    """A fresh regional Secret Manager stand-in on a free loopback port."""
    app = GcpRegionalStandIn(planted_state())
    server = serve(app, port=0)
    try:
        yield Gcp(app, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(gcp: Gcp) -> Iterator[sm.SecretManagerServiceClient]:
    """The official Secret Manager client, REST transport, anonymous, on the stand-in."""
    c = sm.SecretManagerServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                      client_options=ClientOptions(api_endpoint=gcp.endpoint))
    yield c
    c.transport.close()


def b64(text: str) -> str:
    """Base64 of a text, as Secret Manager payloads are carried."""
    return base64.b64encode(text.encode()).decode()
