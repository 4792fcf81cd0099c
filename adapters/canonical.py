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


def _c_encoder_is_jcs(value: Any) -> bool:
    """True when Python's C JSON encoder (sorted keys, no spaces, UTF-8) writes exactly the
    RFC 8785 form of ``value`` (normalised JSON data, integral floats already integers; see
    :func:`_for_c_encoder`): every float is one both print the same way (1e-4 <= |x| < 1e16:
    shortest round-trip digits, no exponent in either) and no key holds a character outside
    the Basic Multilingual Plane (where sorting by code point and by UTF-16 code unit can
    differ). Strings and integers always agree: both escape only ``"``, backslash and control
    characters, with the same short forms and lowercase ``\\u00xx``."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not k.isascii() and max(k) > "\uffff":
                    return False
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float) and not 1e-4 <= abs(v) < 1e16:
            return False
    return True


def _for_c_encoder(value: Any) -> Any:
    """:func:`jsonable`, with every integral float in the safe range as an integer: JCS
    writes ``30.0`` as ``30`` (ECMAScript number formatting), Python as ``30.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _for_c_encoder(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_for_c_encoder(v) for v in value]
    return jsonable(value)


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (normalised by :func:`jsonable`).

    Written by Python's C JSON encoder when that gives the same bytes (almost always: see
    :func:`_c_encoder_is_jcs`), else by the ``rfc8785`` reference implementation, which is
    pure Python and about 20 times slower (it dominated planning 10,000 integrations).
    """
    data = _for_c_encoder(value)
    if _c_encoder_is_jcs(data):
        return json.dumps(data, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode("utf-8")
    return rfc8785.dumps(data)


def canonical_json(value: Any) -> str:
    """The RFC 8785 canonical text of ``value``."""
    return canonical_bytes(value).decode("utf-8")


def legacy_json(value: Any) -> str:
    """Version 1 canonical form: ``json.dumps`` with sorted keys, no spaces, ASCII escapes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
