"""Backends for the contract lifecycle: the fixtures the adapter test folders already own.

Imported (not copied) so that the contract test reaches every adapter's real server or
stand-in exactly as that adapter's own tests do; expensive ones are session-scoped there
(OpenBao, moto, Unleash + PostgreSQL, the network namespaces, Squid, the batch stand-ins,
the Slack / PagerDuty / LaunchDarkly stand-ins) and reset per test. Each case asks for its
backend lazily (``request.getfixturevalue``), so ``-k vault`` starts OpenBao only.
"""

from __future__ import annotations

from tests.adapters.batches.conftest import batch_servers, batches
from tests.adapters.egress.conftest import moto_server, netns, squid
from tests.adapters.flags.conftest import ld, ld_server, unleash, unleash_env
from tests.adapters.gcp.conftest import gcp
from tests.adapters.llm.conftest import llm
from tests.adapters.notify.conftest import _servers, receivers

__all__ = ["_servers", "batch_servers", "batches", "gcp", "ld", "ld_server", "llm",
           "moto_server", "netns", "receivers", "squid", "unleash", "unleash_env"]
