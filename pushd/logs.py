"""Per-app log: dyno output and platform events in Heroku's line format, one file per app,
bounded in size (rotated once to app.log.1), kept across deploys and restarts.

Every writer (dyno shims, the daemon, one-off commands) appends whole lines with O_APPEND, so
lines from several processes never interleave mid-line. A record is one line: its newline is
its only control character. What an app prints is escaped (`escape`) on the way in, so it can
neither start a line of its own (a forged `pushd[...]` line) nor reach a terminal as an escape
sequence; readers split at newlines alone and escape again on the way out (`display`).
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
from typing import BinaryIO

LINE_RE = re.compile(r"^(\S+) (app|pushd)\[([^\]]+)\]: ?(.*)$")
# C0 controls but tab, DEL, C1 controls (0x85 is a line break to str.splitlines; 0x9b is a CSI),
# the Unicode line and paragraph separators and the bidi controls: everything that ends a line
# for some reader, that a terminal acts on, or that shows a line's text in another order
UNSAFE_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e"
                       "\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every control character and line separator shown as `\\x1b`, `\\u2028`."""
    return UNSAFE_RE.sub(_escaped, text)


def display(line: str) -> str:
    """A log line as it may reach a terminal: escaped, with its own newline kept."""
    return escape(line.removesuffix("\n")) + "\n"


def timestamp(now: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return moment.isoformat(timespec="microseconds")


def format_line(source: str, dyno: str, message: str, now: float | None = None) -> str:
    """`2026-11-26T07:36:25.123456+00:00 app[web.1]: message`"""
    clean = escape(message.rstrip("\r\n").replace("\n", " "))
    return f"{timestamp(now)} {source}[{dyno}]: {clean}\n"


@dataclass(frozen=True)
class LogPosition:
    """Where a reader stopped in the log: the file (by inode; None if there was none yet) and
    the byte offset in it."""

    inode: int | None
    offset: int


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
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
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

    def read(self, lines: int = 100, match: Callable[[str], bool] | None = None) -> list[str]:
        """The last `lines` lines (after filtering), oldest first."""
        return self.tail(lines, match)[0]

    def tail(self, lines: int = 100, match: Callable[[str], bool] | None = None
             ) -> tuple[list[str], LogPosition]:
        """The last `lines` lines (after filtering), oldest first, and where they end: hand
        that position to `follow()` so that nothing written in between is lost. app.log.1
        (up to max_bytes) is read only when app.log alone has too few lines."""
        position = LogPosition(None, 0)
        found: list[str] = []  # newest first
        current = _complete_lines(self.path)
        if current is not None:
            data, inode = current
            position = LogPosition(inode, len(data))
            _take_newest(data, lines, match, found)
        if len(found) < lines:
            older = _complete_lines(self.path.with_name(self.path.name + ".1"))
            # if app.log rotated after we read it, the older file is the one we just read
            if older is not None and older[1] != position.inode:
                _take_newest(older[0], lines, match, found)
        return list(reversed(found)), position

    def end(self) -> LogPosition:
        """The current end of the log: following from here shows only new lines."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return LogPosition(None, 0)
        return LogPosition(stat.st_ino, stat.st_size)

    def _open_at(self, position: LogPosition) -> BinaryIO | None:
        """The file `position` points into (app.log, or app.log.1 if it rotated since),
        positioned there; else the current file from its start, or None if there is none."""
        if position.inode is not None:
            for path in (self.path, self.path.with_name(self.path.name + ".1")):
                try:
                    handle = open(path, "rb")
                except FileNotFoundError:
                    continue
                if os.fstat(handle.fileno()).st_ino == position.inode:
                    handle.seek(position.offset)
                    return handle
                handle.close()
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            return None

    def follow(self, match: Callable[[str], bool] | None = None, stop: Callable[[], bool] =
               lambda: False, poll: float = 0.1, since: LogPosition | None = None
               ) -> Iterator[str]:
        """Lines written after `since` (default: from now on), across rotation, until
        `stop()` is true."""
        position = since if since is not None else self.end()
        handle = None
        pending = b""
        try:
            while not stop():
                if handle is None:
                    handle = self._open_at(position)
                    if handle is None:
                        time.sleep(poll)
                        continue
                data = handle.read()
                rotated = not data and self._rotated(handle)
                if rotated:  # a writer that opened the old file may just have added a line
                    data = handle.read()
                    handle.close()
                    handle, position = None, LogPosition(None, 0)  # the new file, from its start
                if data:
                    *complete, pending = (pending + data).split(b"\n")
                    for raw in complete:
                        line = raw.decode("utf-8", "replace") + "\n"
                        if match is None or match(line):
                            yield line
                elif not rotated:
                    time.sleep(poll)
        finally:
            if handle:
                handle.close()

    def _rotated(self, handle: BinaryIO) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return True


def _complete_lines(path: Path) -> tuple[bytes, int] | None:
    """The file's whole lines (a line being written is follow()'s) and its inode; None if it
    does not exist (or was rotated away meanwhile)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
            inode = os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return None
    return data[:data.rfind(b"\n") + 1], inode


def _take_newest(data: bytes, lines: int, match: Callable[[str], bool] | None,
                 found: list[str]) -> None:
    """Append to `found` (newest first) the last lines of `data` that match, up to `lines`."""
    # "\n" alone ends a line (never str.splitlines, which breaks at \r, \x1e, U+2028 too)
    for text in reversed(data.decode("utf-8", "replace").split("\n")[:-1]):
        line = text + "\n"
        if len(found) >= lines:
            return
        if match is None or match(line):
            found.append(line)


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
