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


class BuildTimeout(BuildError):
    """The build ran past settings.build_timeout and was killed."""


def describe_seconds(seconds: float) -> str:
    """`15 minutes`, `90 seconds`: the way the timeout is shown to the user."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    shown = f"{seconds:g}"
    return f"{shown} second{'s' if shown != '1' else ''}"


def run_streaming(argv: Sequence[str], on_line: LineSink, deadline: float, phase: str,
                  env: dict[str, str] | None = None, cwd: str | None = None,
                  timeout_label: str = "", pass_fds: tuple[int, ...] = ()) -> int:
    """Run argv (stdout+stderr merged), call on_line per complete line as it arrives, return
    the exit status. Past `deadline` (time.monotonic) the process group is killed and
    BuildTimeout is raised."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True, pass_fds=pass_fds)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _kill_group(proc)
                    _drain(fd, selector)
                    raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase)
                if not selector.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:  # EOF: every writer (including grandchildren) is gone
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace").rstrip("\r") + "\n")
            if pending:
                on_line(pending.decode("utf-8", "replace") + "\n")
            return proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase) from None
        finally:
            proc.stdout.close()
            if proc.poll() is None:  # an exception from on_line: never leave it running
                _kill_group(proc)


def _drain(fd: int, selector: selectors.BaseSelector, limit: float = 3.0) -> None:
    """Wait (briefly) for EOF: the sandbox's PID namespace dies just after bwrap, and the
    build dir must not be removed while its processes still write to it."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if selector.select(timeout=0.1):
            try:
                if not os.read(fd, 65536):
                    return
            except OSError:
                return


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
