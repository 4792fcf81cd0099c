"""Who and where: the identity a run, a lock and an approval are recorded under.

- **operator**: ``settings.operator``, else ``$KILLSWITCH_OPERATOR``, else the login name. A
  name a person chooses: it labels the trail, it does not prove anything.
- **host**: ``$KILLSWITCH_HOST``, else the host name. Locks use it to tell "on this host"
  (where a holder's pid can be checked) from "elsewhere" (where only its lease tells).
- **os_user**: the login the process runs as (uid and name), which a person cannot change by
  setting a variable. The two-person rule compares host and OS user too, so one person
  cannot approve their own request by calling themselves someone else.
"""

from __future__ import annotations

import getpass
import os
import pwd
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["HOST_ENV", "Identity", "current", "host_name", "os_user", "operator_name"]

HOST_ENV = "KILLSWITCH_HOST"
"""Environment variable overriding the host name recorded with runs and locks."""


def host_name() -> str:
    """This machine's name as recorded in locks and the trail."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def os_user() -> str:
    """``name(uid)`` of the process's real user."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"{name}({uid})"


def operator_name(config: Config | None = None) -> str:
    """Who is acting: config, then ``$KILLSWITCH_OPERATOR``, then the login name."""
    configured = config.settings.operator if config is not None else None
    return (configured or os.environ.get("KILLSWITCH_OPERATOR")
            or os.environ.get("USER") or getpass.getuser())


@dataclass(frozen=True)
class Identity:
    """An operator as the store records them."""

    operator: str
    host: str
    os_user: str

    def same_person(self, other: Identity) -> bool:
        """True when ``other`` may be the same person: same operator name, or the same OS
        user on the same host (whatever operator name either claims)."""
        return (self.operator == other.operator
                or (self.host == other.host and self.os_user == other.os_user))

    def describe(self) -> str:
        """``operator (os_user on host)``."""
        return f"{self.operator} ({self.os_user} on {self.host})"


def current(config: Config | None = None) -> Identity:
    """This process's identity."""
    return Identity(operator_name(config), host_name(), os_user())
