"""Scrubber for key-shaped strings: secret values never reach the audit trail, logs or screen.

Every match is replaced by ``[REDACTED sha256:<12 hex>]``, a fingerprint of the value, so
the same key is recognisable across events without being shown::

    >>> scrub_text("Authorization: Bearer abc.def-123456789")
    'Authorization: Bearer [REDACTED sha256:...]'

Covered: OpenAI (``sk-``, ``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``), Anthropic
(``sk-ant-``), AWS secret access keys after an ``aws_secret_access_key``-like name (access
key *ids*, ``AKIA``/``ASIA``, are identifiers that AWS itself logs: they are how an operator
names the key to disable, so they are kept), Vault / OpenBao tokens (``hvs.``, ``hvb.``, ``hvr.``,
``s.``, ``b.``, ``r.``, ``sbr.``), GitHub (``ghp_``..., ``github_pat_``), Slack (``xox?-``),
Google API keys (``AIza``), JWTs, PEM private key blocks, ``Bearer``/``Basic`` credentials,
and the values of ``password=``, ``secret:``, ``token=``, ``api_key=``-style assignments
(and of dict keys with such names). UUIDs, run ids, hex digests and paths are left alone.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

__all__ = ["REDACTED_PREFIX", "ScrubFilter", "fingerprint_secret", "is_sensitive_name", "scrub",
           "scrub_text"]

REDACTED_PREFIX = "[REDACTED "
"""Every replacement starts with this; a value that already does is not scrubbed again."""

_SENSITIVE_NAME = (
    r"(?:[A-Za-z0-9_.-]*?[_.-])?"
    r"(?:password|passwd|pwd|passphrase|secret|secret[_-]?key|client[_-]?secret|token"
    r"|api[_-]?key|apikey|access[_-]?key|private[_-]?key|secret[_-]?access[_-]?key"
    r"|session[_-]?token|credentials?)"
)
_NAME_RE = re.compile(rf"(?i){_SENSITIVE_NAME}")
_PLACEHOLDERS = frozenset(
    {"", "none", "null", "true", "false", "***", "<redacted>", "redacted", "bearer", "basic"}
)


def fingerprint_secret(value: str) -> str:
    """Fingerprint of a secret value: ``sha256:`` and the first 12 hex digits of its SHA-256.

    Args:
        value: The secret; it is hashed as UTF-8 and never returned.

    Returns:
        For example ``sha256:5e884898da28``.
    """
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _redact(value: str) -> str:
    return f"{REDACTED_PREFIX}{fingerprint_secret(value)}]"


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    """Whether a field or key name (``db_password``, ``api-key``) says its value is secret.

    ``token_env``, ``max_tokens`` and ``secret_ref`` are not: the sensitive word must end the
    name. Names (not values) are cached: the same few keys recur in every event.
    """
    return _NAME_RE.fullmatch(name) is not None


def _mixed(s: str) -> bool:
    """At least two of lower case, upper case, digits: random keys are, slugs are not."""
    classes = (any(c.islower() for c in s), any(c.isupper() for c in s),
               any(c.isdigit() for c in s))
    return sum(classes) >= 2


# (pattern, group to redact, validator of that group or None)
_Rule = tuple[re.Pattern[str], int, Callable[[str], bool] | None]

_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
    re.DOTALL,
)

_ASSIGNMENT = re.compile(
    rf"(?i)(?<![A-Za-z0-9])([\"']?)({_SENSITIVE_NAME})\1"
    # "name = v", "name => v", "name: v" (a bare "name:v" is an ARN or a URL, not a value),
    # and '"name":"v"' in JSON.
    r"(\s*=>?\s*|\s*:\s+|(?<=[\"'])\s*:\s*)"
    r"(?:\"([^\"\n]*)\"|'([^'\n]*)'|([^\s\"',;&}\]\)\[{][^\s\"',;&}\]\)]*))"
)

_RULES: list[_Rule] = [
    # AWS secret access key after its name (also covered by the assignment rule, kept for
    # names like "SecretAccessKey" in JSON/XML responses).
    (re.compile(r"(?i)(?:secret_?access_?key|aws_secret)[\"'>\s:=]{1,6}([A-Za-z0-9/+=]{40})"
                r"(?![A-Za-z0-9/+=])"), 1, None),
    # Bearer / Basic credentials in headers.
    (re.compile(r"\b(?:Bearer|Basic)\s+([A-Za-z0-9\-._~+/]{8,}=*)"), 1, None),
    # JWT: base64url header starting with {" then payload and signature.
    (re.compile(r"\b(eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,})"), 1, None),
    # OpenAI / Anthropic: sk-, sk-proj-, sk-svcacct-, sk-admin-, sk-ant-api03-...
    (re.compile(r"(?<![A-Za-z0-9_-])(sk-[A-Za-z0-9_-]{20,})"), 1, _mixed),
    # AWS access key ids.
    # Vault / OpenBao tokens.
    (re.compile(r"(?<![A-Za-z0-9_./-])((?:hv[sbr]|sbr|[sbr])\.[A-Za-z0-9_-]{24,})"), 1, _mixed),
    # GitHub.
    (re.compile(r"(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{30,})"), 1, None),
    (re.compile(r"(?<![A-Za-z0-9_])(github_pat_[A-Za-z0-9_]{22,})"), 1, None),
    # Slack.
    (re.compile(r"(?<![A-Za-z0-9])(xox[abposre]-[A-Za-z0-9-]{10,})"), 1, None),
    # Google API keys.
    (re.compile(r"(?<![A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"), 1, None),
]


# Every rule above needs one of these; text without any is returned as is (the fast path
# that keeps the audit writer cheap on the engine's hot path).
_TRIGGER = re.compile(
    r"(?i)private key|password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|credential|bearer|basic|eyj|sk-|akia|asia|[sbr]\.[A-Za-z0-9_-]{24}"
    r"|gh[pousr]_|github_pat_|xox|aiza"
)


def _sub_group(rule: _Rule, s: str) -> str:
    pattern, group, valid = rule

    def repl(m: re.Match[str]) -> str:
        value = m.group(group)
        if valid is not None and not valid(value):
            return m.group(0)
        start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
        whole = m.group(0)
        return whole[:start] + _redact(value) + whole[end:]

    return pattern.sub(repl, s)


def _sub_assignment(m: re.Match[str]) -> str:
    idx = next(i for i in (4, 5, 6) if m.group(i) is not None)
    value = m.group(idx)
    if value.lower() in _PLACEHOLDERS or value.startswith(REDACTED_PREFIX.strip()):
        return m.group(0)
    start, end = m.start(idx) - m.start(0), m.end(idx) - m.start(0)
    whole = m.group(0)
    return whole[:start] + _redact(value) + whole[end:]


# Short strings already found clean (action names, targets, outcomes repeat thousands of
# times in one run). Only text with nothing to redact is remembered, so no secret is kept.
_CLEAN: set[str] = set()
_CLEAN_MAX = 50_000
_CLEAN_MAX_LEN = 256


def scrub_text(s: str) -> str:
    """Replace every key-shaped substring of ``s`` with its fingerprint.

    Args:
        s: Any text: a log line, an error message from a provider, a target reference.

    Returns:
        The text with secrets replaced by ``[REDACTED sha256:<12 hex>]``.
    """
    if not s or s in _CLEAN:
        return s
    if not _TRIGGER.search(s):
        out = s
    else:
        out = _PEM.sub(lambda m: _redact(m.group(0)), s)
        out = _ASSIGNMENT.sub(_sub_assignment, out)
        for rule in _RULES:
            out = _sub_group(rule, out)
    if out == s and len(s) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(s)
    return out


def scrub(obj: Any) -> Any:
    """Scrub a JSON-like value recursively: strings, dict keys and values, lists, tuples.

    String values under sensitive keys (``password``, ``api_key``, ``client_secret``, ...)
    are replaced whole. Other types (numbers, booleans, None) pass through unchanged.

    Args:
        obj: The value to scrub; it is not modified.

    Returns:
        A scrubbed copy (dicts and lists are new objects; tuples become lists).
    """
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            key = scrub_text(k) if isinstance(k, str) else k
            if isinstance(v, str):
                if (isinstance(k, str) and is_sensitive_name(k)
                        and v.lower() not in _PLACEHOLDERS
                        and not v.startswith(REDACTED_PREFIX)):
                    out[key] = _redact(v)
                else:
                    out[key] = scrub_text(v)
            elif isinstance(v, dict | list | tuple):
                out[key] = scrub(v)
            else:
                out[key] = v  # numbers, booleans, None
        return out
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    return obj


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs the message, its arguments and any traceback.

    Attach it to handlers (``handler.addFilter(ScrubFilter())``) so that records from any
    logger, including third-party SDKs, are scrubbed before they are written.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we have
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True
