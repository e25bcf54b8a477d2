"""The local terminal as the client end of a one-off dyno (`pushd run myapp bash`)."""

from __future__ import annotations

import os
import shutil
import sys


class TerminalIO:
    def __init__(self) -> None:
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()
        size = shutil.get_terminal_size()
        self.term_size = (size.columns, size.lines) if self.tty else None

    def read(self, size: int) -> bytes:
        return os.read(sys.stdin.fileno(), size)

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def write_err(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
