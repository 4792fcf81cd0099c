"""What every adapter's ``preserve()`` shares: sources, the 24-hour window, and redaction.

An adapter hands its evidence to an :class:`~adapters.evidence.EvidenceSink` source by source
(:func:`run_source`): a source that fails is reported with ``sink.failed(source, message)``
(the provider's own words) and the next one still runs. Source labels are the kind of
evidence (``keys``, ``last-used``, ``cloudtrail``, ``usage``, ``costs``, ``batches``,
``batch-output``, ``batch-errors``, ``batch-results``, ``versions``); a failure that
concerns one item of a kind names it after the label (``cloudtrail AKIA...``,
``batch-output batch_abc``).

**Never a key value.** Each adapter keeps only the fields it names (:func:`pick`); on top
of that everything handed to a sink goes through :func:`redact_json` (JSON) or
:class:`RedactingStream` (a provider's file), which replace

* the string value of any field whose name says it holds a secret (``secret``,
  ``password``, ``token``, ``private_key_data``, ``api_key``, ``value``, ``redacted_value``,
  ``partial_key_hint``, ``secret_access_key``, ``credentials``, ...), and
* key-shaped strings anywhere (OpenAI / Anthropic ``sk-...`` keys, PEM private key blocks,
  Vault / OpenBao tokens, JWTs, ``Bearer`` credentials, an AWS secret access key after its
  name, GitHub / Slack / Google API keys)

with ``[REDACTED by adapter]``. Adapters may not import the console's audit scrubber (they
import only ``console.errors``), so this is the adapters' own first line of defence; the
engine's sink scrubs again (and leaves these markers alone: they start like its own). AWS
access key ids (``AKIA...``) are identifiers AWS itself logs and are kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from adapters.evidence import EvidenceSink
from console.errors import AdapterError

__all__ = [
    "MAX_PAGES",
    "REDACTED",
    "WINDOW",
    "RedactingStream",
    "iso",
    "jsonable",
    "pick",
    "redact_json",
    "redact_text",
    "run_source",
    "safe_name",
    "sensitive_name",
    "window",
    "write_json",
]

WINDOW = dt.timedelta(hours=24)
"""How far back usage and CloudTrail evidence reaches."""
MAX_PAGES = 20
"""List pages read at most per source; a source that stops there says ``"capped": true``."""
REDACTED = "[REDACTED by adapter]"
"""What replaces a secret value (no fingerprint: adapters hold no fingerprint key, and a
plain hash of a weak secret could be guessed). It starts like the audit scrubber's own
``[REDACTED hmac:...]``, which therefore leaves it alone."""

_SENSITIVE_ENDINGS = (
    "password", "passwd", "passphrase", "secret", "secretkey", "secretaccesskey",
    "privatekey", "keydata", "token", "apikey", "credential", "credentials",
    "redactedvalue", "partialkeyhint", "secretstring", "secretbinary", "value",
)

_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                  r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", re.DOTALL)
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")


def _mixed(s: str) -> bool:
    """At least two of lower case, upper case, digits: random keys are, slugs are not."""
    return sum((any(c.islower() for c in s), any(c.isupper() for c in s),
                any(c.isdigit() for c in s))) >= 2


# (pattern, group holding the secret, validator of that group or None)
_RULES: tuple[tuple[re.Pattern[str], int, Callable[[str], bool] | None], ...] = (
    (re.compile(r"(?i)(?:secret_?access_?key|aws_secret)[\"'>\s:=]{1,6}([A-Za-z0-9/+=]{40})"
                r"(?![A-Za-z0-9/+=])"), 1, None),
    (re.compile(r"\b(?:Bearer|Basic)\s+([A-Za-z0-9\-._~+/]{8,}=*)"), 1, None),
    (re.compile(r"\b(eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,})"), 1, None),
    (re.compile(r"(?<![A-Za-z0-9_-])(sk-[A-Za-z0-9_-]{20,})"), 1, _mixed),
    (re.compile(r"(?<![A-Za-z0-9_./-])((?:hv[sbr]|sbr|[sbr])\.[A-Za-z0-9_-]{24,})"), 1, _mixed),
    (re.compile(r"(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
     1, None),
    (re.compile(r"(?<![A-Za-z0-9])(xox[abposre]-[A-Za-z0-9-]{10,})"), 1, None),
    (re.compile(r"(?<![A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"), 1, None),
)


def sensitive_name(name: str) -> bool:
    """Whether a field name says its value is a secret (``private_key_data``, ``apiKey``)."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return flat.endswith(_SENSITIVE_ENDINGS)


def redact_text(text: str) -> str:
    """``text`` with every key-shaped substring replaced by :data:`REDACTED`."""
    if "-----BEGIN" in text:
        text = _PEM.sub(REDACTED, text)
    for pattern, group, valid in _RULES:
        def repl(m: re.Match[str], group: int = group,
                 valid: Callable[[str], bool] | None = valid) -> str:
            value = m.group(group)
            if valid is not None and not valid(value):
                return m.group(0)
            start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
            return m.group(0)[:start] + REDACTED + m.group(0)[end:]

        text = pattern.sub(repl, text)
    return text


def redact_json(obj: Any) -> Any:
    """A copy of a JSON-ready value with secret fields and key-shaped strings redacted.

    The string value of a field with a sensitive name becomes :data:`REDACTED` (numbers,
    booleans and None stay: ``amount.value`` of a cost is a number); every other string,
    dict keys included, loses its key-shaped substrings.
    """
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = redact_text(str(k))
            if isinstance(v, str | bytes) and sensitive_name(str(k)):
                out[key] = REDACTED if v else v
            else:
                out[key] = redact_json(v)
        return out
    if isinstance(obj, list | tuple):
        return [redact_json(v) for v in obj]
    if isinstance(obj, bytes):
        return REDACTED
    return obj


class RedactingStream:
    """A provider's file, streamed line by line with key-shaped strings redacted.

    JSONL files (batch output, error and result files) hold one JSON object per line; a PEM
    private key written across several lines is dropped from its ``BEGIN`` line to its
    ``END`` line. ``redacted`` counts the lines changed, once the stream is consumed.

    Args:
        chunks: The file's bytes, in chunks of any size.
        max_line: A line longer than this is redacted and passed on in pieces.
    """

    def __init__(self, chunks: Iterable[bytes], max_line: int = 16 * 1024 * 1024) -> None:
        self._chunks = chunks
        self._max = max_line
        self._in_pem = False
        self.redacted = 0

    def _line(self, raw: bytes) -> bytes:
        text = raw.decode("utf-8", "surrogateescape")
        if self._in_pem:  # the key's own lines are dropped, up to its END line
            end = _PEM_END.search(text)
            if end is None:
                return b""
            self._in_pem = False
            text = text[end.end():]
            if not text.strip():
                return b""
        elif (begin := _PEM_BEGIN.search(text)) and not _PEM_END.search(text, begin.end()):
            self._in_pem = True
            text = text[:begin.start()] + REDACTED + ("\n" if text.endswith("\n") else "")
            self.redacted += 1
            return text.encode("utf-8", "surrogateescape")
        out = redact_text(text)
        if out != text:
            self.redacted += 1
        return out.encode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[bytes]:
        buf = b""
        for chunk in self._chunks:
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            out = b"".join(self._line(line + b"\n") for line in lines)
            if len(buf) > self._max:
                out += self._line(buf)
                buf = b""
            if out:
                yield out
        if buf:
            yield self._line(buf)


def pick(obj: Mapping[str, Any] | None, fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of ``obj`` that it has, JSON-ready (datetimes as ISO 8601)."""
    src = obj or {}
    return {f: jsonable(src[f]) for f in fields if f in src}


def jsonable(obj: Any) -> Any:
    """``obj`` with datetimes as ISO 8601 strings and tuples as lists (boto3 answers)."""
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def iso(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2026-11-27T20:45:00Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """``(start, end)`` of the evidence window: the last 24 hours, to the second, UTC."""
    end = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return end - WINDOW, end


def safe_name(text: str) -> str:
    """An item name made of ``[A-Za-z0-9._-]`` (anything else becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("._") or "item"


def _message(exc: BaseException) -> str:
    if isinstance(exc, AdapterError):
        return redact_text(exc.msg)
    return redact_text(f"{type(exc).__name__}: {exc}")


def run_source(sink: EvidenceSink, source: str, produce: Callable[[], None]) -> bool:
    """Run one source; a failure is reported to ``sink.failed`` and never raised.

    Args:
        sink: Where the reference's evidence goes.
        source: The label reported when it fails (``keys``, ``cloudtrail AKIA...``).
        produce: Reads the provider and calls the sink itself.

    Returns:
        True when the source was preserved.
    """
    try:
        produce()
    except Exception as exc:  # noqa: BLE001 - a failed source never stops the containment
        sink.failed(source, _message(exc))
        return False
    return True


def write_json(sink: EvidenceSink, name: str, source: str, read: Callable[[], Any],
               failure: str = "") -> bool:
    """``read()`` the provider and hand the (redacted) result to ``sink.json``, or report
    the failure as ``failure`` (default: ``source``; see :func:`run_source`)."""
    return run_source(sink, failure or source,
                      lambda: sink.json(safe_name(name), redact_json(jsonable(read())),
                                        source=source))
