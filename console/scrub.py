"""Scrubber for key-shaped strings: secret values never reach the audit trail, logs or screen.

Every match is replaced by ``[REDACTED hmac:<12 hex>]``, a fingerprint of the value, so
the same key is recognisable across events without being shown::

    >>> scrub_text("Authorization: Bearer abc.def-123456789")
    'Authorization: Bearer [REDACTED hmac:...]'

Fingerprints are keyed (HMAC-SHA-256), never a plain hash of the secret. A plain SHA-256
prefix of a weak stored password (``password=hunter2``) is brute-forced from the trail, an
export or a report in seconds; keyed, it cannot be without the key. The key is derived from
the audit key (``$KILLSWITCH_AUDIT_KEY``) when one is set, else it is the random salt that
each audit trail keeps in its ``meta`` table (:class:`console.audit.AuditLog` installs it
with :func:`use_fingerprint_key` when it opens the trail, so the trail, the screen and the
logs of one process agree). With neither, a random per-process key is used: fingerprints
still match each other within the process (credential scans compare them there). The
``hmac:`` prefix keeps them visibly different from the old ``sha256:`` fingerprints.

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
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FINGERPRINT_PREFIX", "REDACTED_PREFIX", "ScrubFilter", "fingerprint_key_from_audit_key",
           "fingerprint_secret", "is_sensitive_name", "scrub", "scrub_text", "use_fingerprint_key"]

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


FINGERPRINT_PREFIX = "hmac:"
"""Every fingerprint starts with this (a keyed HMAC-SHA-256, not a plain hash)."""

_AUDIT_KEY_ENV = "KILLSWITCH_AUDIT_KEY"  # console.audit.KEY_ENV (audit imports this module)
_FP_LABEL = b"killswitch fingerprint key v1"
_key_lock = threading.Lock()
_installed_key: bytes | None = None
_process_key: bytes | None = None


def fingerprint_key_from_audit_key(audit_key: bytes) -> bytes:
    """The fingerprint key derived from an audit key (not the key itself: one key, one use)."""
    return hmac.new(audit_key, _FP_LABEL, hashlib.sha256).digest()


def use_fingerprint_key(key: bytes | None) -> None:
    """Make ``key`` the default fingerprint key of this process (None: back to the default).

    :class:`console.audit.AuditLog` calls it with its trail's key when it opens the trail.
    """
    global _installed_key
    with _key_lock:
        _installed_key = key or None


def _default_key() -> bytes:
    global _process_key
    with _key_lock:
        if _installed_key is not None:
            return _installed_key
        env = os.environ.get(_AUDIT_KEY_ENV, "")
        if env:
            return fingerprint_key_from_audit_key(env.encode("utf-8"))
        if _process_key is None:
            _process_key = secrets.token_bytes(32)
        return _process_key


def fingerprint_secret(value: str, key: bytes | None = None) -> str:
    """Keyed fingerprint of a secret: ``hmac:`` and 12 hex digits of its HMAC-SHA-256.

    Args:
        value: The secret; it is hashed as UTF-8 and never returned.
        key: The fingerprint key; default: the key installed by :func:`use_fingerprint_key`,
            else one derived from ``$KILLSWITCH_AUDIT_KEY``, else a random per-process key.

    Returns:
        For example ``hmac:5e884898da28``. The same value and key give the same fingerprint;
        without the key it cannot be tested against guesses.
    """
    digest = hmac.new(key or _default_key(), value.encode("utf-8", "surrogatepass"),
                      hashlib.sha256).hexdigest()
    return FINGERPRINT_PREFIX + digest[:12]


def _redact(value: str, key: bytes | None = None) -> str:
    return f"{REDACTED_PREFIX}{fingerprint_secret(value, key)}]"


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
    r"(?i)private[ _.-]?key|password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|credential|bearer|basic|eyj|sk-|akia|asia|[sbr]\.[A-Za-z0-9_-]{24}"
    r"|gh[pousr]_|github_pat_|xox|aiza"
)


# For each rule, a cheap test that it can match at all: a literal (or short pattern) that
# every match of the rule contains. Text that has a trigger word (every row of a plan table
# says ``credential.disable``) is then scanned only by the rules that can match it: one
# fast search each instead of eleven full regular expression passes over megabytes. Tests
# of case-insensitive rules look at the text case-folded as ``(?i)`` matches it (``str.lower``,
# and the dotted and dotless i and the long s, which ``(?i)`` also takes for i and s): a
# case-sensitive search of folded text is many times faster than a ``(?i)`` one.
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s"}
_NAME_THEN_SEPARATOR = re.compile(  # a sensitive name ends in one of these words, then = or :
    r"(?:password|passwd|pwd|passphrase|secret|key|token|credentials?)[\"']?\s*[=:]")
_VAULT_NEEDS = re.compile(r"[sbr]\.[A-Za-z0-9_-]{24}")
_GITHUB_NEEDS = re.compile(r"gh[pousr]_")

_Needs = Callable[[str, str], bool]
"""``needs(text, folded)``: whether a rule can match ``text`` (``folded``: its folded form)."""
_ASSIGNMENT_NEEDS: _Needs = lambda s, f: _NAME_THEN_SEPARATOR.search(f) is not None  # noqa: E731
_RULE_NEEDS: list[_Needs] = [
    lambda s, f: "secret" in f,  # secret_access_key, aws_secret
    lambda s, f: "Bearer" in s or "Basic" in s,
    lambda s, f: "eyJ" in s,
    lambda s, f: "sk-" in s,
    lambda s, f: _VAULT_NEEDS.search(s) is not None,
    lambda s, f: _GITHUB_NEEDS.search(s) is not None,
    lambda s, f: "github_pat_" in s,
    lambda s, f: "xox" in s,
    lambda s, f: "AIza" in s,
]
assert len(_RULE_NEEDS) == len(_RULES)


def _folded(s: str) -> str:
    return (s if s.isascii() else s.translate(_FOLD)).lower()


def _sub_group(rule: _Rule, s: str, fp_key: bytes | None) -> str:
    pattern, group, valid = rule

    def repl(m: re.Match[str]) -> str:
        value = m.group(group)
        if valid is not None and not valid(value):
            return m.group(0)
        start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
        whole = m.group(0)
        return whole[:start] + _redact(value, fp_key) + whole[end:]

    return pattern.sub(repl, s)


def _sub_assignment(m: re.Match[str], fp_key: bytes | None) -> str:
    idx = next(i for i in (4, 5, 6) if m.group(i) is not None)
    value = m.group(idx)
    if value.lower() in _PLACEHOLDERS or value.startswith(REDACTED_PREFIX.strip()):
        return m.group(0)
    start, end = m.start(idx) - m.start(0), m.end(idx) - m.start(0)
    whole = m.group(0)
    return whole[:start] + _redact(value, fp_key) + whole[end:]


# Short strings already found clean (action names, targets, outcomes repeat thousands of
# times in one run). Only text with nothing to redact is remembered, so no secret is kept.
_CLEAN: set[str] = set()
_CLEAN_MAX = 50_000
_CLEAN_MAX_LEN = 256


def scrub_text(s: str, *, key: bytes | None = None) -> str:
    """Replace every key-shaped substring of ``s`` with its fingerprint.

    Args:
        s: Any text: a log line, an error message from a provider, a target reference.
        key: Fingerprint key (the audit trail passes its own); default: the process's,
            see :func:`fingerprint_secret`.

    Returns:
        The text with secrets replaced by ``[REDACTED hmac:<12 hex>]``.
    """
    if not s or s in _CLEAN:
        return s
    if not _TRIGGER.search(s):
        out = s
    else:
        out = _PEM.sub(lambda m: _redact(m.group(0), key), s) if "-----BEGIN" in s else s
        folded = _folded(out)
        if _ASSIGNMENT_NEEDS(out, folded):
            out = _ASSIGNMENT.sub(lambda m: _sub_assignment(m, key), out)
            folded = _folded(out)
        for rule, needs in zip(_RULES, _RULE_NEEDS, strict=True):
            if needs(out, folded):
                new = _sub_group(rule, out, key)
                if new != out:
                    out, folded = new, _folded(new)
    if out == s and len(s) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(s)
    return out


def scrub(obj: Any, *, key: bytes | None = None) -> Any:
    """Scrub a JSON-like value recursively: strings, dict keys and values, lists, tuples.

    String values under sensitive keys (``password``, ``api_key``, ``client_secret``, ...)
    are replaced whole. Other types (numbers, booleans, None) pass through unchanged.

    Args:
        obj: The value to scrub; it is not modified.
        key: Fingerprint key; see :func:`scrub_text`.

    Returns:
        A scrubbed copy (dicts and lists are new objects; tuples become lists).
    """
    if isinstance(obj, str):
        return scrub_text(obj, key=key)
    if isinstance(obj, dict):
        return _scrub_dict(obj, key)
    if isinstance(obj, list | tuple):
        return [scrub(v, key=key) for v in obj]
    return obj


_SENSITIVE_SEEN: dict[str, bool] = {}
""":func:`is_sensitive_name` of the key names met so far (a few dozen recur in every
event; a dict lookup is cheaper than the cached call on an audit trail's hot path)."""


def _scrub_dict(obj: dict[Any, Any], key: bytes | None) -> dict[Any, Any]:
    """:func:`scrub` of a dict (each event's detail: the audit writer's hot path, so the
    strings already known clean are recognised without a call)."""
    clean = _CLEAN
    out: dict[Any, Any] = {}
    for k, v in obj.items():
        k_str = isinstance(k, str)
        name = k if (type(k) is str and k in clean) else (
            scrub_text(k, key=key) if k_str else k)
        if isinstance(v, str):
            sensitive = False
            if k_str:
                sensitive = _SENSITIVE_SEEN.get(k)  # type: ignore[assignment]
                if sensitive is None:
                    sensitive = is_sensitive_name(k)
                    if len(_SENSITIVE_SEEN) < _CLEAN_MAX:
                        _SENSITIVE_SEEN[k] = sensitive
            if sensitive and v.lower() not in _PLACEHOLDERS \
                    and not v.startswith(REDACTED_PREFIX):
                out[name] = _redact(v, key)
            else:
                out[name] = v if (type(v) is str and v in clean) else scrub_text(v, key=key)
        elif isinstance(v, dict):
            out[name] = _scrub_dict(v, key)
        elif isinstance(v, list | tuple):
            out[name] = [scrub(x, key=key) for x in v]
        else:
            out[name] = v  # numbers, booleans, None
    return out


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
