"""The runtime interface: how a dyno is started, stopped, inspected, adopted and logged.

A runtime is registered by name (`@register("sandbox")`) when the wiring (`platform.py`)
imports it; `pushd up --runtime NAME` picks one. What it brings to the platform's other flows
(builds, release images, cleanup) is its support class (`support.py`), named when it
registers. Later runtimes plug in by registering a class, without touching the supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..errors import UsageError
from ..paths import Paths
from ..settings import Settings
from .records import DynoInfo, DynoSpec, MemoryUse, OneOffIO
from .support import LocalSupport, RuntimeSupport


class Runtime(Protocol):
    name: str

    def start(self, spec: DynoSpec) -> DynoInfo:
        """Start a detached dyno that outlives the daemon; returns at once. A web dyno
        (`spec.port`: its `$PORT` inside) gets an endpoint the runtime chooses and keeps
        private (`DynoInfo.endpoint`). RuntimeFailure, one line, if it cannot start (no free
        endpoint, ...). Runtimes report facts in `DynoInfo` and write no platform line:
        those are the supervisor's (`pushd/events.py`)."""

    def stop(self, dyno_id: str) -> None:
        """SIGTERM the dyno's whole process group, SIGKILL after spec.stop_timeout. Returns at
        once; the escalation happens even if the daemon dies meanwhile."""

    def list(self) -> list[DynoInfo]:
        """Every dyno this runtime knows of, alive or exited-but-not-removed (adoption)."""

    def remove(self, dyno_id: str) -> None:
        """Forget an exited dyno and free its resources (writable layer, cgroup, state)."""

    def sweep(self) -> list[str]:
        """At daemon start: free what one-offs of a dead process left (their ids)."""

    def probe(self, spec: DynoSpec) -> bool:
        """True once this very web dyno accepts connections on $PORT (checked inside its own
        network: the endpoint in front of it may answer before the dyno does)."""

    def logs(self, dyno_id: str, lines: int) -> list[str]:
        """The dyno's last output lines (plain text, running or exited-not-removed), for
        telling a pusher why a release failed. The app log has everything."""

    def memory(self, dyno_id: str) -> MemoryUse | None:
        """A running dyno's memory use and limit now (None if not known, or not running):
        the supervisor logs R14 when it nears the limit."""

    def check_host(self) -> None:
        """At `pushd up`: what this runtime needs of the host is there; one line
        (PushdError) if not."""

    def run(self, spec: DynoSpec, io: OneOffIO) -> int:
        """Run a one-off dyno in the foreground, wired to `io`; returns the exit status.
        Called through `events.run_oneoff`, which writes its lines; a client that left shows
        in `io.gone()` (or a failed write): SIGHUP, then SIGTERM, SIGKILL after the stop
        timeout (exit status 137)."""


RUNTIMES: dict[str, type] = {}
SUPPORTS: dict[str, type] = {}


def register(name: str, support: type = LocalSupport) -> Callable[[type], type]:
    """Register a runtime class by name, with its support class (`support.RuntimeSupport`:
    builds, release images, cleanup; `LocalSupport` keeps nothing beyond slug folders)."""
    def deco(cls: type) -> type:
        cls.name = name
        RUNTIMES[name] = cls
        SUPPORTS[name] = support
        return cls
    return deco


def check_runtime(name: str) -> None:
    """Refuse a runtime name no module registered: one line for the user, not a traceback."""
    if name not in RUNTIMES:
        known = ", ".join(sorted(RUNTIMES)) or "none"
        raise UsageError(f"Unknown runtime {name!r} in pushd.yaml, --runtime or PUSHD_RUNTIME "
                         f"(known: {known})")


def make_runtime(settings: Settings, paths: Paths) -> Runtime:
    """The registered runtime `settings.runtime` names (the wiring imports the modules that
    register themselves: this interface knows none of them)."""
    check_runtime(settings.runtime)
    return RUNTIMES[settings.runtime](settings, paths)


def make_support(platform: Any) -> RuntimeSupport:
    """The support of the runtime the platform's settings name."""
    check_runtime(platform.settings.runtime)
    return SUPPORTS[platform.settings.runtime](platform)
