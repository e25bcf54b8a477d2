"""The platform's event lines (`pushd[web.1]: Starting process with command …`), in Heroku's
words, written in this one place from what runtimes report (`DynoInfo`): the supervisor for
dynos, `stop_app_dynos` for dynos stopped without it, `run_oneoff` for one-offs. Runtimes and
their per-dyno owners write dyno output only.

An exit's lines carry the exit's own time (`DynoInfo.finished_at`), which also tells whether
they were written already: a daemon killed after writing them but before the runtime forgot
the dyno finds them in the log when it adopts that dyno again, and writes nothing twice.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

from .logs import AppLog, format_line
from .paths import Paths
from .runtime.base import Runtime
from .runtime.records import DynoInfo, DynoSpec, OneOffIO

SIGKILLED = 128 + signal.SIGKILL
SCAN_LINES = 5000  # how far back an adopted dyno's exit lines are looked for


def starting(spec: DynoSpec) -> str:
    return f"Starting process with command `{spec.command}`"


STOPPING = "Stopping all processes with SIGTERM"
KILLING = "Stopping remaining processes with SIGKILL"
HANGUP = "Client disconnected; stopping all processes with SIGHUP"


def exit_lines(info: DynoInfo) -> list[str]:
    """What the exit of a dyno says, in order: why the runtime ended it, then its status."""
    lines = []
    if info.killed_after_timeout:
        lines += [f"Error R12 (Exit timeout) -> At least one process failed to exit within "
                  f"{info.spec.stop_timeout:g} seconds of SIGTERM", KILLING]
    if info.oom_killed:
        lines += ["Error R15 (Memory quota vastly exceeded)", "Stopping process with SIGKILL"]
    if info.reason and not (info.killed_after_timeout or info.oom_killed):
        lines.append(f"Error: {info.reason}")
    lines.append(f"Process exited with status {info.exit_status}")
    return lines


def ran(info: DynoInfo) -> bool:
    """Whether an exit is worth telling: its process ran, or the runtime says why not."""
    return info.pid is not None or bool(info.reason)


class EventLog:
    """Platform lines into apps' logs (never recreating a destroyed app's folder)."""

    def __init__(self, paths: Paths, max_bytes: int) -> None:
        self.paths, self.max_bytes = paths, max_bytes

    def _log(self, app_id: int) -> AppLog:
        return AppLog(self.paths.log_file(app_id), self.max_bytes)

    def write(self, app_id: int, dyno: str, *messages: str, at: float | None = None) -> None:
        self._log(app_id).write_lines([format_line("pushd", dyno, m, at) for m in messages])

    def exited(self, info: DynoInfo, now: float, once: bool = False,
               first: Sequence[str] = ()) -> bool:
        """Write the exit lines of a dyno seen exited (after `first`, e.g. an R14 not told
        yet); with `once` (an adopted dyno, one another process may have seen exit too), only
        if they are not in the log already. False when there was nothing to write."""
        if not ran(info):
            return False
        at = info.finished_at or now
        lines = [format_line("pushd", info.spec.dyno, m, at)
                 for m in [*first, *exit_lines(info)]]
        if once and lines[-1] in self._log(info.spec.app_id).read(SCAN_LINES):
            return False
        self._log(info.spec.app_id).write_lines(lines)
        return True


class _Watched:
    """A one-off's client as its runtime sees it; the first sign that it left is logged."""

    def __init__(self, io: OneOffIO, on_gone: Callable[[], None]) -> None:
        self._io, self._on_gone, self.left = io, on_gone, False
        self.tty, self.term_size = io.tty, io.term_size

    def __getattr__(self, name: str) -> object:
        return getattr(self._io, name)

    def _lost(self) -> None:
        if not self.left:
            self.left = True
            self._on_gone()

    def read(self, size: int) -> bytes:
        return self._io.read(size)

    def write(self, data: bytes) -> None:
        self._send(self._io.write, data)

    def write_err(self, data: bytes) -> None:
        self._send(self._io.write_err, data)

    def _send(self, write: Callable[[bytes], None], data: bytes) -> None:
        try:
            write(data)
        except (OSError, EOFError):
            self._lost()
            raise

    def gone(self) -> bool:
        asked = getattr(self._io, "gone", None)
        if asked is not None and asked():
            self._lost()
        return self.left


def run_oneoff(runtime: Runtime, spec: DynoSpec, io: OneOffIO, events: EventLog) -> int:
    """`run`: a one-off through any runtime, with Heroku's lines around it. Its exit status."""
    events.write(spec.app_id, spec.dyno, starting(spec))
    watched = _Watched(io, lambda: events.write(spec.app_id, spec.dyno, HANGUP))
    status = runtime.run(spec, watched)
    if watched.left and status == SIGKILLED:  # it outlived SIGHUP and SIGTERM
        events.write(spec.app_id, spec.dyno, KILLING)
    events.write(spec.app_id, spec.dyno, f"Process exited with status {status}")
    return status
