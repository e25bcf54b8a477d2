"""Runs one build command with its output streamed line by line and a hard deadline.

Shared by every phase that starts a process (detect, compile, release, git clone). The child
gets its own process group so a timeout can kill everything it started, not just the leader;
in the bwrap sandbox `--die-with-parent` then tears down the whole PID namespace.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

from ..errors import BuildError

LineSink = Callable[[str], None]
Reader = Callable[[bytes], bool | None]  # True: it has had enough, stop the process
MAX_LINE = 8192  # bytes of one output line shown; the rest of it up to the newline is dropped
TRUNCATED = " [line truncated]"


class BuildTimeout(BuildError):
    """The build ran past settings.build_timeout and was killed."""


def describe_seconds(seconds: float) -> str:
    """`15 minutes`, `90 seconds`: the way the timeout is shown to the user."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    shown = f"{seconds:g}"
    return f"{shown} second{'s' if shown != '1' else ''}"


class Collected:
    """Lines kept in memory (a step's answer, git's error), up to `limit` bytes."""

    def __init__(self, limit: int = 256 * 1024) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self.size = 0
        self.overflow = False

    def append(self, line: str) -> None:
        if self.size + len(line) > self.limit:
            self.overflow = True
            return
        self.size += len(line)
        self.lines.append(line)


class LineSplitter:
    """Bytes in, whole lines out; a line longer than MAX_LINE is cut there (and marked), and
    what follows it up to its newline is dropped, so an endless line costs no memory."""

    def __init__(self, on_line: LineSink) -> None:
        self.on_line = on_line
        self.pending = b""
        self.skipping = False

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        while True:
            newline = self.pending.find(b"\n")
            if self.skipping:
                if newline < 0:
                    self.pending = b""
                    return
                self.pending = self.pending[newline + 1:]
                self.skipping = False
                continue
            if 0 <= newline <= MAX_LINE:
                line, self.pending = self.pending[:newline], self.pending[newline + 1:]
                self.on_line(line.decode("utf-8", "replace").rstrip("\r") + "\n")
                continue
            if len(self.pending) > MAX_LINE:
                head = self.pending[:MAX_LINE].decode("utf-8", "ignore")
                self.on_line(head + TRUNCATED + "\n")
                self.pending = self.pending[MAX_LINE:]
                self.skipping = True
                continue
            return

    def close(self) -> None:
        if self.pending and not self.skipping:
            self.on_line(self.pending.decode("utf-8", "replace") + "\n")
        self.pending = b""


def run_streaming(argv: Sequence[str], on_line: LineSink, deadline: float, phase: str,
                  env: dict[str, str] | None = None, cwd: str | None = None,
                  timeout_label: str = "", pass_fds: Sequence[int] = ()) -> int:
    """Run argv (stdout+stderr merged), call on_line per complete line as it arrives, return
    the exit status. Past `deadline` (time.monotonic) the process group is killed and
    BuildTimeout is raised."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True, pass_fds=tuple(pass_fds))
    assert proc.stdout is not None
    lines = LineSplitter(on_line)
    status = _supervise(proc, {proc.stdout.fileno(): lines.feed}, deadline, phase,
                        timeout_label)
    assert status is not None  # lines.feed never stops the process
    lines.close()
    return status


def _supervise(proc: subprocess.Popen[bytes], readers: dict[int, Reader],
               deadline: float, phase: str, timeout_label: str) -> int | None:
    """Hand what proc writes on each fd to its reader until every fd reached EOF, then
    return the exit status. A reader returning True has had enough: the process group is
    killed and None returned. Past `deadline` the group is killed, its output drained and
    BuildTimeout raised."""
    fds = dict(readers)
    with selectors.DefaultSelector() as selector:
        for fd in fds:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        try:
            while fds:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _kill_group(proc)
                    _drain(selector)
                    raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase)
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:  # EOF: every writer (including grandchildren) is gone
                        selector.unregister(key.fd)
                        del fds[key.fd]
                    elif fds[key.fd](chunk):
                        _kill_group(proc)
                        return None
            return proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase) from None
        finally:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            if proc.poll() is None:  # an exception from a reader: never leave it running
                _kill_group(proc)


def _drain(selector: selectors.BaseSelector, limit: float = 3.0) -> None:
    """Wait (briefly) for EOF: the sandbox's PID namespace dies just after bwrap, and the
    build dir must not be removed while its processes still write to it."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        for key, _ in selector.select(timeout=0.1):
            try:
                if not os.read(key.fd, 65536):
                    return
            except OSError:
                return


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_to_file(argv: Sequence[str], dest_fd: int, limit: int, on_line: LineSink,
                deadline: float, phase: str, timeout_label: str = "") -> tuple[int, int]:
    """Run argv with its stdout written to `dest_fd` and its stderr sent to on_line line by
    line; return (exit status, bytes written). Past `limit` bytes the process group is
    killed and (-1, bytes so far) returned: nothing past the limit reaches the disk."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.fileno(), proc.stderr.fileno()
    return stdout_to_file(dest_fd, limit, on_line, lambda out, err: _supervise(
        proc, {stdout: out, stderr: err}, deadline, phase, timeout_label))


def stdout_to_file(dest_fd: int, limit: int, on_line: LineSink,
                   supervise: Callable[[Reader, Reader], int | None]) -> tuple[int, int]:
    """`supervise(stdout_reader, stderr_reader)` runs a command and returns its exit status
    (None when a reader stopped it): stdout is written to `dest_fd`, stderr sent to on_line
    line by line. Returns (exit status, bytes written); past `limit` bytes the stdout reader
    stops the command and (-1, bytes so far) is returned: nothing past the limit reaches the
    disk. Shared by the sandbox's `run_to_file` and the docker build's exec."""
    written = 0

    def write(chunk: bytes) -> bool:
        nonlocal written
        written += len(chunk)
        if written > limit:
            return True
        view = memoryview(chunk)
        while view:
            view = view[os.write(dest_fd, view):]
        return False

    lines = LineSplitter(on_line)
    status = supervise(write, lines.feed)
    if status is None:
        return -1, written
    lines.close()
    return status, written
