"""The one HTTP base of the adapters that speak a REST API over httpx.

Every HTTP adapter (OpenAI / Anthropic admin and batches, Vertex AI, GCP IAM keys, Unleash,
LaunchDarkly, Slack, PagerDuty) holds one :class:`HttpApi` per backend, and the API holds ONE
``httpx.Client``: built by the adapter's ``open()``, closed by its ``close()``, opened on
first use otherwise. What it does, so that every adapter does it the same way::

    send(...)        one request: ``User-Agent: killswitch/<version> run/<run id>`` set per
                     request (the engine may set ``run_id`` between phases), transport errors
                     mapped, a non-2xx answer raised as its typed error (``check=False``: the
                     caller reads the answer)
    request(...)     send + decode: the JSON object of the answer (``{}`` for an empty body,
                     None for a tolerated 404)
    error(...)       a non-2xx answer -> the AdapterError of :data:`STATUS_ERRORS` (with the
                     provider's overrides), the provider's own words, the target, the hint,
                     Retry-After on the retryable ones
    transport_error  httpx exceptions -> Timeout / Unavailable (retryable) / AdapterError
    probe(...)       one request with someone else's credentials and none of the console's
                     (proof of death: the call an application holding a key would make)
    url_option(...)  a backend's http(s) URL option, checked

A provider that differs says so declaratively: ``STATUS_ERRORS`` rows (``409`` retryable for
the OpenAI / Anthropic admin APIs, ``405`` approvals for LaunchDarkly, ``504`` a Timeout for
Google), the ``REFUSED`` / ``NOT_FOUND`` message templates, ``hints`` per error class, and a
:class:`Credential` that names the secret a 401 rejected; a subclass overrides
:meth:`HttpApi.said` (the provider's error shape), :meth:`HttpApi.retry_after` or
:meth:`HttpApi.error` only where the API has a rule of its own.

Tests replace the network with ``HttpApi.TRANSPORT`` (an ``httpx.BaseTransport``, e.g.
``httpx.MockTransport``), set with ``monkeypatch.setattr(HttpApi, "TRANSPORT", ...)``.

The error tree (status or exception -> class, retryable)::

    AdapterError                 other 4xx, other httpx errors          no
    ├── AuthError                401                                    no
    ├── PermissionDenied         403                                    no
    ├── NotFound                 404                                    no
    ├── Conflict                 409                                    no (overridable)
    ├── RateLimited              429 (Retry-After)                      yes
    ├── Unavailable              5xx (Retry-After); connect / network   yes
    └── Timeout                  httpx timeouts                         yes

No request header, key or secret URL appears in an error (``secret_url`` for webhooks).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from adapters.common import parse_retry_after, user_agent
from console.errors import (
    AdapterError,
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unavailable,
)

if TYPE_CHECKING:
    from adapters.base import Adapter

__all__ = [
    "STATUS_ERRORS",
    "Body",
    "Credential",
    "HttpApi",
    "StatusRule",
    "classify",
    "retry_after",
    "url_option",
]

StatusRule = tuple[type[AdapterError], bool]
"""The error class of an HTTP status and whether the engine may retry it."""

STATUS_ERRORS: Mapping[int, StatusRule] = MappingProxyType({
    401: (AuthError, False),
    403: (PermissionDenied, False),
    404: (NotFound, False),
    409: (Conflict, False),
    429: (RateLimited, True),
})
"""The one status-to-error map; a status without a row is ``Unavailable`` (retryable) from
500 up and a plain ``AdapterError`` below. Providers override rows, never the rest."""

_SERVER: StatusRule = (Unavailable, True)
_OTHER: StatusRule = (AdapterError, False)


def classify(status: int, table: Mapping[int, StatusRule] = STATUS_ERRORS) -> StatusRule:
    """``(error class, retryable)`` of an HTTP status under ``table``."""
    rule = table.get(status)
    if rule is not None:
        return rule
    return _SERVER if status >= 500 else _OTHER


def retry_after(headers: httpx.Headers) -> float | None:
    """Server-directed delay: ``retry-after-ms`` first, then ``retry-after`` (s or a date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def url_option(backend: str, value: Any, *, option: str = "base_url", default: str = "",
               example: str = "") -> str:
    """An http(s) URL option (``value``, else ``default``) without its trailing slash.

    Raises:
        AdapterError: Not an http:// or https:// URL (names the backend, option and value).
    """
    url = str(value or default).rstrip("/")
    if not url.startswith(("http://", "https://")):
        example = example or default
        raise AdapterError(f"backend {backend!r}: option {option} must be an http:// or "
                           f"https:// URL, got {url!r}", where=backend,
                           hint=f'e.g. {option} = "{example}"' if example else "")
    return url


_TLS: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context (the system's trust store, as httpx builds it) for every
    HTTP adapter: building one reads the CA bundle, about 20 ms each, and a session opens a
    dozen adapters. Contexts are safe to share between clients and threads."""
    global _TLS  # noqa: PLW0603 - a process-wide cache
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = httpx.create_ssl_context()
        return _TLS


@dataclass(frozen=True)
class Credential:
    """The secret a call presented, as a 401 names it (never its value).

    Attributes:
        what: ``the admin token from environment variable UNLEASH_ADMIN_TOKEN``.
        hint: What to do when it is rejected.
    """

    what: str
    hint: str = ""


class Body:
    """The body of a streamed answer (:meth:`HttpApi.stream`): chunks of bytes, once.

    Iterating reads it to the end and closes the answer; :meth:`close` releases it early
    (a sink that does not read it, or an error in the caller).
    """

    def __init__(self, api: HttpApi, response: httpx.Response, target: str) -> None:
        self.api = api
        self.response = response
        self.target = target

    def __iter__(self) -> Iterator[bytes]:
        try:
            with self.api.errors(self.target):
                yield from self.response.iter_bytes()
        finally:
            self.response.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        self.response.close()


class HttpApi:
    """One backend's REST API over one ``httpx.Client``: typed errors, User-Agent, Retry-After.

    Args:
        adapter: The adapter it serves (``backend`` for errors, ``run_id`` for the
            User-Agent, ``open()`` when a call comes before the client exists).
        provider: Display name (``OpenAI``, ``Unleash``, ``GCP IAM``).
        base_url: API root; request paths are relative to it ("" when every request names
            an absolute URL, e.g. one host per location).
        timeout: Seconds per call.
        hints: Hint per error class (``{PermissionDenied: "grant ..."}``).
        statuses: Rows that override :attr:`STATUS_ERRORS` for this API.
        secret_url: The URL is a secret (a webhook): errors never quote it.
    """

    TRANSPORT: ClassVar[httpx.BaseTransport | None] = None
    """The transport of every client built from now on (tests); None: the network."""
    STATUS_ERRORS: ClassVar[Mapping[int, StatusRule]] = STATUS_ERRORS
    """Status -> (error class, retryable); subclasses add the provider's own rows."""
    REFUSED: ClassVar[str] = "{provider} refused the call on {target}: {said}"
    """Message of a non-2xx answer (fields: provider, target, said, status)."""
    NOT_FOUND: ClassVar[str] = "not found at {provider}: {target} ({said})"
    """Message of a NotFound answer."""
    TIMEOUT_NOTE: ClassVar[str] = ""
    """Appended to a Timeout's message (what an unknown outcome means here)."""
    KIND_KEYS: ClassVar[tuple[str, ...]] = ("type", "status", "code", "name")
    """Keys of an error body that name the kind of error (quoted after the message)."""

    def __init__(self, adapter: Adapter, provider: str, base_url: str = "", *,
                 timeout: float, hints: Mapping[type[AdapterError], str] | None = None,
                 statuses: Mapping[int, StatusRule] | None = None,
                 secret_url: bool = False) -> None:
        self.adapter = adapter
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.hints: dict[type[AdapterError], str] = dict(hints or {})
        self.statuses: dict[int, StatusRule] = {**type(self).STATUS_ERRORS, **(statuses or {})}
        self.secret_url = secret_url
        self.credential: Credential | None = None
        """The secret the client presents, named by a 401 (set by the adapter's open())."""
        self.client: httpx.Client | None = None
        self._headers: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """The backend this API serves (``where`` of every error)."""
        return self.adapter.backend

    @property
    def opened(self) -> bool:
        """Whether the client exists."""
        return self.client is not None

    # -- the client -----------------------------------------------------------------------

    def open(self, headers: Mapping[str, str] | None = None, *,
             auth: httpx.Auth | None = None, credential: Credential | None = None) -> None:
        """Build the client (no request is sent); a second call keeps the first client.

        Args:
            headers: Headers of every call (auth, API version); never quoted in errors.
            auth: An httpx auth flow (tokens that expire, e.g. Google's).
            credential: The secret presented, as a rejected call names it.
        """
        with self._lock:
            if self.client is None:
                self._headers = dict(headers or {})
                self.client = httpx.Client(
                    base_url=self.base_url, timeout=self.timeout, headers=self._headers,
                    auth=auth, follow_redirects=False, transport=self.TRANSPORT,
                    verify=shared_tls_context())
                self.credential = credential or self.credential

    def close(self) -> None:
        """Close the connection pool (the adapter's ``close()``)."""
        with self._lock:
            client, self.client = self.client, None
        if client is not None:
            client.close()

    def _client(self) -> httpx.Client:
        if self.client is None:
            self.adapter.open()
        if self.client is None:
            raise AdapterError(f"{self.provider}: the {self.adapter.name or 'HTTP'} adapter "
                               "opened no HTTP client", where=self.backend)
        return self.client

    # -- calls ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, target: str) -> Iterator[None]:
        """Let AdapterErrors through (``where`` defaulting to the backend); map the rest."""
        try:
            yield
        except AdapterError as exc:
            exc.where = exc.where or self.backend
            raise
        except Exception as exc:  # noqa: BLE001 - the adapter boundary
            mapped = self.transport_error(exc, target)
            mapped.where = mapped.where or self.backend
            raise mapped from exc

    def send(self, method: str, url: str, target: str, *, check: bool = True,
             headers: Mapping[str, str] | None = None, **kw: Any) -> httpx.Response:
        """One request; the answer, or its typed error when it is not 2xx and ``check``.

        Args:
            method: HTTP method.
            url: Path relative to the base URL, or an absolute URL.
            target: Human-readable target for errors (never a secret).
            check: Raise :meth:`error` for a status of 400 and above.
            headers: Extra headers of this call (they win over the client's).
            **kw: Passed to ``httpx.Client.request`` (``params``, ``json``, ...).

        Raises:
            AdapterError: A typed subclass for every failure.
        """
        with self.errors(target):
            resp = self._client().request(
                method, url, headers={"User-Agent": user_agent(self.adapter.run_id),
                                      **(headers or {})}, **kw)
            if check and resp.status_code >= 400:
                raise self.error(resp, target)
            return resp

    def request(self, method: str, url: str, target: str, *, body: Any = None,
                missing_ok: bool = False, **kw: Any) -> dict[str, Any] | None:
        """One JSON call: the decoded object (``{}`` for an empty body, a list as
        ``{"data": [...]}``), or None on a 404 when ``missing_ok``.

        Args:
            method: HTTP method.
            url: Path relative to the base URL, or an absolute URL.
            target: Human-readable target for errors.
            body: JSON body, if any.
            missing_ok: Return None on 404 instead of raising NotFound.
            **kw: Passed to :meth:`send` (``params``, ``headers``).

        Raises:
            AdapterError: A typed subclass for every failure, a non-JSON answer included.
        """
        resp = self.send(method, url, target, check=False, json=body, **kw)
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            raise self.error(resp, target)
        return self.decode(resp, target)

    def stream(self, method: str, url: str, target: str, *,
               headers: Mapping[str, str] | None = None, **kw: Any) -> Body:
        """One request whose answer is a file (a batch job's output), streamed.

        The request is sent and its status checked before this returns, so a refused or
        missing file raises here, before the caller writes anything; the body then comes in
        chunks as the returned :class:`Body` is iterated. The caller closes it (iterating
        to the end closes it too).

        Raises:
            AdapterError: A typed subclass: here for a non-2xx answer or a transport error;
                while iterating for a transport error mid-file.
        """
        with self.errors(target):
            client = self._client()
            request = client.build_request(
                method, url, headers={"User-Agent": user_agent(self.adapter.run_id),
                                      **(headers or {})}, **kw)
            resp = client.send(request, stream=True)
            if resp.status_code >= 400:
                try:
                    resp.read()
                finally:
                    resp.close()
                raise self.error(resp, target)
        return Body(self, resp, target)

    def decode(self, response: httpx.Response, target: str) -> dict[str, Any]:
        """The JSON object of an answer (``{}`` for an empty body, a list as
        ``{"data": [...]}``).

        Raises:
            AdapterError: The answer is not JSON.
        """
        if not response.content.strip():
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise AdapterError(f"{self.provider} answered non-JSON for {target} "
                               f"(HTTP {response.status_code})", where=self.backend) from exc
        return data if isinstance(data, dict) else {"data": data}

    def probe(self, method: str, path: str, headers: Mapping[str, str]) -> httpx.Response:
        """One call with someone else's credentials (``headers``) and none of the console's
        (neither the client's headers nor its auth flow): the call an application would make.

        Raises:
            AdapterError: The client cannot be opened.
            httpx.HTTPError: Left to the caller, which turns it into a verdict.
        """
        client = self._client()
        request = client.build_request(method, path, headers={
            "User-Agent": user_agent(self.adapter.run_id), **headers})
        own = httpx.Headers(headers)
        for name in self._headers:
            if name not in own:
                del request.headers[name]
        return client.send(request, auth=None)

    # -- errors ---------------------------------------------------------------------------

    def said(self, response: httpx.Response) -> str:
        """The provider's own words: ``message (kind)`` from its JSON error shape
        (``{"error": {"message", "type"}}``, ``{"message", "code"}``, ...), with the request
        id when the answer has one, else the status line."""
        try:
            body = response.json()
        except ValueError:
            body = None
        text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, str) and err:
                text = err
            else:
                shape = err if isinstance(err, dict) and err.get("message") else body
                if shape.get("message"):
                    kind = next((shape[k] for k in self.KIND_KEYS if shape.get(k)), "")
                    msg = str(shape["message"]).strip()
                    text = f"{msg} ({kind})" if kind else msg
        rid = response.headers.get("x-request-id") or response.headers.get("request-id")
        return f"{text} [request id {rid}]" if rid else text

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the provider asks to wait before a retry, if it says."""
        return retry_after(response.headers)

    def error(self, response: httpx.Response, target: str,
              credential: Credential | None = None) -> AdapterError:
        """The typed error of a non-2xx answer, from the status map.

        Args:
            response: The answer.
            target: What the call was about.
            credential: The secret this call presented, when not the client's own.
        """
        status = response.status_code
        cls, retryable = classify(status, self.statuses)
        said = self.said(response)
        template = self.NOT_FOUND if cls is NotFound else self.REFUSED
        msg = template.format(provider=self.provider, target=target, said=said, status=status)
        hint = self.hints.get(cls, "")
        cred = credential or self.credential
        if cls is AuthError and cred is not None:
            msg += f"; {cred.what} was rejected"
            hint = cred.hint or hint
        return cls(msg, retryable=retryable, status=status, hint=hint, where=self.backend,
                   retry_after=self.retry_after(response) if retryable else None)

    def transport_error(self, exc: BaseException, target: str) -> AdapterError:
        """The typed error of an exception raised by the call (the URL named unless secret)."""
        url = "" if self.secret_url else (self.base_url or _origin(exc))
        at = f" at {url}" if url else ""
        name = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return Timeout(f"{self.provider}{at} did not answer in time for {target}"
                           f"{self.TIMEOUT_NOTE}")
        if isinstance(exc, httpx.ConnectError | httpx.NetworkError | httpx.RemoteProtocolError):
            where = f": is {url} reachable?" if url else f" ({name})"
            return Unavailable(f"cannot reach {self.provider} for {target}{where}")
        if isinstance(exc, httpx.HTTPError):
            return AdapterError(f"HTTP call to {self.provider}{at} failed for {target}: {name}")
        return AdapterError(f"{self.provider} call failed for {target}: {name}")


def _origin(exc: BaseException) -> str:
    """``scheme://host[:port]`` of the request an httpx exception belongs to, else ""."""
    try:
        request = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # an httpx error raised outside a request
        return ""
    if request is None:
        return ""
    url = request.url
    return f"{url.scheme}://{url.netloc.decode('ascii')}"
