"""Records that cross the runtime seam: what the supervisor hands a runtime (`DynoSpec`, a
one-off's client end `OneOffIO`) and what a runtime reports back (`DynoInfo`, `Endpoint`).

They live apart from the interface and its registry (`base.py`) so that every side of the
seam (supervisor, router wiring, each runtime, the shim) imports them from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol


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
    cpu_limit: float = 0.0  # at most this many cores (a fraction: a share of one); 0 = none
    disk_mb: int = 0  # size of the writable layer over the slug; 0: unbounded
    stop_timeout: float = 30.0
    image: str = ""  # a Dockerfile release's image (runtimes that run images); "": the slug
    # its app's add-on ports, reached at 127.0.0.1:PORT inside (the forwarder relays each to
    # the add-on's unix socket: addons/reach.py)
    reach: tuple[int, ...] = ()

    def __post_init__(self) -> None:  # read back from JSON, a list: the same spec
        object.__setattr__(self, "reach", tuple(int(port) for port in self.reach))

    @property
    def dyno(self) -> str:
        return f"{self.process_type}.{self.index}"


class MemoryUse(NamedTuple):
    """A running dyno's memory as its runtime measures it, in bytes: what counts against its
    limit (resident and swapped, not the page cache it could drop), and that limit."""

    usage: int
    limit: int


class Endpoint(NamedTuple):
    """Where the router reaches a web dyno: an address the platform owns, never the dyno."""

    host: str
    port: int


class DynoState(StrEnum):
    """A dyno's state as its runtime reports it (`DynoInfo.state`)."""

    STARTING = "starting"  # launched; its process does not run yet
    UP = "up"  # its process runs (a web dyno is routed once the supervisor's probe agrees)
    CRASHED = "crashed"  # exited on its own, or ended by the runtime (`reason`)
    EXITED = "exited"  # exited after a stop was asked for


@dataclass
class DynoInfo:
    """What the runtime knows about a dyno it started, read again after a daemon restart.

    Facts only: the supervisor turns them into the platform's event lines (`pushd/events.py`),
    so a runtime writes none of its own."""

    spec: DynoSpec
    pid: int | None  # the main process (group leader) of the dyno, if known
    running: bool
    exit_status: int | None = None  # set once it has exited
    started_at: float = 0.0
    stopping: bool = False  # a stop was requested (exit is not a crash)
    oom_killed: bool = False
    endpoint: Endpoint | None = None  # web dynos: where the router reaches $PORT
    finished_at: float = 0.0  # when it exited (its exit lines carry this time)
    killed_after_timeout: bool = False  # SIGKILLed after spec.stop_timeout (Heroku's R12)
    reason: str = ""  # why it could not start or was ended by the runtime, one line
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> DynoState:
        if self.running:
            return DynoState.UP if self.pid is not None else DynoState.STARTING
        return DynoState.EXITED if self.stopping else DynoState.CRASHED


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
