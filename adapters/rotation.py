"""The rotation contract: a new key issued (or pasted) in one step, written in the next.

Rotation is three action kinds, run in this order by the ``rotate`` runbook:

* ``credential.issue`` (providers): create a new key where the provider can (AWS IAM
  ``CreateAccessKey``, GCP service-account key create, OpenAI project service account); where
  it cannot (Anthropic), the key the operator pasted (console prompt, ``--new-key-from FILE``)
  is taken from the keyring and checked to be new. The value goes into :data:`KEYRING` under
  the run and the integration, never into the change, its undo data, the trail or the screen:
  the change records the new key's id and fingerprint only.
* ``credential.write`` (secret stores): write the run's new key to every listed copy as a new
  version (AWSCURRENT, a new KV version, a new GCP version, SSM overwrite). Verify reads the
  copy back and compares fingerprints, and proves the new key works at the provider.
* ``credential.retire`` (providers): disable the *old* key (the one the inventory names), as
  ``credential.disable`` would; the run's proof of death then tests the old value, captured
  from a store copy before anything changed.

The keyring lives in this process only. A run that crashed after its key was issued cannot
recover the value from the trail (it was never there): its write steps fail and say to rotate
again (or read it back from a copy already written, whose fingerprint the trail holds).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["ISSUE", "KEYRING", "RETIRE", "ROTATION_ACTIONS", "WRITE", "Keyring", "NewKey",
           "key_fingerprint"]

ISSUE = "credential.issue"
WRITE = "credential.write"
RETIRE = "credential.retire"
ROTATION_ACTIONS: tuple[str, ...] = (ISSUE, WRITE, RETIRE)


def key_fingerprint(value: str) -> str:
    """The fingerprint a key is known by in plans, the trail and the screen (never the
    value): ``sha256:`` and the first 16 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NewKey:
    """A newly issued or pasted key, held in memory only.

    Attributes:
        value: The key as an application uses it (for AWS: the secret access key).
        key_id: The provider's id of the key (an AWS access key id, a GCP key name, an
            OpenAI key id), or ``""`` when pasted.
        fields: Extra parts a store copy may hold next to the value, by conventional
            field name (AWS: ``{"aws_access_key_id": ..., "aws_secret_access_key": ...}``).
        source: ``issued`` (by the provider) or ``pasted`` (by the operator).
    """

    value: str = field(repr=False)
    key_id: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    source: str = "issued"

    @property
    def fingerprint(self) -> str:
        """:func:`key_fingerprint` of the value."""
        return key_fingerprint(self.value)


class Keyring:
    """New keys by (run id, integration id): thread-safe, in memory, never persisted."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], NewKey] = {}
        self._lock = threading.Lock()

    def put(self, run_id: str, integration: str, key: NewKey) -> None:
        """Hold ``key`` for the integration's rotation in ``run_id``."""
        with self._lock:
            self._keys[(run_id, integration)] = key

    def get(self, run_id: str, integration: str) -> NewKey | None:
        """The key held for the integration in ``run_id``, if any."""
        with self._lock:
            return self._keys.get((run_id, integration))

    def discard(self, run_id: str) -> None:
        """Forget every key of ``run_id`` (the run ended)."""
        with self._lock:
            for k in [k for k in self._keys if k[0] == run_id]:
                del self._keys[k]


KEYRING = Keyring()
"""The process's keyring."""
