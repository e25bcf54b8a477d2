"""The local CLI's end of the control socket: send the command, relay the terminal (raw mode
and window size when it is one), print what comes back, return the exit status."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import termios
import threading
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import PushdError
from . import frames


class NotRunning(PushdError):
    exit_code = 1


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        sock.close()
        raise NotRunning("pushd is not running: start it with `pushd up`") from None
    except ConnectionRefusedError:
        sock.close()
        raise NotRunning("pushd is not running (a stale control socket): start it with "
                         "`pushd up`") from None
    return sock


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    before = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)


def _size() -> list[int]:
    size = shutil.get_terminal_size()
    return [size.columns, size.lines]


def run(path: Path, argv: Sequence[str]) -> int:
    """Run one admin command in the daemon; its exit status."""
    sock = connect(path)
    # a terminal for `run` only, as `ssh -t`: anything else keeps Ctrl-C for this client
    interactive = bool(argv) and argv[0] == "run" and sys.stdin.isatty() and sys.stdout.isatty()
    hello = {"argv": list(argv), "tty": interactive,
             "term": os.environ.get("TERM") if interactive else None,
             "size": _size() if interactive else None}
    frames.send(sock, frames.HELLO, json.dumps(hello).encode())
    if interactive:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGWINCH, lambda *_: _quietly(
                frames.send, sock, frames.WINDOW, json.dumps(_size()).encode()))
    threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    with _raw(sys.stdin.fileno()) if interactive else contextlib.nullcontext():
        return _relay(sock)


def _quietly(func, *args) -> None:  # noqa: ANN001
    with contextlib.suppress(OSError):
        func(*args)


def _pump_stdin(sock: socket.socket) -> None:
    try:
        while data := os.read(sys.stdin.fileno(), 65536):
            frames.send(sock, frames.STDIN, data)
        frames.send(sock, frames.STDIN_EOF)
    except OSError:
        pass


def _relay(sock: socket.socket) -> int:
    while True:
        frame = frames.receive(sock)
        if frame is None:
            return 255  # the daemon went away mid-command
        kind, payload = frame
        if kind == frames.STDOUT:
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        elif kind == frames.STDERR:
            sys.stderr.buffer.write(payload)
            sys.stderr.buffer.flush()
        elif kind == frames.EXIT:
            with contextlib.suppress(ValueError):
                return int(payload)
            return 255
