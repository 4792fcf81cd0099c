"""A small JSON Schema validator for inventory references (the subset adapters declare).

Every :class:`~adapters.base.ActionSpec` carries the JSON Schema of the reference fields its
action reads. The config loader checks every reference against it, so a reference that an
adapter would refuse at 3 a.m. (``kind = "tokn"``, no ``path``) is refused when the config
loads instead, with the bad value and the allowed ones::

    >>> [e.message for e in validate({"kind": "tokn"}, VAULT_REF)]   # doctest: +SKIP
    ["kind must be one of kv, token, lease (got 'tokn')"]

Supported keywords (anything else is reported by :func:`unsupported`, and a meta-test
keeps every shipped schema inside the subset): ``type``, ``enum``, ``const``, ``required``,
``properties``, ``additionalProperties``, ``items``, ``minItems``, ``minLength``,
``pattern``, ``minimum``, ``maximum``, ``oneOf``, ``anyOf``, ``allOf``, ``if`` / ``then`` /
``else``; ``description``, ``default``, ``title`` and ``examples`` are annotations.

:func:`validate` says everything that is wrong; :func:`compile_check` builds, once per
schema, a predicate that accepts a valid reference in about a microsecond (object schemas
become one generated function), so a 10,000-integration inventory pays little for the
check and :func:`validate` runs only on the references the predicate refuses.

Why not the ``jsonschema`` package: it is not a dependency of the console, references need
a small part of the specification, and the messages here name the field, the bad value and
the allowed ones (with the closest one) the way the config loader reports everything else.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KEYWORDS", "Check", "SchemaError", "compile_check", "field_names", "unsupported",
           "validate"]

Where = tuple[str | int, ...]

KEYWORDS = frozenset({
    "type", "enum", "const", "required", "properties", "additionalProperties", "items",
    "minItems", "minLength", "pattern", "minimum", "maximum", "oneOf", "anyOf", "allOf",
    "if", "then", "else", "description", "default", "title", "examples",
})
"""The keywords :func:`validate` understands."""

_TYPES: Mapping[str, str] = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "array": "an array", "object": "a table", "null": "null",
}


@dataclass(frozen=True)
class SchemaError:
    """One way an instance breaks its schema.

    Attributes:
        path: Where in the instance (keys and indices); ``()`` is the instance itself.
        message: What is wrong, naming the field and the bad value.
        hint: How to fix it (the allowed values, the closest field name).
    """

    path: Where
    message: str
    hint: str = ""


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    return value is None if kind == "null" else False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(path: Where) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the reference"


def _summary(branch: Mapping[str, Any]) -> str:
    """A branch of oneOf / anyOf in words: ``field 'api_key_id'``."""
    need = list(branch.get("required") or [])
    if need and set(branch) <= {"required", "description"}:
        return " and ".join(f"field {n!r}" for n in need)
    return str(branch.get("description") or "a matching shape")


def field_names(schema: Mapping[str, Any]) -> list[str]:
    """The fields a reference schema declares (top-level ``properties``), sorted."""
    return sorted((schema.get("properties") or {}).keys())


def unsupported(schema: Any, path: str = "") -> list[str]:
    """Keywords in ``schema`` (and its sub-schemas) that :func:`validate` would ignore."""
    if not isinstance(schema, Mapping):
        return []
    out = [f"{path}{k}" for k in schema if k not in KEYWORDS]
    for key in ("items", "if", "then", "else", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            out += unsupported(schema[key], f"{path}{key}.")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            out += unsupported(sub, f"{path}{key}[{i}].")
    for name, sub in (schema.get("properties") or {}).items():
        out += unsupported(sub, f"{path}properties.{name}.")
    return out


def validate(instance: Any, schema: Mapping[str, Any], path: Where = (),
             described: Mapping[str, Any] | None = None) -> list[SchemaError]:
    """Every way ``instance`` breaks ``schema`` (empty when it conforms).

    Args:
        instance: The value (a reference table, or a value inside one).
        schema: The JSON Schema (the subset in :data:`KEYWORDS`).
        path: Location of ``instance`` in the whole reference, for messages.
        described: Property schemas whose descriptions explain a missing field when
            ``schema`` (an ``if`` / ``then`` branch) has none of its own.

    Returns:
        The errors, outermost first.
    """
    errors: list[SchemaError] = []
    name = _name(path)
    kinds = schema.get("type")
    if kinds is not None:
        wanted = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(instance, k) for k in wanted):
            words = " or ".join(_TYPES.get(k, k) for k in wanted)
            return [SchemaError(path, f"{name} must be {words} (got {_short(instance)})")]
    if "const" in schema and instance != schema["const"]:
        errors.append(SchemaError(path, f"{name} must be {schema['const']!r} "
                                        f"(got {_short(instance)})"))
    if "enum" in schema and instance not in list(schema["enum"]):
        allowed = [str(v) for v in schema["enum"]]
        close = difflib.get_close_matches(str(instance), allowed, n=1, cutoff=0.5)
        errors.append(SchemaError(
            path, f"{name} must be one of {', '.join(allowed)} (got {_short(instance)})",
            f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(allowed)}"))
    if isinstance(instance, str):
        errors += _string(instance, schema, path, name)
    if _is(instance, "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(SchemaError(path, f"{name} must be at least {schema['minimum']} "
                                            f"(got {instance})"))
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(SchemaError(path, f"{name} must be at most {schema['maximum']} "
                                            f"(got {instance})"))
    if _is(instance, "array"):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            errors.append(SchemaError(path, f"{name} needs at least {schema['minItems']} "
                                            f"item(s) (got {len(instance)})"))
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(instance):
                errors += validate(item, schema["items"], (*path, i))
    described = schema.get("properties") or described
    if isinstance(instance, Mapping):
        errors += _object(instance, schema, path, described or {})
    errors += _combinators(instance, schema, path, name, described)
    return errors


def _string(value: str, schema: Mapping[str, Any], path: Where, name: str) -> list[SchemaError]:
    errors: list[SchemaError] = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(SchemaError(path, f"{name} must not be empty" if schema["minLength"] == 1
                                  else f"{name} needs at least {schema['minLength']} "
                                       "characters"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        what = schema.get("description") or f"match {schema['pattern']}"
        errors.append(SchemaError(path, f"{name} {_short(value)} is not valid",
                                  f"{name}: {what}"))
    return errors


def _object(value: Mapping[str, Any], schema: Mapping[str, Any], path: Where,
            described: Mapping[str, Any]) -> list[SchemaError]:
    errors: list[SchemaError] = []
    props: Mapping[str, Any] = schema.get("properties") or {}
    for need in schema.get("required") or []:
        if need not in value:
            errors.append(SchemaError(path, f"missing required field {need!r}"
                                      + (f" in {_name(path)}" if path else ""),
                                      _described(need, described)))
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            errors += validate(item, props[key], (*path, key))
        elif extra is False:
            known = sorted(props)
            close = difflib.get_close_matches(str(key), known, n=1)
            errors.append(SchemaError(
                (*path, key), f"unknown field {key!r}" + (f" in {_name(path)}" if path else ""),
                (f"did you mean {close[0]!r}? " if close else "")
                + f"fields: {', '.join(known)}"))
        elif isinstance(extra, Mapping):
            errors += validate(item, extra, (*path, key))
    return errors


def _described(field: str, props: Mapping[str, Any]) -> str:
    desc = (props.get(field) or {}).get("description")
    return f"{field}: {desc}" if desc else ""


def _combinators(instance: Any, schema: Mapping[str, Any], path: Where, name: str,
                 described: Mapping[str, Any] | None) -> list[SchemaError]:
    errors: list[SchemaError] = []
    for sub in schema.get("allOf") or []:
        errors += validate(instance, sub, path, described)
    if isinstance(schema.get("if"), Mapping):
        branch = "then" if not validate(instance, schema["if"], path) else "else"
        if isinstance(schema.get(branch), Mapping):
            errors += validate(instance, schema[branch], path, described)
    for key in ("oneOf", "anyOf"):
        branches: Sequence[Mapping[str, Any]] = schema.get(key) or []
        if not branches:
            continue
        matched = [b for b in branches if not validate(instance, b, path)]
        options = " / ".join(_summary(b) for b in branches)
        where = f" in {name}" if path else ""
        if not matched:
            errors.append(SchemaError(
                path, f"needs {'exactly' if key == 'oneOf' else 'at least'} one of: "
                      f"{options}{where}"))
        elif key == "oneOf" and len(matched) > 1:
            errors.append(SchemaError(
                path, f"must have exactly one of: {options}{where} (found "
                      f"{' and '.join(_summary(b) for b in matched)})"))
    return errors


Check = Callable[[Any], bool]

_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (Mapping,), "null": (type(None),),
}


def _accept(_: Any) -> bool:
    return True


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]

    def every(v: Any) -> bool:
        for check in checks:
            if not check(v):
                return False
        return True
    return every


def compile_check(schema: Mapping[str, Any]) -> Check:
    """A fast predicate equivalent to ``not validate(instance, schema)``.

    Loading a 10,000-integration inventory checks tens of thousands of references: the
    predicate accepts a valid one in a few microseconds, and :func:`validate` runs only on
    the few it refuses, to say why.
    """
    fast = _fast_path(schema) or _generate_object(schema)
    if fast is not None:
        return fast
    checks: list[Check] = []
    kinds = schema.get("type")
    if kinds is not None:
        wanted = [kinds] if isinstance(kinds, str) else list(kinds)
        types = tuple(t for k in wanted for t in _PY_TYPES.get(k, ()))
        no_bool = "boolean" not in wanted and any(k in ("integer", "number") for k in wanted)
        checks.append((lambda v: isinstance(v, types) and not isinstance(v, bool)) if no_bool
                      else (lambda v: isinstance(v, types)))
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: v == const)
    if "enum" in schema:
        allowed = list(schema["enum"])
        checks.append(lambda v: v in allowed)
    checks += _compile_scalars(schema)
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        checks.append(_compile_object(schema))
    if isinstance(schema.get("items"), Mapping):
        item_check = compile_check(schema["items"])
        checks.append(lambda v: not isinstance(v, list | tuple) or all(map(item_check, v)))
    checks += _compile_combinators(schema)
    return _all(checks)


_NOTES = frozenset({"description", "default", "title", "examples"})


def _fast_path(schema: Mapping[str, Any]) -> Check | None:
    """One closure for the shapes references use most (a non-empty string, a required
    list, a condition on constants), or None for the general compiler."""
    keys = set(schema) - _NOTES
    if keys <= {"type", "minLength"} and schema.get("type") == "string":
        low = int(schema.get("minLength", 0))
        return lambda v: isinstance(v, str) and len(v) >= low
    if keys == {"required"}:
        need = tuple(schema["required"])
        return lambda v: not isinstance(v, Mapping) or all(r in v for r in need)
    props = schema.get("properties")
    if keys <= {"properties", "required"} and isinstance(props, Mapping) and all(
            isinstance(p, Mapping) and set(p) - _NOTES == {"const"} for p in props.values()):
        consts = tuple((k, p["const"]) for k, p in props.items())
        required = frozenset(schema.get("required") or ())

        def consts_match(v: Any) -> bool:
            if not isinstance(v, Mapping):
                return True
            for key, const in consts:
                if key in v:
                    if v[key] != const:
                        return False
                elif key in required:
                    return False
            return all(r in v for r in required)
        return consts_match
    return None


_GENERATED = frozenset({"type", "required", "properties", "additionalProperties", "allOf",
                        "if", "then", "else", "anyOf", "oneOf"})


def _generate_object(schema: Mapping[str, Any]) -> Check | None:
    """One generated function for an object schema (no call per property or per
    ``if`` / ``then`` on constants): a reference table is checked in about a microsecond.

    None when the schema is not such an object schema (the closures handle it).
    """
    extra = schema.get("additionalProperties", True)
    if (not isinstance(extra, bool) or set(schema) - _NOTES - _GENERATED
            or schema.get("type", "object") != "object"
            or ("type" not in schema and set(schema) & {"allOf", "if", "anyOf", "oneOf"})):
        return None  # (without a type, combinators also judge non-objects)
    env: dict[str, Any] = {"Mapping": Mapping, "_M": object()}
    lines = ["def check(v):", "    if not isinstance(v, Mapping):",
             f"        return {'type' not in schema}"]
    required = list(schema.get("required") or [])
    props: Mapping[str, Any] = schema.get("properties") or {}
    if required:
        env["REQ"] = frozenset(required)
        lines.append("    if not REQ <= v.keys(): return False")
    if extra is False:
        env["KNOWN"] = frozenset(props)
        lines.append("    if not v.keys() <= KNOWN: return False")
    for n, (key, sub) in enumerate(props.items()):
        env[f"K{n}"] = key
        lines.append(f"    x = v.get(K{n}, _M)")
        lines.append(f"    if x is not _M and not {_expression(sub, n, env)}: return False")
    conditions = [sub for sub in schema.get("allOf") or []]
    if "if" in schema:
        conditions.append({k: schema[k] for k in ("if", "then", "else") if k in schema})
    for n, sub in enumerate(conditions):
        lines += _inline_if(sub, n, env)
    for n, key in enumerate(("anyOf", "oneOf")):
        if schema.get(key):
            env[f"B{n}"] = _compile_combinators({key: schema[key]})[0]
            lines.append(f"    if not B{n}(v): return False")
    lines.append("    return True")
    exec("\n".join(lines), env)  # noqa: S102 - source built above from the schema's shape
    check: Check = env["check"]
    return check


def _inline_if(sub: Mapping[str, Any], n: int, env: dict[str, Any]) -> list[str]:
    """``if`` on constants with ``then`` / ``else`` requiring fields, as two lines; any
    other sub-schema as a call to its compiled check."""
    raw = sub.get("if")
    cond: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    props = cond.get("properties")
    branches = [sub.get(k) for k in ("then", "else") if k in sub]
    if not (set(sub) - _NOTES <= {"if", "then", "else"} and isinstance(props, Mapping)
            and set(cond) - _NOTES <= {"properties", "required"}
            and all(isinstance(p, Mapping) and set(p) - _NOTES == {"const"}
                    for p in props.values())
            and all(isinstance(b, Mapping) and set(b) - _NOTES == {"required"}
                    for b in branches)):
        env[f"A{n}"] = compile_check(sub)
        return [f"    if not A{n}(v): return False"]
    need = set(cond.get("required") or ())
    terms = []
    for m, (key, p) in enumerate(props.items()):
        env[f"IK{n}_{m}"], env[f"IC{n}_{m}"] = key, p["const"]
        terms.append(f"v.get(IK{n}_{m}, _M) == IC{n}_{m}" if key in need
                     else f"(IK{n}_{m} not in v or v[IK{n}_{m}] == IC{n}_{m})")
    terms += [f"{r!r} in v" for r in need - set(props)]
    lines = [f"    c = {' and '.join(terms) or 'True'}"]
    for word, prefix in (("then", ""), ("else", "not ")):
        if word in sub:
            env[f"IR{n}{word}"] = frozenset(sub[word]["required"])
            lines.append(f"    if {prefix}c and not IR{n}{word} <= v.keys(): return False")
    return lines


def _expression(sub: Mapping[str, Any], n: int, env: dict[str, Any]) -> str:
    """A Python expression over ``x`` that is true when ``x`` conforms to ``sub``."""
    keys = set(sub) - _NOTES
    if keys <= {"type", "minLength"} and sub.get("type") == "string":
        return f"(isinstance(x, str) and len(x) >= {int(sub.get('minLength', 0))})"
    if keys == {"enum"}:
        env[f"E{n}"] = tuple(sub["enum"])
        return f"(x in E{n})"
    if not keys:
        return "True"
    env[f"S{n}"] = compile_check(sub)
    return f"S{n}(x)"


def _compile_object(schema: Mapping[str, Any]) -> Check:
    props = {k: compile_check(v) for k, v in (schema.get("properties") or {}).items()}
    required = frozenset(schema.get("required") or ())
    extra = schema.get("additionalProperties", True)
    closed = extra is False
    extra_check = compile_check(extra) if isinstance(extra, Mapping) else None
    known = frozenset(props)

    def obj(v: Any) -> bool:
        if not isinstance(v, Mapping):
            return True
        keys = v.keys()
        if required and not required <= keys:
            return False
        if closed and not keys <= known:
            return False
        for key, item in v.items():
            check = props.get(key)
            if check is not None:
                if not check(item):
                    return False
            elif extra_check is not None and not extra_check(item):
                return False
        return True
    return obj


def _compile_scalars(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "minLength" in schema:
        low = schema["minLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) >= low)
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        checks.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
    if "minimum" in schema:
        least = schema["minimum"]
        checks.append(lambda v: not _is(v, "number") or v >= least)
    if "maximum" in schema:
        most = schema["maximum"]
        checks.append(lambda v: not _is(v, "number") or v <= most)
    if "minItems" in schema:
        count = schema["minItems"]
        checks.append(lambda v: not _is(v, "array") or len(v) >= count)
    return checks


def _compile_combinators(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = [compile_check(sub) for sub in schema.get("allOf") or []]
    if "if" in schema and set(schema) & {"then", "else"}:
        checks.append(_compile_if(schema))
    any_of = [compile_check(b) for b in schema.get("anyOf") or []]
    if any_of:
        checks.append(lambda v: any(c(v) for c in any_of))
    one_of = [compile_check(b) for b in schema.get("oneOf") or []]
    if one_of:
        checks.append(lambda v: sum(1 for c in one_of if c(v)) == 1)
    return checks


def _compile_if(schema: Mapping[str, Any]) -> Check:
    cond = compile_check(schema["if"])
    then = compile_check(schema["then"]) if isinstance(schema.get("then"), Mapping) else _accept
    other = compile_check(schema["else"]) if isinstance(schema.get("else"), Mapping) \
        else _accept
    return lambda v: then(v) if cond(v) else other(v)
