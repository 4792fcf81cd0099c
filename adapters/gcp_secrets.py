"""Google Secret Manager adapter (google-cloud-secret-manager, REST transport).

``credential.disable`` disables every ENABLED version of the secret (undo:
``credential.enable`` enables exactly those versions); ``credential.destroy`` destroys every
version still holding data, which is irreversible. Verify reads the way an application does:
``versions/latest`` and each recorded version must no longer be accessible. Rotation's
``credential.write`` adds a version holding the run's new key
(:mod:`adapters.gcp_secrets_rotation`).

**Regional secrets** (``projects/P/locations/L/secrets/S``) live on the regional endpoint
``https://secretmanager.L.rep.googleapis.com``; the global endpoint refuses their names
(400 INVALID_ARGUMENT "does not match the expected format [projects/*/secrets/*/versions/*]",
googleapis/google-cloud-python#13389), and a regional endpoint serves only its own location
(https://cloud.google.com/secret-manager/docs/locations#regional_endpoints). Each name goes
to the endpoint of its location, with one client per endpoint (``regional_endpoint``
overrides the host; it may contain ``{location}``).

Every request carries ``User-Agent: killswitch/<version> run/<run id>`` (Cloud Audit Logs
record it as ``requestMetadata.callerSuppliedUserAgent``).

Backend options::

    [backends.gcp-sm]
    type = "gcp-secrets"
    project = "my-project"                  # default project (refs by id, and scan)
    endpoint = "http://127.0.0.1:8383"      # optional; the http:// scheme selects plain HTTP
    regional_endpoint = "http://127.0.0.1:8384"  # optional; default
                                            # https://secretmanager.{location}.rep.googleapis.com
    anonymous = false                       # sandbox only: AnonymousCredentials
    request_timeout = 30.0                  # seconds per API call
    # otherwise Google ADC: GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login,
    # or the metadata server

Inventory references (``name`` is the secret's resource name, as Google calls it)::

    {backend = "gcp-sm", name = "projects/p/secrets/support-bot-openai"}
    {backend = "gcp-sm", project = "p", name = "support-bot-openai", field = "api_key"}
    {backend = "gcp-sm", name = "projects/p/locations/europe-west4/secrets/support-bot-openai"}
    {backend = "gcp-sm", project = "p", location = "europe-west4", name = "support-bot-openai"}

``secret`` is accepted as an alias of ``name``, but prefer ``name``: the audit scrubber
redacts values of fields called ``secret``, so a run journaled with ``secret = ...`` cannot
be restored from its journal (the reference comes back redacted).

State shape (``before`` / ``after`` / :meth:`GcpSecretManagerAdapter.read`)::

    {"versions": {"1": "DISABLED", "2": "ENABLED"}}

Example runbook step::

    [[steps]]
    id = "disable-gcp-sm"
    action = "credential.disable"
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import google.api_core.exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager_v1 as sm

from adapters import gcp_secrets_rotation as rotation
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict, map_errors
from adapters.common import plan_context, seconds_option, toggle_inverse, user_agent
from adapters.evidence import EvidenceSink
from adapters.gcp_keys import sandbox_endpoint, with_completion
from adapters.gcp_secrets_errors import status_name, translate_error
from adapters.secretvalue import json_object, pick_field
from adapters.specs.gcp import GCP_SECRETS, GcpSecretsOptions
from console.errors import AdapterError, NotFound

__all__ = ["GcpSecretManagerAdapter", "pick_value", "regional_endpoint", "translate_error"]

GLOBAL_HOST = "secretmanager.googleapis.com"
REGIONAL_DEFAULT = "https://secretmanager.{location}.rep.googleapis.com"
_LOCATION = re.compile(r"^[a-z][a-z0-9-]*$")

_DESTROY_NOTE = "irreversible: destroyed versions lose their data for good"
# options, reference schema and permissions: adapters/specs/gcp.py


def regional_endpoint(template: str, location: str) -> str:
    """The endpoint serving regional secrets of ``location``.

    Args:
        template: The ``regional_endpoint`` option ("" = Google's regional host); may
            contain ``{location}``.
        location: The secret's location (``europe-west4``).

    Returns:
        ``https://secretmanager.{location}.rep.googleapis.com`` by default.
    """
    return (template or REGIONAL_DEFAULT).replace("{location}", location)


def _location(name: str) -> str:
    """The location of a regional name (``projects/P/locations/L/...``), else ""."""
    parts = name.split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "locations" else ""


def pick_value(text: str, field: str | None) -> str:
    """The key inside a stored value: a JSON field, the only string, or a usual key name.

    The rule is :func:`adapters.secretvalue.pick_field`; when it finds nothing (not a JSON
    object, no such field) the whole value is the key.
    """
    data = json_object(text)
    return (pick_field(data, field) if data is not None else None) or text


class GcpSecretManagerAdapter(Adapter):
    """Disable, enable or destroy the versions of a Google Secret Manager secret.

    ``credential.disable`` disables every ENABLED version and records exactly which;
    ``credential.enable`` (its undo) enables exactly those. ``credential.destroy`` destroys
    every version that still holds data, with each version's etag: irreversible. Verify
    accesses ``latest`` and each recorded version and expects them to fail. Regional
    secrets go to the regional endpoint of their location.
    """

    name: ClassVar[str] = "gcp-secrets"
    Options: ClassVar[type[GcpSecretsOptions]] = GcpSecretsOptions
    OPTIONS: ClassVar[Mapping[str, str]] = GcpSecretsOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = GCP_SECRETS.actions  # adapters/specs/gcp.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_REVEAL: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        raw = self.options.get("endpoint")
        self.endpoint = sandbox_endpoint(raw, backend, "") if raw else ""
        raw = self.options.get("regional_endpoint")
        self.regional_template = sandbox_endpoint(raw, backend, "") if raw else ""
        """``regional_endpoint`` as configured ("" = Google's regional hosts)."""
        self._regional: dict[str, sm.SecretManagerServiceClient] = {}
        self._lock = threading.Lock()
        self.anonymous = bool(self.options.get("anonymous", False))
        self.project = str(self.options.get("project") or "")
        self.request_timeout = seconds_option(backend, self.options, 30.0, ("request_timeout",))
        self._client: sm.SecretManagerServiceClient | None = None

    # -- clients --------------------------------------------------------------------------

    def open(self) -> None:
        """Build the global Secret Manager client (REST); loads ADC unless anonymous."""
        if self._client is not None:
            return
        self._client = self._build(self.endpoint)

    def _build(self, endpoint: str) -> sm.SecretManagerServiceClient:
        """A REST client on ``endpoint`` ("" = Google's global endpoint)."""
        where = endpoint or GLOBAL_HOST
        with map_errors(self.backend, lambda exc: translate_error(exc, self.backend, where)):
            creds = None
            if self.anonymous:
                from google.auth.credentials import AnonymousCredentials

                # google-auth's AnonymousCredentials.__init__ is unannotated
                creds = AnonymousCredentials()  # type: ignore[no-untyped-call]
            opts = ClientOptions(api_endpoint=endpoint) if endpoint else None
            return sm.SecretManagerServiceClient(
                credentials=creds, transport="rest", client_options=opts)

    def close(self) -> None:
        """Close every client's HTTP session."""
        # the generated transports' close() is unannotated (google-cloud-secret-manager)
        if self._client is not None:
            self._client.transport.close()  # type: ignore[no-untyped-call]
            self._client = None
        with self._lock:
            for c in self._regional.values():
                c.transport.close()  # type: ignore[no-untyped-call]
            self._regional.clear()

    @property
    def client(self) -> sm.SecretManagerServiceClient:
        """The global client, opened on first use."""
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def endpoint_of(self, name: str) -> str:
        """The endpoint serving ``name`` ("" = Google's global endpoint).

        Raises:
            AdapterError: A regional name on an anonymous (sandbox) backend without
                ``regional_endpoint``: its calls would otherwise go to Google.
        """
        location = _location(name)
        if not location:
            return self.endpoint
        if self.anonymous and not self.regional_template:
            raise AdapterError(f"{name} is a regional secret, but backend {self.backend!r} "
                               "has no regional_endpoint", where=self.backend,
                               hint='set regional_endpoint = "http://127.0.0.1:8384" (the '
                               "sandbox) or drop anonymous to reach Google")
        return regional_endpoint(self.regional_template, location)

    def _client_for(self, name: str) -> sm.SecretManagerServiceClient:
        """The client of the endpoint serving ``name`` (one per regional endpoint)."""
        if not _location(name):
            return self.client
        endpoint = self.endpoint_of(name)
        with self._lock:
            if endpoint not in self._regional:
                self._regional[endpoint] = self._build(endpoint)
            return self._regional[endpoint]

    def _errors(self, target: str) -> AbstractContextManager[None]:
        where = (self.endpoint or GLOBAL_HOST) if not _location(target) else \
            regional_endpoint(self.regional_template, _location(target))
        return map_errors(self.backend, lambda exc: translate_error(exc, target, where))

    def _kw(self) -> dict[str, Any]:
        """No SDK retries (the engine retries), the per-call timeout, and the User-Agent
        (REST metadata become HTTP headers)."""
        return {"retry": None, "timeout": self.request_timeout,
                "metadata": (("user-agent", user_agent(self.run_id)),)}

    # -- references -----------------------------------------------------------------------

    def _name(self, ref: Mapping[str, Any]) -> str:
        sid = str(ref.get("name") or ref.get("secret") or "").strip().strip("/")
        if not sid:
            raise AdapterError("gcp-secrets reference needs `name` (projects/P/secrets/S, "
                               "or the secret id with `project`); `secret` is an alias",
                               where=self.backend)
        if sid.startswith("projects/"):
            parts = sid.split("/")
            regional = len(parts) == 6 and parts[2] == "locations" and \
                bool(_LOCATION.match(parts[3]))
            if not (len(parts) == 4 or regional) or parts[-2] != "secrets" or "" in parts:
                raise AdapterError(f"not a secret name: {sid!r}", where=self.backend,
                                   hint="use projects/P/secrets/S or "
                                   "projects/P/locations/L/secrets/S")
            return sid
        project = str(ref.get("project") or self.project)
        if not project or "/" in sid:
            raise AdapterError(f"secret {sid!r} needs a project: set `project` on the "
                               "reference or the backend", where=self.backend)
        location = str(ref.get("location") or "")
        if location and not _LOCATION.match(location):
            raise AdapterError(f"not a location: {location!r}", where=self.backend)
        where = f"/locations/{location}" if location else ""
        return f"projects/{project}{where}/secrets/{sid}"

    # -- reads ----------------------------------------------------------------------------

    def _versions(self, name: str) -> dict[str, dict[str, str]]:
        """Every version: id -> {"state", "etag"} (ids ascending)."""
        out = {}
        for v in self._client_for(name).list_secret_versions(request={"parent": name},
                                                             **self._kw()):
            out[v.name.rsplit("/", 1)[-1]] = {"state": sm.SecretVersion.State(v.state).name,
                                              "etag": v.etag}
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    def read(self, change: Change) -> dict[str, Any]:
        """Current state: ``{"versions": {id: "ENABLED" | "DISABLED" | "DESTROYED"}}``
        (a write: :func:`adapters.gcp_secrets_rotation.read_write`)."""
        if change.action == rotation.WRITE:
            return rotation.read_write(self, change)
        name = self._name(change.ref)
        with self._errors(name):
            return {"versions": {k: v["state"] for k, v in self._versions(name).items()}}

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the secret's versions and return the change ``action`` would make."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the gcp-secrets adapter does not offer {action}",
                               where=self.backend)
        self.run_id = self.run_id or ctx.run_id  # called outside the engine's runtime
        if action == rotation.WRITE:  # rotation: a new version holding the new key
            return rotation.plan_write(self, ref, ctx)
        name = self._name(ref)
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{name}"
        with self._errors(name):
            versions = self._versions(name)
        before = {"versions": {k: v["state"] for k, v in versions.items()}}
        if not versions:
            return [ctx.change(target, before, before, reversible=False, status=NOOP,
                               note=f"{name} has no versions")]
        if action == "credential.destroy":
            todo = [k for k, v in versions.items() if v["state"] != "DESTROYED"]
            after = {"versions": {k: "DESTROYED" for k in versions}}
            if not todo:
                return [ctx.change(target, before, after, reversible=False, status=NOOP,
                                   note=f"every version of {name} is destroyed")]
            return [ctx.change(target, before, after, reversible=False,
                               undo={"versions": todo,
                                     "etags": {k: versions[k]["etag"] for k in todo}},
                               note=f"destroys version(s) {', '.join(todo)} of {name}: "
                               f"{_DESTROY_NOTE}; restore means a new key and a new version")]
        if action == "credential.disable":
            todo = [k for k, v in versions.items() if v["state"] == "ENABLED"]
            word, verb = "DISABLED", "disables"
        else:  # enable run on its own: the most recently created version
            latest = max(versions, key=int)
            todo = [latest] if versions[latest]["state"] == "DISABLED" else []
            word, verb = "ENABLED", "enables"
        after = {"versions": {k: (word if k in todo else v["state"])
                              for k, v in versions.items()}}
        if not todo:
            why = ("no version is ENABLED" if action == "credential.disable" else
                   f"latest version {max(versions, key=int)} is "
                   f"{versions[max(versions, key=int)]['state']}")
            return [ctx.change(target, before, after, undo={"versions": []}, status=NOOP,
                               note=f"nothing to do on {name}: {why}")]
        note = f"{verb} version(s) {', '.join(todo)} of {name}"
        if action == "credential.disable":
            note += "; reads of latest then fail; undo enables exactly those versions"
        return [ctx.change(target, before, after, undo={"versions": todo}, note=note)]

    # -- apply ----------------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Carry out the change on the recorded versions (idempotent).

        Args:
            change: The planned change.
            current: The state the engine read just before (each version's state); without
                it apply lists the versions itself.

        Returns:
            ``{"versions": [...]}``: the versions acted on.
        """
        if change.action == rotation.WRITE:
            return rotation.apply_write(self, change)
        name = self._name(change.ref)
        ids = [str(v) for v in change.undo.get("versions") or []]
        etags = dict(change.undo.get("etags") or {})
        kw = self._kw()
        with self._errors(name):
            if current is not None:
                now = {str(k): {"state": str(st)}
                       for k, st in (current.get("versions") or {}).items()}
            else:
                now = self._versions(name)
            missing = [v for v in ids if v not in now]
            if missing:
                raise NotFound(f"version(s) {', '.join(missing)} of {name} no longer exist",
                               where=self.backend)
            c = self._client_for(name)
            if change.action == "credential.destroy":
                todo = [v for v in ids if now[v]["state"] != "DESTROYED"]
                with_completion(todo, lambda v: self._guard(name, lambda: c.destroy_secret_version(
                    request={"name": f"{name}/versions/{v}", "etag": etags.get(v, "")}, **kw)))
            elif change.action == "credential.disable":
                todo = [v for v in ids if now[v]["state"] == "ENABLED"]
                with_completion(todo, lambda v: self._guard(name, lambda: c.disable_secret_version(
                    name=f"{name}/versions/{v}", **kw)))
            else:
                todo = [v for v in ids if now[v]["state"] == "DISABLED"]
                with_completion(todo, lambda v: self._guard(name, lambda: c.enable_secret_version(
                    name=f"{name}/versions/{v}", **kw)))
        return {"versions": ids}

    def _guard(self, name: str, call: Any) -> Any:
        """Run one SDK call with errors translated (so in-place retries see AdapterErrors)."""
        with self._errors(name):
            return call()

    # -- verify ---------------------------------------------------------------------------

    def _access(self, version: str) -> tuple[bool, str]:
        """Access a version as an application would; (readable, why). The value is dropped."""
        try:
            self._client_for(version).access_secret_version(name=version, **self._kw())
            return True, "readable"
        except gexc.NotFound as exc:
            return False, f"NOT_FOUND: {exc.message}"
        except gexc.BadRequest as exc:  # FailedPrecondition over gRPC, 400 over REST
            status = status_name(exc)
            if status == "FAILED_PRECONDITION" or "state" in str(exc.message):
                return False, f"{status or 'FAILED_PRECONDITION'}: {exc.message}"
            raise

    def verify(self, change: Change) -> Verdict:
        """Access ``latest`` and every recorded version: they must fail (or, for enable, work)."""
        if change.action == rotation.WRITE:
            return rotation.verify_write(self, change)
        name = self._name(change.ref)
        ids = [str(v) for v in change.undo.get("versions") or []]
        with self._errors(name):
            if change.action == "credential.enable":
                bad = [v for v in ids if not self._access(f"{name}/versions/{v}")[0]]
                if bad:
                    return Verdict(False, "dead", f"version(s) {', '.join(bad)} of {name} "
                                   "are still not accessible")
                return Verdict(True, "restored", f"version(s) {', '.join(ids)} of {name} "
                               "are accessible again")
            latest_ok, why = self._access(f"{name}/versions/latest")
            if latest_ok:
                return Verdict(False, "live", f"an application read of {name} "
                               "(versions/latest) still returns a value")
            live = [v for v in ids if self._access(f"{name}/versions/{v}")[0]]
            if live:
                return Verdict(False, "live", f"version(s) {', '.join(live)} of {name} are "
                               "still accessible")
        return Verdict(True, "dead", f"an application read of {name} fails ({why}); "
                       f"version(s) {', '.join(ids) or 'none'} not accessible")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Enable exactly the versions a disable disabled (or vice versa).

        Raises:
            UndoUnsupported: destroy (irreversible) and changes that did nothing.
        """
        if change.action == rotation.WRITE:
            return rotation.inverse_write(self, change, applied)
        return toggle_inverse(change, applied, ids_key="versions", noun="version(s)",
                              irreversible=_DESTROY_NOTE,
                              irreversible_hint="issue a new key and add it as a new version",
                              of=f" of {change.target}")

    # -- reveal / scan --------------------------------------------------------------------

    def _latest_enabled(self, name: str) -> str | None:
        enabled = [v.name for v in self._client_for(name).list_secret_versions(
            request={"parent": name, "filter": "state:ENABLED"}, **self._kw())]
        if not enabled:
            return None
        return max(enabled, key=lambda n: int(n.rsplit("/", 1)[-1]))

    def _value(self, name: str, field: str | None) -> str | None:
        try:
            version = self._latest_enabled(name)
            if version is None:
                return None
            resp = self._client_for(version).access_secret_version(name=version,
                                                                   **self._kw())
        except (gexc.NotFound, gexc.BadRequest):
            return None
        try:
            return pick_value(resp.payload.data.decode("utf-8"), field)
        except UnicodeDecodeError:
            return None

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """The latest ENABLED version's value, in memory only; None when none is readable."""
        name = self._name(ref)
        field = str(ref.get("field") or "") or None
        with self._errors(name):
            return self._value(name, field)

    def scan(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every global secret of the backend's project with a readable latest ENABLED
        version (regional secrets are listed per location; not scanned here)."""
        if not self.project:
            raise AdapterError(f"backend {self.backend!r} needs option `project` to scan",
                               where=self.backend)
        parent = f"projects/{self.project}"
        with self._errors(parent):
            names = [s.name for s in self.client.list_secrets(
                request={"parent": parent}, **self._kw())]
        for name in names:
            with self._errors(name):
                value = self._value(name, None)
            if value is not None:
                yield {"backend": self.backend, "name": name}, value

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: the secret's metadata and every version's state and dates; never a
        payload (:mod:`adapters.preserve_stores`)."""
        from adapters.preserve_stores import preserve_gcp_secret

        preserve_gcp_secret(self, ref, sink)
