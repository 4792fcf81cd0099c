"""A tiny, safe evaluator for runbook ``when`` conditions over integration fields.

The expression is parsed with :mod:`ast` and checked against a strict whitelist when the runbook
loads; it is then evaluated by walking the tree (never ``eval``)::

    >>> w = compile_when("environment == 'prod' and 'customer' in data_classes")
    >>> w.evaluate({"environment": "prod", "data_classes": ["customer"]})
    True

Allowed: field names (see :data:`FIELDS`; ``env`` is short for ``environment``), string
literals, lists/tuples of string literals, ``==``, ``!=``, ``in``, ``not in``, ``and``, ``or``,
``not`` and parentheses. Anything else (calls, attributes, subscripts, arithmetic, other names)
raises :class:`~console.errors.RunbookValidationError`.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from console.errors import RunbookValidationError
from console.inventory import DATA_CLASSES, ENDPOINT_MODES, ENVIRONMENTS, STATUSES

__all__ = ["FIELDS", "LIST_FIELDS", "SCALAR_FIELDS", "When", "compile_when"]

SCALAR_FIELDS: frozenset[str] = frozenset(
    {"id", "name", "owner", "environment", "status", "provider", "region", "approval_record"}
)
"""Integration fields holding one string."""
LIST_FIELDS: frozenset[str] = frozenset(
    {"models", "endpoint_mode", "data_classes", "tenants", "tags"}
)
"""Integration fields holding a list of strings."""
ALIASES: Mapping[str, str] = {"env": "environment"}
FIELDS: frozenset[str] = SCALAR_FIELDS | LIST_FIELDS | frozenset(ALIASES)
"""Every name a condition may use."""

_ENUMS: Mapping[str, tuple[str, ...]] = {
    "environment": ENVIRONMENTS,
    "status": STATUSES,
    "data_classes": DATA_CLASSES,
    "endpoint_mode": ENDPOINT_MODES,
}
_MAX_LEN = 500
_HINT = (
    "write e.g. environment == 'prod' and 'customer' in data_classes; "
    f"fields: {', '.join(sorted(FIELDS))}"
)


def _fail(msg: str, expr: str) -> RunbookValidationError:
    return RunbookValidationError(f"invalid when {expr!r}: {msg}", hint=_HINT)


@dataclass(frozen=True)
class When:
    """A validated condition. Build with :func:`compile_when`.

    Attributes:
        source: The expression text.
        names: The fields it reads (aliases resolved).
    """

    source: str
    tree: ast.expr = field(repr=False, compare=False)
    names: frozenset[str] = frozenset()

    def evaluate(self, integration: Any) -> bool:
        """Evaluate for an :class:`~console.inventory.Integration` or a mapping of fields."""
        return bool(_eval(self.tree, integration))

    __call__ = evaluate


def compile_when(expr: str) -> When:
    """Parse and validate a ``when`` expression.

    Raises:
        RunbookValidationError: The expression uses anything outside the whitelist, an
            unknown field, or compares an enum field with a value it can never have.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise _fail("empty condition", str(expr))
    if len(expr) > _MAX_LEN:
        raise _fail(f"longer than {_MAX_LEN} characters", expr[:40] + "...")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _fail(f"not a valid expression ({type(exc).__name__})", expr) from exc
    names: set[str] = set()
    try:
        _check(tree.body, expr, names)
    except RecursionError as exc:
        raise _fail("nested too deeply", expr) from exc
    return When(expr, tree.body, frozenset(names))


# --------------------------------------------------------------------------- checking


def _field(node: ast.expr, expr: str, names: set[str]) -> str | None:
    """The field a Name node reads (alias resolved), None if not a Name."""
    if not isinstance(node, ast.Name):
        return None
    if node.id not in FIELDS:
        raise _fail(f"unknown name {node.id!r}", expr)
    name = ALIASES.get(node.id, node.id)
    names.add(name)
    return name


def _string(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _literal_list(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple) and all(_string(e) for e in node.elts):
        return [str(e.value) for e in node.elts if isinstance(e, ast.Constant)]
    return None


def _check_enum(name: str | None, values: list[str], expr: str) -> None:
    allowed = _ENUMS.get(name or "")
    if allowed:
        for v in values:
            if v not in allowed:
                raise _fail(f"{name} is never {v!r} (one of: {', '.join(allowed)})", expr)


def _check(node: ast.expr, expr: str, names: set[str]) -> None:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And | ast.Or):
        for value in node.values:
            _check(value, expr, names)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, expr, names)
        return
    if isinstance(node, ast.Compare):
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            _check_compare(left, op, right, expr, names)
            left = right
        return
    raise _fail(f"{type(node).__name__} is not allowed", expr)


def _operand(node: ast.expr, expr: str, names: set[str]) -> tuple[str, str | None]:
    """Classify an operand: ('scalar'|'list'|'str'|'literal-list', field or None)."""
    name = _field(node, expr, names)
    if name is not None:
        return ("list" if name in LIST_FIELDS else "scalar"), name
    if _string(node):
        return "str", None
    if _literal_list(node) is not None:
        return "literal-list", None
    if isinstance(node, ast.Constant):
        raise _fail(f"only string literals are allowed, not {node.value!r}", expr)
    raise _fail(f"{type(node).__name__} is not allowed", expr)


def _check_compare(
    left: ast.expr, op: ast.cmpop, right: ast.expr, expr: str, names: set[str]
) -> None:
    lkind, lname = _operand(left, expr, names)
    rkind, rname = _operand(right, expr, names)
    if isinstance(op, ast.Eq | ast.NotEq):
        for kind, fname in ((lkind, lname), (rkind, rname)):
            if kind in ("list", "literal-list"):
                what = fname or "a list"
                raise _fail(f"{what} is a list: use 'value' in {fname or '[...]'}", expr)
        if lkind == "str" and rkind == "str":
            raise _fail("compares two literals", expr)
        if lname and rkind == "str":
            _check_enum(lname, [_str(right)], expr)
        if rname and lkind == "str":
            _check_enum(rname, [_str(left)], expr)
        return
    if isinstance(op, ast.In | ast.NotIn):
        if lkind not in ("scalar", "str"):
            raise _fail("the left side of 'in' must be a field or a string", expr)
        if rkind not in ("list", "literal-list"):
            raise _fail("the right side of 'in' must be a list field or [...] of strings", expr)
        if lkind == "str" and rkind == "literal-list":
            raise _fail("compares two literals", expr)
        if lkind == "str":
            _check_enum(rname, [_str(left)], expr)
        elif rkind == "literal-list":
            _check_enum(lname, _literal_list(right) or [], expr)
        return
    raise _fail(f"operator {type(op).__name__} is not allowed (use ==, !=, in, not in)", expr)


def _str(node: ast.expr) -> str:
    assert isinstance(node, ast.Constant) and isinstance(node.value, str)
    return node.value


# --------------------------------------------------------------------------- evaluating


def _get(integration: Any, name: str) -> Any:
    if isinstance(integration, Mapping):
        value = integration.get(name)
    else:
        value = getattr(integration, name, None)
    if name in LIST_FIELDS:
        return list(value or [])
    return value


def _value(node: ast.expr, integration: Any) -> Any:
    if isinstance(node, ast.Name):
        return _get(integration, ALIASES.get(node.id, node.id))
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(e, integration) for e in node.elts]
    raise RunbookValidationError(f"unexpected {type(node).__name__} in when")  # unreachable


def _eval(node: ast.expr, integration: Any) -> bool:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, integration) for v in node.values)
        return any(_eval(v, integration) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, integration)
    if isinstance(node, ast.Compare):
        left = _value(node.left, integration)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _value(comparator, integration)
            if isinstance(op, ast.Eq):
                ok = left == right
            elif isinstance(op, ast.NotEq):
                ok = left != right
            elif isinstance(op, ast.In):
                ok = left in right
            else:
                ok = left not in right
            if not ok:
                return False
            left = right
        return True
    raise RunbookValidationError(f"unexpected {type(node).__name__} in when")  # unreachable
