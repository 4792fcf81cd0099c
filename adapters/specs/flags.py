"""Declarations of the feature-flag adapters: flagd file, Unleash, LaunchDarkly.

LaunchDarkly grants render as a custom role policy (``updateOn`` on
``proj/P:env/E:flag/F``); Unleash as the admin token's permission per environment
(``UPDATE_FEATURE_ENVIRONMENT``); the flag file as file-system rights on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, EnvName, FilePath, HttpUrl, Seconds
from adapters.specs import AdapterSpec, Grant

__all__ = ["FLAGFILE", "LAUNCHDARKLY", "UNLEASH", "FlagFileOptions", "LaunchDarklyOptions",
           "UnleashOptions"]


class FlagFileOptions(AdapterOptions):
    """Options of a ``flagfile`` backend."""

    path: FilePath
    """The flagd JSON flag file (relative to the config file's folder)."""


class UnleashOptions(AdapterOptions):
    """Options of an ``unleash`` backend."""

    url: HttpUrl
    """Unleash base URL, e.g. http://127.0.0.1:4242."""
    token_env: EnvName = "UNLEASH_ADMIN_TOKEN"
    """Env var NAME holding an admin API token or PAT (default UNLEASH_ADMIN_TOKEN)."""
    token_file: FilePath = ""
    """Fallback file holding the admin token (optional)."""
    project: str = "default"
    """Project of references that name none (default 'default')."""
    client_token_env: EnvName = ""
    """Env var NAME holding a backend (SDK) token, for verify (optional)."""
    client_token_file: FilePath = ""
    """Fallback file holding the backend token (optional)."""
    request_timeout: Seconds = 30.0
    """Seconds per HTTP call (default 30)."""


class LaunchDarklyOptions(AdapterOptions):
    """Options of a ``launchdarkly`` backend."""

    base_url: HttpUrl = ""
    """API root (default https://app.launchdarkly.com; federal: app.launchdarkly.us)."""
    token_env: EnvName = "LD_API_TOKEN"
    """Env var NAME holding an API access token, not an SDK key (default LD_API_TOKEN)."""
    token_file: FilePath = ""
    """Fallback file holding the access token (optional)."""
    project: str = "default"
    """Project key of references that name none (default 'default')."""
    request_timeout: Seconds = 30.0
    """Seconds per HTTP call (default 30)."""


_STR = {"type": "string", "minLength": 1}
_BASE = {"backend": {"type": "string"}, "label": {"type": "string"}}

FLAGFILE_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["flag"],
    "properties": {**_BASE,
                   "flag": {**_STR, "description": "flag key in the flagd file"},
                   "off_variant": {**_STR, "description": "variant that means off"}},
}


def _envs(description: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": _STR, "description": description}


UNLEASH_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["flag"],
    "properties": {**_BASE,
                   "flag": {**_STR, "description": "feature flag name"},
                   "project": {**_STR, "description": "project id (default: backend's)"},
                   "environments": _envs("environments to act on (default: every one where "
                                         "the flag is on)")},
}
LAUNCHDARKLY_REF: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["flag"],
    "properties": {**_BASE,
                   "flag": {**_STR, "description": "feature flag key"},
                   "project": {**_STR, "description": "project key (default: backend's)"},
                   "environments": _envs("environment keys (default: every one where on)")},
}

_FILE_PERMS = ("write <path> and create files in its directory (atomic replace)",
               "create and lock <path>.lock")


def _flagfile_grants(action: str, ref: Mapping[str, Any], options: Any,
                     step: Mapping[str, Any]) -> list[Grant]:
    path = str(getattr(options, "path", "") or "<path>")
    return [Grant("read and write (atomic replace: create and rename files in the folder)",
                  str(Path(path).parent) + "/", note=f"flag {ref.get('flag', '')}"),
            Grant("create, write and flock", f"{path}.lock")]


FLAGFILE = AdapterSpec(
    name="flagfile",
    options=FlagFileOptions,
    actions={
        "flag.disable": ActionSpec("flag.disable", "flags", True, "flag.enable", _FILE_PERMS,
                                   FLAGFILE_REF),
        "flag.enable": ActionSpec("flag.enable", "flags", True, "flag.disable", _FILE_PERMS,
                                  FLAGFILE_REF),
    },
    iam="host",
    grants=_flagfile_grants,
)
"""The flagfile adapter's declarations."""

_UNLEASH_READ = ("admin API token (or PAT): READ on the project: "
                 "GET /api/admin/projects/{project}/features/{flag}",)
_UNLEASH_VERIFY = "backend token (optional, verify): GET /api/client/features"


def _unleash_perms(word: str) -> tuple[str, ...]:
    return (*_UNLEASH_READ, "UPDATE_FEATURE_ENVIRONMENT in each environment: POST "
            f".../environments/{{env}}/{word}", _UNLEASH_VERIFY)


def _unleash_grants(action: str, ref: Mapping[str, Any], options: Any,
                    step: Mapping[str, Any]) -> list[Grant]:
    project = str(ref.get("project") or getattr(options, "project", "") or "default")
    flag = str(ref.get("flag") or "")
    word = "on" if action == "flag.enable" else "off"
    feature = f"/api/admin/projects/{project}/features/{flag}"
    out = [Grant(f"Unleash admin API token or PAT: read project {project}", f"GET {feature}")]
    for env in ref.get("environments") or ["*"]:
        where = "every environment where the flag is on" if env == "*" else f"environment {env}"
        out.append(Grant(f"Unleash admin API token or PAT: UPDATE_FEATURE_ENVIRONMENT in "
                         f"{where} of project {project}",
                         f"POST {feature}/environments/{env if env != '*' else '{env}'}/{word}"))
    if getattr(options, "client_token_env", "") or getattr(options, "client_token_file", ""):
        out.append(Grant(f"Unleash backend (client) token of project {project}",
                         "GET /api/client/features", note="verify, as an application"))
    return out


UNLEASH = AdapterSpec(
    name="unleash",
    options=UnleashOptions,
    actions={
        "flag.disable": ActionSpec("flag.disable", "flags", True, "flag.enable",
                                   _unleash_perms("off"), UNLEASH_REF),
        "flag.enable": ActionSpec("flag.enable", "flags", True, "flag.disable",
                                  _unleash_perms("on"), UNLEASH_REF),
    },
    iam="token",
    grants=_unleash_grants,
)
"""The unleash adapter's declarations."""


def _ld_perms(kind: str) -> tuple[str, ...]:
    return ("API access token (personal or service; not an SDK/mobile key) with reader "
            "access: GET /api/v2/flags/{project}/{flag}",
            "writer role or custom role allowing updateOn in each environment: "
            f"PATCH /api/v2/flags/{{project}}/{{flag}} (semantic patch {kind})")


def _ld_grants(action: str, ref: Mapping[str, Any], options: Any,
               step: Mapping[str, Any]) -> list[Grant]:
    project = str(ref.get("project") or getattr(options, "project", "") or "default")
    flag = str(ref.get("flag") or "")
    envs = list(ref.get("environments") or ["*"])
    kind = "turnFlagOn" if action == "flag.enable" else "turnFlagOff"
    return [Grant("viewProject", f"proj/{project}", note="read the flag")] + [
        Grant("updateOn", f"proj/{project}:env/{env}:flag/{flag}",
              note=f"semantic patch {kind}") for env in envs]


LAUNCHDARKLY = AdapterSpec(
    name="launchdarkly",
    options=LaunchDarklyOptions,
    actions={
        "flag.disable": ActionSpec("flag.disable", "flags", True, "flag.enable",
                                   _ld_perms("turnFlagOff"), LAUNCHDARKLY_REF),
        "flag.enable": ActionSpec("flag.enable", "flags", True, "flag.disable",
                                  _ld_perms("turnFlagOn"), LAUNCHDARKLY_REF),
    },
    iam="launchdarkly",
    grants=_ld_grants,
)
"""The launchdarkly adapter's declarations."""
