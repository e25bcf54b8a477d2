"""The local terminal as the client end of a one-off dyno (`pushd run myapp bash`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys


class TerminalIO:
    def __init__(self) -> None:
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()
        self.term = os.environ.get("TERM") if self.tty else None
        self.term_size: tuple[int, int] | None = None
        if self.tty:
            self._measure()
            with contextlib.suppress(ValueError):  # not the main thread: the size stays
                signal.signal(signal.SIGWINCH, lambda *_: self._measure())

    def _measure(self) -> None:
        """The terminal's size now (the one-off's pty follows it)."""
        size = shutil.get_terminal_size()
        self.term_size = (size.columns, size.lines)

    def read(self, size: int) -> bytes:
        return os.read(sys.stdin.fileno(), size)

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def write_err(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
