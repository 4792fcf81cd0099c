"""Typed backend options: one pydantic model per adapter, checked where the config loads.

An adapter declares its options once, as a model whose fields carry types, defaults and a
docstring each (the docstrings are the option help)::

    class VaultOptions(AdapterOptions):
        url: HttpUrl
        \"\"\"Vault / OpenBao address, e.g. http://127.0.0.1:8299.\"\"\"
        token_file: FilePath = ""
        \"\"\"Fallback file holding the token (optional).\"\"\"
        request_timeout: Seconds = 30.0
        \"\"\"Seconds per HTTP call.\"\"\"

The types say what a value is, never the key's spelling: :data:`Seconds` is a positive
number of seconds (a string such as ``"10s"`` is refused, not parsed), :data:`FilePath` is
a file resolved against the config file's folder (``~`` expanded) when the validation
context has ``base_dir``, :data:`HttpUrl` an ``http(s)://`` URL, :data:`EnvName` the NAME
of an environment variable (a value pasted there is refused without being echoed).

The console validates a backend table with :meth:`AdapterOptions.problems` (unknown keys
refused with the closest option named); the adapter constructor validates again with
:meth:`AdapterOptions.parse` (unknown keys ignored) and raises
:class:`~console.errors.AdapterError` naming the backend, the option and the value.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from console.errors import AdapterError

__all__ = [
    "AdapterOptions",
    "Command",
    "EnvName",
    "FilePath",
    "HttpUrl",
    "OptionProblem",
    "Seconds",
    "Wait",
    "describe_error",
]


def _seconds(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("seconds_type", "must be a number of seconds")
    return value


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    return value


def _resolve(value: str, info: ValidationInfo) -> str:
    """``~`` expanded; relative paths joined to ``context["base_dir"]`` when given."""
    if not value:
        return value
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # pathlib: ~user with no such user, or no home folder
        raise PydanticCustomError("path_expand", "cannot expand '~': no such user, or no "
                                  "home folder") from exc
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return str(path)


def _http_url(value: str) -> str:
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise PydanticCustomError("http_url", "must be an http:// or https:// URL")
    return value


def _command(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, list)
                                  and all(isinstance(a, str) for a in value)):
        return value
    raise PydanticCustomError("command", "must be a command: a string or a list of strings")


def _env_name(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise PydanticCustomError("env_name", "must be the NAME of an environment variable")
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]
"""A positive duration in seconds (an int or a float; strings such as ``"10s"`` refused)."""
Wait = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
"""A duration in seconds that may be 0 (do not wait)."""
FilePath = Annotated[str, BeforeValidator(_text), AfterValidator(_resolve)]
"""A file: ``~`` expanded, relative to the config file's folder (context ``base_dir``)."""
HttpUrl = Annotated[str, BeforeValidator(_text), AfterValidator(_http_url)]
"""An ``http://`` or ``https://`` URL (kept as written; ``""`` = not set)."""
EnvName = Annotated[str, BeforeValidator(_text), AfterValidator(_env_name)]
"""The NAME of an environment variable (the console reads the secret from it)."""
Command = Annotated[str | list[str], BeforeValidator(_command)]
"""A command: one string (split like a shell would) or a list of arguments."""


OptionProblem = tuple[str, str, str]
"""``(option, message, hint)`` of one invalid option."""


_DOCS: dict[type, dict[str, str]] = {}


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of an options model and its bases (read on first use).

    Pydantic's ``use_attribute_docstrings`` parses every model's source when the class is
    created, on every config load; the help and the hints need it only when shown.
    """
    if cls not in _DOCS:
        docs: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if not (isinstance(klass, type) and issubclass(klass, AdapterOptions)):
                continue
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
            except (OSError, TypeError, SyntaxError):
                continue
            body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) \
                else []
            for node, after in zip(body, body[1:], strict=False):
                if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                        and isinstance(after, ast.Expr)
                        and isinstance(after.value, ast.Constant)
                        and isinstance(after.value.value, str)):
                    docs[node.target.id] = " ".join(after.value.value.split())
        _DOCS[cls] = docs
    return _DOCS[cls]


class AdapterOptions(BaseModel):
    """Base of every adapter's options model: one field per option, docstring = help.

    Unknown keys are ignored here (adapters built in code, by tests or third parties, keep
    working); the config loader refuses them through :meth:`problems`.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True,
                              defer_build=True)

    @classmethod
    def names(cls) -> list[str]:
        """Every accepted key: field names and their aliases, sorted."""
        out: set[str] = set()
        for name, info in cls.model_fields.items():
            out.add(name)
            alias = info.validation_alias
            choices = getattr(alias, "choices", None)
            if isinstance(alias, str):
                out.add(alias)
            elif choices:
                out.update(c for c in choices if isinstance(c, str))
        return sorted(out)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Option name -> its one-line description (the field's docstring, or its
        ``Field(description=...)``)."""
        docs = _field_docs(cls)
        return {name: " ".join((info.description or docs.get(name, "")).split())
                for name, info in cls.model_fields.items()}

    @classmethod
    def lazy_help(cls) -> Mapping[str, str]:
        """:meth:`help` as a mapping computed on first read: an adapter class's ``OPTIONS``
        is built when the adapter is imported, and parsing the model's source then would
        cost every start-up and every first plan tens of milliseconds per adapter."""
        return _LazyHelp(cls)

    @classmethod
    def parse(cls, backend: str, options: Mapping[str, Any],
              base_dir: Path | None = None) -> Self:
        """Validate ``options``; unknown keys are ignored.

        Args:
            backend: Backend name, for messages.
            options: The raw options.
            base_dir: Folder relative file options are resolved against (None: as given).

        Raises:
            AdapterError: The first invalid option: backend, option, value, allowed ones.
        """
        try:
            return cls.model_validate(dict(options), context={"base_dir": base_dir})
        except ValidationError as exc:
            opt, msg, hint = describe_error(exc.errors()[0], cls)
            raise AdapterError(f"backend {backend!r}: {msg}", where=backend,
                               hint=hint) from exc

    @classmethod
    def problems(cls, options: Mapping[str, Any], base_dir: Path | None = None,
                 known: list[str] | None = None) -> tuple[Self | None, list[OptionProblem]]:
        """Validate a backend table's options strictly: unknown keys are problems too.

        Args:
            options: The raw options (the backend table minus the console's own fields).
            base_dir: Folder relative file options are resolved against.
            known: Accepted keys (default: :meth:`names`); empty: none is refused (an
                adapter that declares no options).

        Returns:
            The validated model (None when invalid) and every problem found.
        """
        problems: list[OptionProblem] = []
        known = cls.names() if known is None else known
        for key in options if known else ():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                problems.append((str(key), f"unknown option {key!r}",
                                 (f"did you mean {close[0]!r}? " if close else "")
                                 + f"options: {', '.join(known) or 'none'}"))
        try:
            model = cls.model_validate(dict(options), context={"base_dir": base_dir})
        except ValidationError as exc:
            seen: set[str] = set()
            for err in exc.errors():  # one problem per option (a union reports each branch)
                found = describe_error(err, cls)
                if found[0] not in seen:
                    seen.add(found[0])
                    problems.append(found)
            return None, problems
        return (None if problems else model), problems

    def to_options(self) -> dict[str, Any]:
        """The options that were set, typed and resolved, by field name."""
        return self.model_dump(exclude_unset=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(err: ErrorDetails, model: type[AdapterOptions]) -> OptionProblem:
    """``(option, message, hint)`` for one pydantic error of an options model.

    The value is quoted except for :data:`EnvName` errors, where it may be a pasted secret.
    """
    loc = err.get("loc") or ()
    name = str(loc[0]) if loc else "options"
    desc = model.help().get(name, "")
    value = err.get("input")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = f" (got {_short(value)})"
    about = f"{name}: {desc}" if desc else ""
    if kind == "missing":
        return name, f"option {name} is required", about
    if kind == "seconds_type":
        return name, f"option {name} must be a number of seconds{got}", \
            f"e.g. {name} = 30 (a plain number of seconds, no unit)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": "> ", "greater_than_equal": ">= ", "less_than": "< ",
                "less_than_equal": "<= "}[kind]
        bound = next(iter(ctx.values()), "")
        return name, f"option {name} must be {sign}{bound}{got}", about
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        shown = ", ".join(a or '""' for a in allowed)
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        return name, f"option {name} must be one of {shown}{got}", \
            f"did you mean {close[0]!r}?" if close else f"use one of: {shown}"
    if kind == "command":
        return name, f"option {name} must be a command: a string or a list of strings{got}", \
            about
    if kind == "env_name":
        return name, f"option {name} must be the NAME of an environment variable (letters, " \
            "digits and _; the value is not shown)", \
            f"set {name} = \"MY_VAR\" and put the secret in $MY_VAR, never in the config"
    if kind == "http_url":
        return name, f"option {name} must be an http:// or https:// URL{got}", about
    if kind == "path_expand":
        return name, f"option {name}: cannot expand '~' in {_short(value)}: no such user, " \
            "or no home folder", "write the path in full, or start it with ~/"
    if kind == "string_pattern_mismatch":
        return name, f"option {name} {_short(value)} does not match " \
            f"{ctx.get('pattern', '')}", about
    msg = str(err.get("msg") or kind)
    msg = msg[0].lower() + msg[1:] if msg else msg
    return name, f"option {name}: {msg}{got}", about


class _LazyHelp(Mapping[str, str]):
    """``model.help()``, computed when first read."""

    def __init__(self, model: type[AdapterOptions]) -> None:
        self._model = model
        self._docs: dict[str, str] | None = None

    def _get(self) -> dict[str, str]:
        if self._docs is None:
            self._docs = self._model.help()
        return self._docs

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
