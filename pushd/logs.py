"""Per-app log: dyno output and platform events in Heroku's line format, one file per app,
bounded in size (rotated once to app.log.1), kept across deploys and restarts.

Every writer (dyno shims, the daemon, one-off commands) appends whole lines with O_APPEND, so
lines from several processes never interleave mid-line.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LINE_RE = re.compile(r"^(\S+) (app|pushd)\[([^\]]+)\]: ?(.*)$")


def timestamp(now: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return moment.isoformat(timespec="microseconds")


def format_line(source: str, dyno: str, message: str, now: float | None = None) -> str:
    """`2026-11-26T07:36:25.123456+00:00 app[web.1]: message`"""
    clean = message.rstrip("\r\n").replace("\n", " ")
    return f"{timestamp(now)} {source}[{dyno}]: {clean}\n"


class AppLog:
    def __init__(self, path: Path, max_bytes: int = 5 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes

    def write(self, source: str, dyno: str, message: str) -> None:
        self.write_lines([format_line(source, dyno, message)])

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        data = "".join(lines).encode("utf-8", "replace")
        try:
            # never parents=True: a late line about a destroyed app must not bring its folder back
            self.path.parent.mkdir(exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return
        try:
            os.write(fd, data)
            if os.fstat(fd).st_size > self.max_bytes:
                self._rotate(fd)
        finally:
            os.close(fd)

    def _rotate(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # another writer may have rotated while we waited for the lock
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _files(self) -> list[Path]:
        old = self.path.with_name(self.path.name + ".1")
        return [p for p in (old, self.path) if p.exists()]

    def read(self, lines: int = 100, match: Callable[[str], bool] | None = None) -> list[str]:
        """The last `lines` lines (after filtering), oldest first."""
        found: list[str] = []
        for path in reversed(self._files()):
            with open(path, "rb") as fh:
                chunk = fh.read().decode("utf-8", "replace").splitlines(keepends=True)
            for line in reversed(chunk):
                if match is None or match(line):
                    found.append(line)
                    if len(found) >= lines:
                        return list(reversed(found))
        return list(reversed(found))

    def follow(self, match: Callable[[str], bool] | None = None, stop: Callable[[], bool] =
               lambda: False, poll: float = 0.1) -> Iterator[str]:
        """New lines as they are written, across rotation, until `stop()` is true."""
        handle = None
        inode = None
        pending = b""
        while not stop():
            if handle is None and self.path.exists():
                handle = open(self.path, "rb")
                inode = os.fstat(handle.fileno()).st_ino
                handle.seek(0, os.SEEK_END)
            data = handle.read() if handle else b""
            if data:
                pending += data
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace") + "\n"
                    if match is None or match(line):
                        yield line
                continue
            if handle and (not self.path.exists() or os.stat(self.path).st_ino != inode):
                handle.close()
                handle = None  # rotated: continue from the start of the new file
                if self.path.exists():
                    handle = open(self.path, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(poll)
        if handle:
            handle.close()


@dataclass(frozen=True)
class LogFilter:
    """`-p web`, `-d web.1`, `-s app|pushd`."""

    process_type: str | None = None
    dyno: str | None = None
    source: str | None = None

    def __call__(self, line: str) -> bool:
        match = LINE_RE.match(line)
        if match is None:
            return self.process_type is None and self.dyno is None and self.source is None
        _, source, dyno, _ = match.groups()
        if self.source and source != self.source:
            return False
        if self.dyno and dyno != self.dyno:
            return False
        return not (self.process_type and dyno.split(".")[0] != self.process_type)
