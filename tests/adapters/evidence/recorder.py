"""An in-memory :class:`~adapters.evidence.EvidenceSink` for adapter tests.

It is stricter than the contract asks of a sink in one way that matters to tests: JSON items
must be JSON-ready as given (``json.dumps`` without a ``default``), so an adapter that hands
over a ``datetime`` or ``bytes`` fails here instead of relying on the engine's encoder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.evidence import EvidenceSink

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass
class Item:
    """One item handed to the sink."""

    name: str
    source: str
    data: Any = None
    content: bytes | None = None

    @property
    def text(self) -> str:
        """What would be written, as text."""
        if self.content is not None:
            return self.content.decode("utf-8", "replace")
        return json.dumps(self.data)


@dataclass
class Recorder(EvidenceSink):
    """Everything one reference's ``preserve()`` handed over, in order."""

    items: dict[str, Item] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def _add(self, item: Item) -> None:
        assert _NAME.match(item.name), f"bad item name {item.name!r}"
        assert item.name not in self.items, f"item name {item.name!r} used twice"
        self.items[item.name] = item

    def json(self, name: str, data: Any, *, source: str) -> None:
        json.dumps(data)  # JSON-ready as given
        self._add(Item(f"{name}.json", source, data=data))

    def file(self, name: str, chunks: Iterable[bytes], *, source: str) -> None:
        self._add(Item(name, source, content=b"".join(chunks)))

    def failed(self, source: str, message: str) -> None:
        self.failures.append((source, message))

    def data(self, name: str) -> Any:
        """The JSON data of item ``name`` (without ``.json``)."""
        return self.items[f"{name}.json"].data

    @property
    def sources(self) -> set[str]:
        """The sources that were preserved."""
        return {i.source for i in self.items.values()}

    @property
    def failed_sources(self) -> set[str]:
        """The sources reported failed."""
        return {s for s, _ in self.failures}

    def everything(self) -> str:
        """Every byte handed over, item names and failure messages included, as text."""
        return "\n".join([*(f"{i.name} {i.source} {i.text}" for i in self.items.values()),
                          *(f"{s} {m}" for s, m in self.failures)])
