"""The docker runtime's launcher, kept warm: one server process per daemon that has pushd and
the docker SDK imported already, and forks one child per dyno launch (its release image, its
container, its pasta). A fresh Python importing the SDK costs about half a second a launch;
a fork costs milliseconds.

    python -m pushd.runtime.docker.forkserver STATE_DIR [--target module:function]

The protocol is lines on the server's stdin/stdout: the daemon writes `launch <dyno id>`,
the server answers `started <dyno id> <pid>` once the child is forked and
`exited <dyno id> <status>` once it is done.

What a daemon killed at any moment leaves: every child runs in a session of its own, holds
nothing of the daemon's and does its launch to the end (the state file says who launches,
as a one-shot launcher did). The server ends when its stdin closes (the daemon died or
stopped); children it forked go on. A server that dies is started again on the next launch;
launches it had forked go on too, and the daemon finds them by their state files (the
launcher's pid and start time) as after a restart.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from ...errors import RuntimeFailure

TARGET = "pushd.runtime.docker.launch:launch_dyno"
REPLY_TIMEOUT = 15.0  # a fork answers in milliseconds; this only bounds a wedged server
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class ForkServer:
    """The daemon's side: starts the server on first use (and again when it died), asks it
    for launches, and calls `on_exit(dyno_id)` (on a thread of its own) once a launch it
    asked for is over, or can no longer be watched because the server died."""

    def __init__(self, root: Path, log_path: Path, on_exit: Callable[[str], None],
                 target: str = TARGET) -> None:
        self.root, self.log_path, self.on_exit, self.target = root, log_path, on_exit, target
        self._lock = threading.Lock()  # one command and its answer at a time
        self._answers = threading.Condition()
        self._started: dict[str, int] = {}
        self._proc: subprocess.Popen | None = None
        self._watched: set[str] = set()  # forked, exit not seen yet

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def launch(self, dyno_id: str) -> int:
        """Fork the launch of `dyno_id`; the child's pid. RuntimeFailure when no server
        answers (the launch may then still have been forked: its state file tells)."""
        if not _ID.fullmatch(dyno_id):
            raise RuntimeFailure(f"Invalid dyno id {dyno_id!r}")
        with self._lock:
            proc = self._server()
            try:
                assert proc.stdin is not None
                proc.stdin.write(f"launch {dyno_id}\n".encode())
                proc.stdin.flush()
            except OSError:  # it died since: a new one; the command never reached the old
                self._end(proc)
                proc = self._server()
                assert proc.stdin is not None
                try:
                    proc.stdin.write(f"launch {dyno_id}\n".encode())
                    proc.stdin.flush()
                except OSError as err:
                    raise RuntimeFailure(f"the launcher is not running ({err})") from None
            with self._answers:
                done = self._answers.wait_for(
                    lambda: dyno_id in self._started or proc.poll() is not None,
                    REPLY_TIMEOUT)
                pid = self._started.pop(dyno_id, None)
            if pid is None:
                raise RuntimeFailure("the launcher ended before it started the dyno" if done
                                     else "the launcher did not answer")
            return pid

    def close(self) -> None:
        """End the server (launches under way go on)."""
        with self._lock:
            if self._proc is not None:
                self._end(self._proc)

    def _server(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as errors:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pushd.runtime.docker.forkserver", str(self.root),
                 "--target", self.target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors, start_new_session=True)
        self._proc = proc
        threading.Thread(target=self._read, args=(proc,), name="launcher-answers",
                         daemon=True).start()
        return proc

    def _end(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            words = raw.decode("utf-8", "replace").split()
            if len(words) == 3 and words[0] == "started" and words[2].isdigit():
                with self._answers:
                    self._started[words[1]] = int(words[2])
                    self._watched.add(words[1])
                    self._answers.notify_all()
            elif len(words) == 3 and words[0] == "exited":
                with self._answers:
                    self._watched.discard(words[1])
                self._exited(words[1])
        proc.wait()
        with self._answers:  # its children go on, unwatched: their state files tell
            orphans, self._watched = self._watched, set()
            self._answers.notify_all()
        for dyno_id in orphans:
            self._exited(dyno_id)

    def _exited(self, dyno_id: str) -> None:
        threading.Thread(target=self.on_exit, args=(dyno_id,), name=f"launched-{dyno_id}",
                         daemon=True).start()


# the server process
def serve(root: Path, target: Callable[[Path, str], None]) -> int:
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, str] = {}
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([0, wake_r], [], [])
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            for pid, status in _reaped():
                _say(f"exited {children.pop(pid, '-')} {status}")
            if 0 not in ready:
                continue
            data = os.read(0, 4096)
            if not data:  # the daemon is gone or done with us
                return 0
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.decode("utf-8", "replace").split()
                if len(words) != 2 or words[0] != "launch" or not _ID.fullmatch(words[1]):
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(target, root, words[1], (wake_r, wake_w))
                children[pid] = words[1]
                _say(f"started {words[1]} {pid}")
    except BrokenPipeError:  # the daemon died
        return 0


def _reaped() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, os.waitstatus_to_exitcode(status)))


def _say(line: str) -> None:
    os.write(1, f"{line}\n".encode())


def _child(target: Callable[[Path, str], None], root: Path, dyno_id: str,
           fds: tuple[int, int]) -> None:
    """One launch, to its end whatever happens to the server or the daemon; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # the daemon's pipe: its end of file is the server's alone
        for fd in (null, *fds):
            os.close(fd)
        target(root, dyno_id)
        code = 0
    except BaseException:  # noqa: BLE001  (reported in launch.log, never raised on)
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def load(spec: str) -> Callable[[Path, str], None]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    args = argv[1:]
    target = TARGET
    if len(args) == 3 and args[1] == "--target":
        target = args[2]
        args = args[:1]
    if len(args) != 1:
        print("usage: python -m pushd.runtime.docker.forkserver STATE_DIR "
              "[--target module:function]", file=sys.stderr)
        return 2
    return serve(Path(args[0]), load(target))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
