"""Declarations of the host egress adapters: nftables and a Squid denylist.

Their permissions are privileges on a host (a capability, a file, a command), rendered as a
list for whoever provisions the console's host account.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, Command, FilePath, HttpUrl, Seconds, Wait
from adapters.specs import AdapterSpec, Grant

__all__ = ["NFTABLES", "SQUID", "NftablesOptions", "SquidOptions"]

_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class NftablesOptions(AdapterOptions):
    """Options of an ``nftables`` backend."""

    nft: str = "nft"
    """Path of the nft binary (default: nft on PATH)."""
    netns: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,64})?$")
    """Network namespace to act in, via `ip netns exec` (optional)."""
    table: str = Field(default="killswitch", pattern=_NAME)
    """The adapter's own inet table (default killswitch)."""
    probe_port: int | None = Field(default=None, ge=1, le=65535)
    """TCP port verify connects to; the connection must fail (optional)."""
    probe_timeout: Seconds = 1.0
    """Seconds per probe connection (default 1)."""


class SquidOptions(AdapterOptions):
    """Options of a ``squid`` backend."""

    denylist: FilePath = Field(default="", validation_alias=AliasChoices("denylist", "path"))
    """The dstdomain ACL file Squid reads (alias: path)."""
    reload: Command = []
    """Command applying the file, e.g. ["squid", "-k", "reconfigure"]."""
    proxy: HttpUrl = ""
    """Proxy URL verify sends a request through (optional)."""
    verify_wait: Wait = 5.0
    """Seconds verify waits for the reload to take effect (default 5)."""


_DESTINATIONS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}


def _ref(description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["destinations"],
            "properties": {"backend": {"type": "string"}, "label": {"type": "string"},
                           "destinations": {**_DESTINATIONS, "description": description}}}


NFT_REF = _ref("IPs, CIDRs or hostnames (resolved at plan time)")
SQUID_REF = _ref("domains (a leading dot also matches subdomains)")

_NFT_PERMS = ("CAP_NET_ADMIN (root) on the host, or in the network namespace `netns`",
              "nft add/delete/list in table inet <table>")
_SQUID_PERMS = ("write <denylist> and create files in its directory (atomic replace)",
                "run the reload command (signals the Squid process)")


def _nft_grants(action: str, ref: Mapping[str, Any], options: Any,
                step: Mapping[str, Any]) -> list[Grant]:
    netns = str(getattr(options, "netns", "") or "")
    where = f"network namespace {netns}" if netns else "the host"
    table = str(getattr(options, "table", "") or "killswitch")
    return [Grant("CAP_NET_ADMIN (root)", where),
            Grant("run", str(getattr(options, "nft", "") or "nft")
                  + (f" (through ip netns exec {netns})" if netns else "")),
            Grant("nft add/delete/list rules", f"table inet {table}, chains egress (output hook) "
                  "and forward (forward hook)")]


def _squid_grants(action: str, ref: Mapping[str, Any], options: Any,
                  step: Mapping[str, Any]) -> list[Grant]:
    path = str(getattr(options, "denylist", "") or "<denylist>")
    reload = getattr(options, "reload", []) or []
    command = reload if isinstance(reload, str) else " ".join(reload)
    out = [Grant("read and write (atomic replace: create and rename files in the folder)",
                 str(Path(path).parent) + "/"),
           Grant("create, write and flock", f"{path}.lock")]
    return out + ([Grant("run (signals the Squid process)", command)] if command else [])


NFTABLES = AdapterSpec(
    name="nftables",
    options=NftablesOptions,
    actions={
        "egress.block": ActionSpec("egress.block", "egress", True, "egress.unblock",
                                   _NFT_PERMS, NFT_REF),
        "egress.unblock": ActionSpec("egress.unblock", "egress", True, "egress.block",
                                     _NFT_PERMS, NFT_REF),
    },
    iam="host",
    grants=_nft_grants,
)
"""The nftables adapter's declarations."""

SQUID = AdapterSpec(
    name="squid",
    options=SquidOptions,
    actions={
        "egress.block": ActionSpec("egress.block", "egress", True, "egress.unblock",
                                   _SQUID_PERMS, SQUID_REF),
        "egress.unblock": ActionSpec("egress.unblock", "egress", True, "egress.block",
                                     _SQUID_PERMS, SQUID_REF),
    },
    iam="host",
    grants=_squid_grants,
)
"""The squid adapter's declarations."""
