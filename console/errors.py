"""Errors every Killswitch module may raise; the leaf module of the package.

Each error carries the exit code the CLI uses for it, so that one mapping serves the headless
commands and the TUI alike::

    ConsoleError(msg, *, title="", where="", hint="")      exit 1
    ├── UsageError                                           exit 2  bad flags or arguments
    ├── ConfigError                                          exit 2  config / inventory TOML
    │   └── RunbookError                                     exit 2
    │       ├── RunbookSyntaxError                                   malformed TOML
    │       └── RunbookValidationError                               unknown action, cycle, ...
    ├── AuditError                                           exit 1  trail cannot be written
    │   └── AuditTampered                                    exit 4  chain does not verify
    ├── EngineError                                          exit 1
    │   ├── Refused                                          exit 3  nothing was changed
    │   │   ├── PlanStaleError                                       precondition drifted
    │   │   ├── PlanUntrusted                                        saved plan does not match
    │   │   ├── LockHeld                                             another run holds a lock
    │   │   ├── BlastRadiusExceeded                                  more targets than allowed
    │   │   ├── IrreversibleNotAllowed                               no --allow-irreversible
    │   │   └── NotConfirmed                                         no --yes / wrong typed id
    │   ├── PreconditionFailed                               exit 3
    │   ├── ApplyError                                       exit 1
    │   ├── UndoUnsupported                                  exit 3
    │   └── VerificationFailed                               exit 4
    └── AdapterError                                         exit 1  only type escaping adapters
        ├── AuthError                                                401, missing credentials
        ├── PermissionDenied                                         403
        ├── NotFound                                                 404
        ├── Conflict                                                 409 / invalid state
        ├── RateLimited          (retryable)                         429, throttling
        ├── Unavailable          (retryable)                         5xx, connection refused
        └── Timeout              (retryable)                         no answer in time
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_REFUSED",
    "EXIT_VERIFY",
    "EXIT_INTERRUPTED",
    "ConsoleError",
    "UsageError",
    "ConfigError",
    "RunbookError",
    "RunbookSyntaxError",
    "RunbookValidationError",
    "AuditError",
    "AuditTampered",
    "EngineError",
    "Refused",
    "PlanStaleError",
    "PlanUntrusted",
    "LockHeld",
    "BlastRadiusExceeded",
    "IrreversibleNotAllowed",
    "NotConfirmed",
    "PreconditionFailed",
    "ApplyError",
    "UndoUnsupported",
    "VerificationFailed",
    "AdapterError",
    "AuthError",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "RateLimited",
    "Unavailable",
    "Timeout",
]

EXIT_OK = 0
"""Everything asked for was done and verified."""
EXIT_FAILED = 1
"""Some operations failed (the others may have been applied)."""
EXIT_USAGE = 2
"""Usage, config or input error: nothing was executed."""
EXIT_REFUSED = 3
"""Refused (drift, lock held, blast radius, irreversible without consent, no confirmation)."""
EXIT_VERIFY = 4
"""Verification failed: a kill did not take effect, or the audit chain does not verify."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C): in-flight operations finished and were recorded; resume the rest."""


class ConsoleError(Exception):
    """Base of every error Killswitch reports to a person.

    Args:
        msg: What went wrong, in one sentence.
        title: A short heading for a modal or a notification.
        where: Where it went wrong: ``file:line``, a target reference, a backend name.
        hint: How to fix it.
    """

    exit_code: int = EXIT_FAILED

    def __init__(self, msg: str, *, title: str = "", where: str = "", hint: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.title = title or type(self).__name__
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.msg}" if self.where else self.msg
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(ConsoleError):
    """A command was called with arguments that cannot work."""

    exit_code = EXIT_USAGE


class ConfigError(ConsoleError):
    """The config or inventory cannot be read or is invalid."""

    exit_code = EXIT_USAGE


class RunbookError(ConfigError):
    """A runbook cannot be used."""


class RunbookSyntaxError(RunbookError):
    """A runbook file is not valid TOML."""


class RunbookValidationError(RunbookError):
    """A runbook is valid TOML but not a valid runbook (unknown action, cycle, ...)."""


class AuditError(ConsoleError):
    """The audit trail cannot be written or read; side effects must not happen."""


class AuditTampered(AuditError):
    """The hash chain does not verify.

    Args:
        seq: The first sequence number whose hash does not match.
    """

    exit_code = EXIT_VERIFY

    def __init__(self, msg: str, *, seq: int, **kw: str) -> None:
        super().__init__(msg, **kw)
        self.seq = seq


class EngineError(ConsoleError):
    """The engine could not do what was asked."""


class Refused(EngineError):
    """The engine refused to start or continue a run; nothing further was changed."""

    exit_code = EXIT_REFUSED


class PlanStaleError(Refused):
    """A change's precondition drifted since it was planned."""


class PlanUntrusted(Refused):
    """A saved plan is not what would be planned now (edited, retargeted, unsigned)."""


class LockHeld(Refused):
    """Another live run holds the lock on an integration."""


class BlastRadiusExceeded(Refused):
    """A live run targets more integrations than `max_targets` allows."""


class IrreversibleNotAllowed(Refused):
    """The plan holds irreversible changes and consent was not given."""


class NotConfirmed(Refused):
    """A live run was not confirmed (no --yes off a TTY, or a wrong typed id)."""


class PreconditionFailed(EngineError):
    """A target is not in a state the change can start from."""

    exit_code = EXIT_REFUSED


class ApplyError(EngineError):
    """A change could not be applied."""


class UndoUnsupported(EngineError):
    """A change cannot be undone (irreversible, or the adapter has no inverse)."""

    exit_code = EXIT_REFUSED


class VerificationFailed(EngineError):
    """Verify found a target that is still live after the kill."""

    exit_code = EXIT_VERIFY


class AdapterError(ConsoleError):
    """The only error type an adapter lets escape.

    Args:
        msg: What failed, including the provider's own message.
        retryable: Whether the engine may retry the call.
        retry_after: Seconds the provider asked us to wait (Retry-After), if any.
        status: The provider's HTTP status, when there was one.
    """

    retryable: bool = False

    def __init__(
        self,
        msg: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        **kw: str,
    ) -> None:
        super().__init__(msg, **kw)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class AuthError(AdapterError):
    """Credentials for the console are missing or rejected."""


class PermissionDenied(AdapterError):
    """The console's credentials lack a permission."""


class NotFound(AdapterError):
    """The target does not exist."""


class Conflict(AdapterError):
    """The target is in a state that does not allow the call."""


class RateLimited(AdapterError):
    """The provider throttled the call."""

    retryable = True


class Unavailable(AdapterError):
    """The provider answered 5xx or could not be reached."""

    retryable = True


class Timeout(AdapterError):
    """The provider did not answer in time; the outcome may be unknown."""

    retryable = True
