"""The evidence contract: what an adapter hands over when a run preserves evidence.

``evidence.preserve`` is not a change to a target: it copies what a backend knows about one
inventory reference into the run's evidence bundle before anything is killed (some of it,
such as a batch job's output file, can only be fetched with the key revocation kills). The
engine, not the adapter, owns the bundle: it opens one :class:`EvidenceSink` per reference,
calls :meth:`Adapter.preserve <adapters.base.Adapter.preserve>` with it in the thread pool,
scrubs and writes each item (files 0600), hashes it into the run's ``manifest.json`` and
records the manifest's hash in the audit trail.

An adapter's ``preserve(ref, sink)``:

* calls :meth:`EvidenceSink.json` for metadata (key ids, names, created, last used; batch
  jobs; usage; version histories), :meth:`EvidenceSink.file` for a provider's own file (a
  batch job's output or error file), one call per *source* (``keys``, ``last-used``,
  ``cloudtrail``, ``batches``, ``usage``, ``versions``...);
* reports a source that failed with :meth:`EvidenceSink.failed` (the provider's message) and
  goes on with the next: a failed source never stops the containment;
* never hands over a key value (no ``secret``, ``value``, ``redacted_value``,
  ``partial_key_hint``, SSM ``Value``...): drop such fields before calling the sink. The sink
  scrubs key-shaped strings as a second line of defence, not as the first.

Item names are relative file names made of ``[A-Za-z0-9._-]`` (no folders); the sink adds
``.json`` to :meth:`EvidenceSink.json` items and refuses a name used twice for one reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

__all__ = ["EVIDENCE_ACTION", "EVIDENCE_KILL_POINTS", "EvidenceSink"]

EVIDENCE_ACTION = "evidence.preserve"
"""The action kind."""

EVIDENCE_KILL_POINTS: tuple[str, ...] = ("credentials", "batches")
"""The inventory lists whose references evidence is preserved from."""


class EvidenceSink(ABC):
    """Where one reference's evidence goes (implemented by the engine)."""

    @abstractmethod
    def json(self, name: str, data: Any, *, source: str) -> None:
        """Write ``data`` (JSON-ready) as ``<name>.json``; ``source`` names what it is
        (``keys``, ``usage``, ...) in the manifest."""

    @abstractmethod
    def file(self, name: str, chunks: Iterable[bytes], *, source: str) -> None:
        """Write a provider's own file (e.g. a batch output JSONL) as ``name``, streamed."""

    @abstractmethod
    def failed(self, source: str, message: str) -> None:
        """Record that ``source`` could not be preserved, with the provider's message."""
