"""Adapter declarations enforced where the config loads: types, typed options, reference schemas.

Every command loads the config, and :func:`~console.config.load_config` calls the checks
here, so a declaration on an adapter is a promise kept (Cloud Custodian's ``validate()``
before ``process()``), not a comment:

- a backend whose ``type`` names no installed adapter is refused (``"valt"``: did you mean
  ``vault``?);
- a backend's options are validated by the adapter's typed ``Options`` model (durations are
  numbers of seconds, files resolve against the config's folder, URLs are ``http(s)://``),
  and an option the adapter does not declare is refused with the closest name: a misspelt
  option silently ignored is exactly what bites at 3 a.m.;
- every inventory reference (and every contact that names a backend) is validated against
  the JSON Schema its adapter's actions declare for that list (required fields, enums,
  types, unknown fields), with the bad value and the allowed ones.

Every problem carries the ``file:line`` of the offending key. Built-in adapters are checked
from :mod:`adapters.specs` without importing any SDK; a third-party adapter's class is
imported (through its entry point) to read its declarations.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from adapters import base
from adapters.base import ENTRY_POINT_GROUP, Adapter
from adapters.options import AdapterOptions
from adapters.schema import Check, SchemaError, compile_check, validate
from adapters.specs import AdapterSpec, builtin_spec, spec_of
from console.tomlsrc import Loc, Problem

__all__ = [
    "BACKEND_FIELDS",
    "Declared",
    "check_backends",
    "check_references",
    "declared",
    "reference_problems",
    "reference_schemas",
]

BACKEND_FIELDS: tuple[str, ...] = ("type", "max_concurrency", "rate_per_second", "timeout",
                                   "sandbox")
"""Keys of a ``[backends.NAME]`` table that belong to the console, not to the adapter."""

REFERENCE_LISTS: tuple[str, ...] = ("credentials", "batches", "flags", "egress", "contacts")
"""Integration fields holding references (``contacts``: those that name a backend)."""


@functools.cache
def _entry_points() -> dict[str, str]:
    """Installed adapter name -> entry point value (read once per process: the scan of
    every installed distribution's metadata is the slow part of looking adapters up)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names() -> list[str]:
    """Names of every installed adapter (imports none of them)."""
    return sorted(_entry_points())


def load_adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as ``name`` (see :func:`adapters.base.load_adapter_class`)."""
    return base.load_adapter_class(name)


@dataclass(frozen=True)
class Declared:
    """What is known about one backend type.

    Attributes:
        spec: The adapter's declarations, or None when it is unknown or cannot be loaded.
        problem: ``"unknown"`` (no such adapter) or why the adapter could not be loaded.
    """

    spec: AdapterSpec | None
    problem: str = ""


def declared(types: Iterable[str]) -> dict[str, Declared]:
    """The declarations of each adapter type, built-ins without importing their module.

    Built-in names resolve to :mod:`adapters.specs` without scanning the installed entry
    points (the built-ins are always installed with the console); any other name is looked
    up among the entry points and its class imported. An adapter whose module fails to
    import (a missing SDK) is not a load error: its references cannot be checked
    (``inventory lint`` warns) and using it fails at run time.
    """
    names: set[str] | None = None  # the entry-point scan costs ms: only for other names
    out: dict[str, Declared] = {}
    for kind in types:
        if kind in out:
            continue
        try:
            spec = builtin_spec(kind)
            if spec is None:
                names = set(adapter_names()) if names is None else names
                if kind not in names:
                    out[kind] = Declared(None, "unknown")
                    continue
                spec = spec_of(load_adapter_class(kind))
            out[kind] = Declared(spec)
        except Exception as exc:  # noqa: BLE001 - a broken adapter must not break loading
            out[kind] = Declared(None, f"{type(exc).__name__}: {exc}")
    return out


def check_backends(
    raw: Mapping[str, Any], kinds: Mapping[str, Declared], base_dir: Path,
    locate: Callable[[Loc], str],
) -> tuple[list[Problem], dict[str, AdapterOptions]]:
    """Backend types and options against the adapters' declarations.

    Args:
        raw: The ``backends`` table (name -> raw table).
        kinds: :func:`declared` for every type named.
        base_dir: The config file's folder (file options resolve against it).
        locate: ``loc -> file:line`` in the config file.

    Returns:
        The problems, and the validated options of every valid backend by name.
    """
    problems: list[Problem] = []
    typed: dict[str, AdapterOptions] = {}
    for name, table in raw.items():
        kind = table.get("type") if isinstance(table, Mapping) else None
        if not isinstance(kind, str):
            continue  # reported by the Backend model
        info = kinds.get(kind)
        if info is None or info.spec is None:
            if info is not None and info.problem == "unknown":
                installed = adapter_names()
                close = difflib.get_close_matches(kind, installed, n=1, cutoff=0.5)
                problems.append(Problem(
                    locate(("backends", name, "type")),
                    f"backend {name!r} has unknown type {kind!r}: no adapter of that name is "
                    "installed",
                    (f"did you mean {close[0]!r}? " if close else "")
                    + f"installed adapters: {', '.join(installed) or 'none'}"))
            continue
        options = {k: v for k, v in table.items() if k not in BACKEND_FIELDS}
        known = info.spec.known_options()
        model, found = info.spec.options.problems(options, base_dir,
                                                  [*known, *BACKEND_FIELDS] if known else [])
        for opt, msg, hint in found:
            problems.append(Problem(locate(("backends", name, opt)),
                                    f"backend {name!r} ({kind}): {msg}", hint))
        if model is not None:
            typed[name] = model
    return problems, typed


def reference_schemas(spec: AdapterSpec, kill_point: str) -> list[Mapping[str, Any]]:
    """The distinct reference schemas of ``spec``'s actions on ``kill_point``.

    A schema that lists ``properties`` without saying ``additionalProperties`` is taken as
    closed: a reference field no action reads is a typo. A schema without properties says
    nothing and is left out.
    """
    out: list[Mapping[str, Any]] = []
    seen: set[int] = set()
    for action in spec.actions.values():
        schema = action.schema
        if action.kill_point != kill_point or id(schema) in seen or not schema.get("properties"):
            continue
        seen.add(id(schema))
        if "additionalProperties" not in schema:
            props = {"backend": {}, "label": {}, **schema["properties"]}
            schema = {**schema, "properties": props, "additionalProperties": False}
        if kill_point == "credentials" and schema.get("additionalProperties") is False:
            # an inventory field of every credential reference (``Integration``), not the
            # adapter's: what the integration's tools hold, not its provider key
            schema = {**schema, "properties": {**schema["properties"],
                                               "role": {"enum": ["downstream"]}}}
        out.append(schema)
    return out


def _errors(item: Mapping[str, Any], schemas: Sequence[Mapping[str, Any]]) -> list[SchemaError]:
    found: list[SchemaError] = []
    for schema in schemas:
        for err in validate(item, schema):
            if all((e.path, e.message) != (err.path, err.message) for e in found):
                found.append(err)
    return found


def check_references(
    raws: Sequence[tuple[str, int, Any]],
    backends: Mapping[str, str],
    kinds: Mapping[str, Declared],
    at: Callable[[str], Callable[[Loc], str]],
) -> list[Problem]:
    """Every reference and backend-bound contact against its adapter's reference schema.

    Works on the raw tables, so integrations that failed validation are checked too.
    References on an undefined backend, or on one whose adapter offers no action on that
    list, are left to the other checks (``undefined backend``, ``inventory lint``).

    Args:
        raws: ``(source, local index, raw integration table)`` of every integration.
        backends: Backend name -> type, of the backends defined.
        kinds: :func:`declared` for every type.
        at: Source key -> ``loc -> file:line`` in that source.

    Returns:
        One problem per schema error, its message starting with the integration.
    """
    out: list[Problem] = []
    for n, p in reference_problems(raws, backends, kinds, at):
        iid = raws[n][2].get("id")
        label = f"integration {iid!r}" if isinstance(iid, str) else f"integration #{raws[n][1] + 1}"
        out.append(Problem(p.where, f"{label}: {p.msg}", p.hint))
    return out


def reference_problems(
    raws: Sequence[tuple[str, int, Any]],
    backends: Mapping[str, str],
    kinds: Mapping[str, Declared],
    at: Callable[[str], Callable[[Loc], str]],
) -> Iterator[tuple[int, Problem]]:
    """:func:`check_references`, as ``(index in raws, problem)`` without the integration."""
    cache: dict[tuple[str, str], tuple[list[Mapping[str, Any]], list[Check]]] = {}
    for n, (src, local, raw) in enumerate(raws):
        if not isinstance(raw, Mapping):
            continue
        for kind in REFERENCE_LISTS:
            items = raw.get(kind)
            if not isinstance(items, list):
                continue
            for j, item in enumerate(items):
                name = item.get("backend") if isinstance(item, Mapping) else None
                adapter = backends.get(name) if isinstance(name, str) else None
                info = kinds.get(adapter) if adapter else None
                if adapter is None or info is None or info.spec is None:
                    continue
                key = (adapter, kind)
                if key not in cache:
                    schemas = reference_schemas(info.spec, kind)
                    cache[key] = schemas, [compile_check(s) for s in schemas]
                schemas, checks = cache[key]
                for check in checks:
                    if not check(item):
                        break
                else:
                    continue  # valid: the usual case, a few microseconds
                for err in _errors(item, schemas):
                    yield n, Problem(
                        at(src)(("integrations", local, kind, j, *err.path)),
                        f"{kind}[{j}] on {adapter} backend {name!r}: {err.message}", err.hint)
