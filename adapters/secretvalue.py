"""Pick the key value out of a stored secret (shared by every secret-store adapter).

Stores hold either the bare key or a small JSON object around it. The rule, documented on
``Adapter.reveal``: the field named by the reference's ``field``; else the only string value;
else the first of ``api_key``, ``key``, ``token``, ``value``. Values stay in memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["PREFERRED_FIELDS", "json_object", "pick_field", "pick_value"]

PREFERRED_FIELDS = ("api_key", "key", "token", "value")


def json_object(text: str) -> dict[str, Any] | None:
    """``text`` parsed when it is a JSON object (leading white space allowed), else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def pick_field(data: Mapping[str, Any], field: str | None = None) -> str | None:
    """The key value inside a decoded object: ``field``, the only string, a usual name."""
    if field:
        value = data.get(field)
        return str(value) if isinstance(value, str) and value else None
    strings = {k: v for k, v in data.items() if isinstance(v, str) and v}
    if len(strings) == 1:
        return next(iter(strings.values()))
    for name in PREFERRED_FIELDS:
        if name in strings:
            return strings[name]
    return None


def pick_value(data: Any, field: str | None = None) -> str | None:
    """The key value inside ``data`` (a mapping, a JSON string or a bare string)."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode(errors="replace")
    if isinstance(data, str):
        text = data.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                return text or None
        else:
            return text or None
    if not isinstance(data, Mapping):
        return None
    return pick_field(data, field)
