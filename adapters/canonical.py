"""One canonical JSON for every hash: RFC 8785 (JSON Canonicalization Scheme, JCS).

Plans, precondition fingerprints, the audit chain and witness checkpoints are all hashed over
the JCS form of plain JSON data, so that a verifier written in another language (JCS is
ECMAScript's ``JSON.stringify`` with keys sorted by UTF-16 code units) reproduces every hash.

Values that are not plain JSON are first normalised the way the trail stores them: objects
other than dict / list / str / bool / None / finite numbers become their ``str()``, and
integers outside the IEEE-754 safe range (|n| > 2**53 - 1, which JCS cannot represent
exactly) become decimal strings, and a lone surrogate in a string (not Unicode, so not JCS)
becomes its ``\\udXXX`` escape. Stored data goes through the same normalisation, so what is
hashed is what is stored.

Trails of schema version 1 and plans of version 1 were hashed with :func:`legacy_json`
(Python's ``json.dumps`` with sorted keys and ASCII escapes); they still verify.
"""

from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

__all__ = ["MAX_SAFE_INT", "canonical_bytes", "canonical_json", "jsonable", "legacy_json"]

MAX_SAFE_INT = 2**53 - 1
"""Largest integer JCS (an IEEE-754 double) represents exactly."""


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (see the module docstring for the rules)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if value.isascii() or _utf8(value) else (
            value.encode("utf-8", "backslashreplace").decode("utf-8"))
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (normalised by :func:`jsonable`)."""
    return rfc8785.dumps(jsonable(value))


def canonical_json(value: Any) -> str:
    """The RFC 8785 canonical text of ``value``."""
    return canonical_bytes(value).decode("utf-8")


def legacy_json(value: Any) -> str:
    """Version 1 canonical form: ``json.dumps`` with sorted keys, no spaces, ASCII escapes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
