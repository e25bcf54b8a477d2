"""The runtime interface: how a dyno is started, stopped, inspected, adopted and logged.

A runtime is registered by name (`@register("sandbox")`) when the wiring (`platform.py`)
imports it; `pushd up --runtime NAME` picks one.
Later runtimes (docker) plug in by registering a class, without touching the supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from ..paths import Paths
from ..settings import Settings


@dataclass(frozen=True)
class DynoSpec:
    """Everything a runtime needs to start one dyno (or a one-off)."""

    id: str  # unique instance id, e.g. "7-web.1-v3-a1b2c3" (app id, dyno, release, random)
    app_id: int
    app: str
    release: int
    process_type: str  # web, worker, ..., run
    index: int  # the N of web.N / run.N
    command: str  # Procfile command, run by bash -c after .profile.d
    env: dict[str, str]  # config vars + PORT, DYNO, HOME, ... (built by the supervisor)
    slug_dir: str  # compiled app, mounted at /app (each dyno gets its own writable layer)
    uid: int  # unprivileged uid for this app
    port: int | None = None  # web dynos only: $PORT inside the dyno's own network
    memory_mb: int = 512
    pids_max: int = 256  # processes and threads in the dyno (Heroku's standard dynos: 256)
    cpu_shares: int = 1024  # CPU weight against other dynos (cgroup v1 cpu.shares)
    disk_mb: int = 0  # size of the writable layer over the slug; 0: unbounded
    stop_timeout: float = 30.0

    @property
    def dyno(self) -> str:
        return f"{self.process_type}.{self.index}"


class Endpoint(NamedTuple):
    """Where the router reaches a web dyno: an address the platform owns, never the dyno."""

    host: str
    port: int


@dataclass
class DynoInfo:
    """What the runtime knows about a dyno it started, read again after a daemon restart."""

    spec: DynoSpec
    pid: int | None  # the main process (group leader) of the dyno, if known
    running: bool
    exit_status: int | None = None  # set once it has exited
    started_at: float = 0.0
    stopping: bool = False  # a stop was requested (exit is not a crash)
    oom_killed: bool = False
    endpoint: Endpoint | None = None  # web dynos: where the router reaches $PORT
    extra: dict[str, str] = field(default_factory=dict)


class OneOffIO(Protocol):
    """The client end of a one-off dyno (an SSH channel, or the local terminal).

    Optional, where the client has them: `command_line: str | None`, the client's command
    line as one string (SSH), which `run` takes its command from; `gone() -> bool`, true once
    the client has disconnected (not merely ended its input), which stops the one-off. A
    write that fails means the client is gone too.
    """

    tty: bool  # the client asked for a terminal (ssh -t): run the dyno on a pty
    term_size: tuple[int, int] | None  # (columns, rows) when tty

    def read(self, size: int) -> bytes:
        """Client input; b"" at end of input. Blocks."""

    def write(self, data: bytes) -> None:
        """Dyno stdout (and, on a tty, everything)."""

    def write_err(self, data: bytes) -> None:
        """Dyno stderr when not on a tty."""


class Runtime(Protocol):
    name: str

    def start(self, spec: DynoSpec) -> DynoInfo:
        """Start a detached dyno that outlives the daemon; returns at once."""

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

    def run(self, spec: DynoSpec, io: OneOffIO) -> int:
        """Run a one-off dyno in the foreground, wired to `io`; returns the exit status."""


RUNTIMES: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        RUNTIMES[name] = cls
        return cls
    return deco


def make_runtime(settings: Settings, paths: Paths) -> Runtime:
    """The registered runtime `settings.runtime` names (the wiring imports the modules that
    register themselves: this interface knows none of them)."""
    try:
        cls = RUNTIMES[settings.runtime]
    except KeyError:
        known = ", ".join(sorted(RUNTIMES))
        raise ValueError(f"Unknown runtime {settings.runtime!r} (known: {known})") from None
    return cls(settings, paths)
