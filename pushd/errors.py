"""Exception types, one per layer; each edge turns them into a one-line message."""

from __future__ import annotations


class PushdError(Exception):
    """Base of every error pushd reports to a user: `str(err)` is the one-line message."""

    exit_code = 1


class UsageError(PushdError):
    """Wrong arguments or an unknown command; the edge prints usage."""

    exit_code = 2


class InvalidName(UsageError):
    """A name from outside (app, key, domain, process type...) failed validation."""


class InvalidValue(UsageError):
    """A value from outside (a size, a number of cores) failed validation; the message says
    what a good one is."""


class NotFound(PushdError):
    """An app, release, key or domain that does not exist."""


class Forbidden(PushdError):
    """The caller's key may not do this."""


class Refused(Forbidden):
    """A quota or a policy refuses the action; the message names which and why."""


class Conflict(PushdError):
    """The thing already exists, or another operation holds it."""


class BuildError(PushdError):
    """A build phase failed; `phase` names which (fetch, detect, compile, release, slug)."""

    def __init__(self, message: str, phase: str = "compile") -> None:
        super().__init__(message)
        self.phase = phase


class DiskFull(PushdError):
    """The state dir's filesystem (or another pushd writes to) is full: `No space left on
    device`, where, and that nothing was changed."""


class RuntimeFailure(PushdError):
    """The runtime could not start, stop or inspect a dyno."""


class RouterError(PushdError):
    """The router configuration was refused (nginx -t) or nginx could not be reloaded."""


class ReleaseFailed(PushdError):
    """A new release did not come up; the previous release keeps serving. `output` holds the
    failing dyno's last lines, for the push to show under the one-line reason."""

    def __init__(self, message: str, output: list[str] | None = None) -> None:
        super().__init__(message)
        self.output = output or []


class CertificateError(InvalidValue):
    """A certificate or key refused (does not parse, expired, wrong domain, key mismatch),
    or an ACME order that failed; the message says which and why."""
