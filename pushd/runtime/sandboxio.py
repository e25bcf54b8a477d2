"""The I/O side of running a sandbox: what bwrap says about it on its info fd (SandboxInfo,
shared with the shim), and a one-off's processes wired to its client through pipes or a pty
(start_pipes, start_tty, ClientEnd)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..cgroups import kill_members
from ..procs import live_stat
from .bwrap import SYSTEM_PATH
from .dynodir import signal_sandbox
from .records import OneOffIO

SETSID = shutil.which("setsid", path=SYSTEM_PATH) or "/usr/bin/setsid"
CLIENT_POLL = 0.2  # how often a running one-off checks that its client (and its size) changed
DEFAULT_TERM_SIZE = (80, 24)  # (columns, rows) for a client that sent none (ssh -tt in a pipe)


def start_pipes(argv: list[str], client: ClientEnd, env: dict[str, str],
                 pass_fds: tuple[int, ...] = ()
                 ) -> tuple[subprocess.Popen, list[threading.Thread]]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True, start_new_session=True,
                            pass_fds=pass_fds, env=env)

    def write_in(data: bytes) -> None:
        proc.stdin.write(data)
        proc.stdin.flush()

    def copy(stream: IO[bytes], send: Callable[[bytes], None]) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            send(chunk)

    background(client.feed, write_in, proc.stdin.close)
    copiers = [background(copy, proc.stdout, client.sender(client.io.write)),
               background(copy, proc.stderr, client.sender(client.io.write_err))]
    return proc, copiers

def start_tty(argv: list[str], client: ClientEnd, env: dict[str, str],
               pass_fds: tuple[int, ...] = ()
               ) -> tuple[subprocess.Popen, list[threading.Thread]]:
    """The dyno on a new pty. Each descriptor of it has one owner that closes it however
    the one-off ends (the daemon lives long, a leak per `ssh -t run` adds up): the input
    thread its own dup of the master, the output thread the master, which it reads until
    every holder of the slave side is gone (the caller kills the sandbox if it must), and
    resizes when the client's window does."""
    master, slave = pty.openpty()
    size = client.term_size()
    try:
        set_winsize(slave, size)
        # setsid -c: a new session whose controlling terminal is the pty on stdin
        proc = subprocess.Popen([SETSID, "-c", *argv], stdin=slave, stdout=slave,
                                stderr=slave, close_fds=True, pass_fds=pass_fds, env=env)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    unowned = [master]
    try:
        # the input side writes through its own descriptor and closes it when done, so it
        # never writes to a number the output side has closed (and something else reused)
        writer = os.dup(master)
        unowned.append(writer)

        def close_writer() -> None:
            os.write(writer, b"\x04")  # end of input, as ^D on a terminal

        def feed() -> None:
            try:
                client.feed(lambda data: os.write(writer, data), close_writer)
            finally:
                os.close(writer)

        def copy() -> None:
            send = client.sender(client.io.write)
            shown = size
            poller = select.poll()  # not select(): the daemon's descriptors pass 1024
            poller.register(master, select.POLLIN)
            try:
                while True:
                    ready = poller.poll(CLIENT_POLL * 1000)
                    wanted = client.term_size()
                    if wanted != shown:  # the kernel tells the foreground job (SIGWINCH)
                        with contextlib.suppress(OSError):
                            set_winsize(master, wanted)
                        shown = wanted
                    if not ready:
                        continue
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every holder of the slave side is gone
                        return
                    if not data:
                        return
                    send(data)
            finally:
                os.close(master)

        background(feed)
        unowned.remove(writer)
        copier = background(copy)
        unowned.remove(master)
    except BaseException:
        for fd in unowned:
            os.close(fd)
        kill_sandbox(proc)
        raise
    return proc, [copier]


def set_winsize(fd: int, size: tuple[int, int]) -> None:
    cols, rows = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class SandboxInfo:
    """What bwrap tells about a sandbox on its --info-fd: the pid of its pid-1 init, which
    outlives the main process while anything else in the sandbox runs, and the pid namespace
    that names it for sure (a recycled pid lives in another namespace). SIGKILL to that init
    takes every process of the namespace down, whether or not there is a cgroup."""

    def __init__(self) -> None:
        self.reader, self.writer = os.pipe()
        os.set_blocking(self.reader, False)
        self.data = b""

    def close_writer(self) -> None:
        if self.writer >= 0:
            os.close(self.writer)
            self.writer = -1

    def close(self) -> None:
        self.close_writer()
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1

    def init_pid(self) -> int | None:
        """The sandbox's init while it still runs (bwrap wrote this as the sandbox began)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.reader, 4096):
                self.data += chunk
        try:
            info = json.loads(self.data)
            pid, namespace = int(info["child-pid"]), int(info["pid-namespace"])
        except (ValueError, KeyError, TypeError):
            return None
        try:
            same = os.readlink(f"/proc/{pid}/ns/pid") == f"pid:[{namespace}]"
        except OSError:  # gone (a zombie has no namespace left either)
            return None
        return pid if same else None

    def wait_init(self, proc: subprocess.Popen, timeout: float) -> int | None:
        """The sandbox's init once bwrap tells it; None if `proc` (bwrap, or what starts it)
        ends first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while (init := self.init_pid()) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.002)
        # bwrap tells the pid as soon as it exists, before the sandbox has set up its own
        # loopback: wait for that (its init forks the command once set up), or pasta's
        # --config-net may race bwrap's and fail the dyno's start ("Failed RTM_NEWADDR")
        while not _has_children(init) and live_stat(init) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        return init

    def kill_all(self, group: Path | None) -> None:
        """SIGKILL whatever is left of the sandbox: its init (the whole pid namespace), and
        every process in its cgroup where there is one."""
        init = self.init_pid() if self.reader >= 0 else None
        if init is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(init, signal.SIGKILL)
        if group is not None:
            kill_members(group)


def _has_children(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def kill_sandbox(proc: subprocess.Popen) -> None:
    """SIGKILL a one-off's sandbox, every process in it, and reap it."""
    signal_sandbox(proc.pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def background(target: Callable[..., None], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class ClientEnd:
    """A one-off's client, watched: a failed write or a disconnect means it is gone. The end
    of its input alone does not (`ssh platform run app cmd < /dev/null` runs to its end)."""

    def __init__(self, io: OneOffIO) -> None:
        self.io = io
        self.lost = threading.Event()

    def gone(self) -> bool:
        disconnected = getattr(self.io, "gone", None)  # optional in OneOffIO
        return self.lost.is_set() or bool(disconnected and disconnected())

    def term_size(self) -> tuple[int, int]:
        """The client's (columns, rows) now; a dimension it sent as 0 (ssh -tt without a
        terminal of its own) gets the usual 80x24's."""
        cols, rows = getattr(self.io, "term_size", None) or (0, 0)
        return (cols or DEFAULT_TERM_SIZE[0], rows or DEFAULT_TERM_SIZE[1])

    def sender(self, write: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """`write`, which once the client is lost drops the output: the dyno's pipes keep
        being drained, so it never blocks on a full one while it is being stopped."""
        def send(data: bytes) -> None:
            if self.lost.is_set():
                return
            try:
                write(data)
            except (OSError, EOFError):
                self.lost.set()
        return send

    def feed(self, write: Callable[[bytes], None], done: Callable[[], None]) -> None:
        """Client input to the dyno until the end of it (then `done()`)."""
        while True:
            try:
                data = self.io.read(4096)
            except Exception:  # a broken channel is the end of input
                data = b""
            try:
                if not data:
                    done()
                    return
                write(data)
            except OSError:  # the dyno closed its input or is gone
                return
