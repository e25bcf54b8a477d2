"""Per-app log: dyno output and platform events in Heroku's line format, one file per app,
bounded in size (rotated once to app.log.1), kept across deploys and restarts.

Every writer (dyno shims, the daemon, one-off commands) appends whole lines with O_APPEND, so
lines from several processes never interleave mid-line. A full disk never stops a writer: the
lines it cannot write are dropped and counted, and the first write that succeeds again starts
with `-- N lines dropped: No space left on device --`. A record is one line: its newline is
its only control character. What an app prints is escaped (`escape`) on the way in, so it can
neither start a line of its own (a forged `pushd[...]` line) nor reach a terminal as an escape
sequence; readers split at newlines alone and escape again on the way out (`display`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import re
import threading
import time
from collections import deque
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


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def timestamp(now: float | None = None) -> str:
    """`2026-11-26T07:36:25.123456+00:00` (UTC); the date and time of a second are formatted
    once (router lines come thousands a second)."""
    global _second
    now = time.time() if now is None else now
    second = int(now // 1)
    micros = int(round((now - second) * 1_000_000))
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached, text = _second  # one read of one tuple: threads never see half an update
    if cached != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, text)
    return f"{text}.{micros:06d}+00:00"


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


# what a writer may meet on a full filesystem (or a full quota): lines are dropped, not fatal
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FOLLOW_KEEP = 3  # rotated files a follower holds open before it drops the oldest unread one


class AppLog:
    _shared: dict[Path, AppLog] = {}
    _shared_lock = threading.Lock()

    def __init__(self, path: Path, max_bytes: int = 5 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.dropped = 0  # lines not written since the last marker, for lack of space
        self.dropped_dyno = "log"
        self.dropped_reason = ""
        self.torn = False  # a write stopped mid-line: the next one first ends that line
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, path: Path, max_bytes: int) -> AppLog:
        """This process's one writer of `path`, so that lines dropped on a full disk by any
        of its threads are counted together and told once space is back."""
        with cls._shared_lock:
            log = cls._shared.get(Path(path))
            if log is None or log.max_bytes != max_bytes:
                log = cls._shared[Path(path)] = cls(path, max_bytes)
            return log

    def write(self, source: str, dyno: str, message: str) -> None:
        self.write_lines([format_line(source, dyno, message)])

    def write_lines(self, lines: list[str]) -> None:
        """Append whole lines. On a full disk the lines are counted and dropped (never an
        error: a dyno that prints must keep running); the next write that succeeds starts with
        the marker saying how many were lost."""
        if not lines:
            return
        with self._lock:
            self._write_lines(lines)

    def _write_lines(self, lines: list[str]) -> None:
        try:
            # never parents=True: a late line about a destroyed app must not bring its folder back
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno not in FULL_ERRNOS:
                raise
            self._drop(lines, 0, err)
            return
        try:
            if self.dropped and not self._write_marker(fd):
                self._drop(lines, 0, None)
                return
            data = "".join(lines).encode("utf-8", "replace")
            written, err = _write_all(fd, data)
            if err is not None:
                self._drop(lines, written, err)
            if os.fstat(fd).st_size > self.max_bytes:
                self._rotate(fd)
        finally:
            os.close(fd)

    def _write_marker(self, fd: int) -> bool:
        """The line saying how many lines were lost, once space is back (True if written)."""
        text = f"-- {self.dropped} lines dropped: {self.dropped_reason} --"
        data = ("\n" if self.torn else "") + format_line("pushd", self.dropped_dyno, text)
        written, err = _write_all(fd, data.encode())
        if err is not None:
            self.torn = self.torn or 0 < written
            return False
        self.dropped, self.torn = 0, False
        return True

    def _drop(self, lines: list[str], written: int, err: OSError | None) -> None:
        """Count the lines not (wholly) written: the first `written` bytes of them were."""
        if err is not None:
            self.dropped_reason = os.strerror(err.errno or errno.ENOSPC)
        kept = 0
        for line in lines:
            size = len(line.encode("utf-8", "replace"))
            if size > written:
                break
            written -= size
            kept += 1
        self.torn = self.torn or written > 0
        if self.dropped == 0 and kept < len(lines):
            match = LINE_RE.match(lines[kept])
            self.dropped_dyno = match.group(3) if match else "log"
        self.dropped += len(lines) - kept

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

    def follow(self, match: Callable[[str], bool] | None = None, stop: Callable[[], bool] =
               lambda: False, poll: float = 0.1, since: LogPosition | None = None,
               caught_up: bool = False) -> Iterator[str]:
        """Lines written after `since` (default: from now on), across rotation, until
        `stop()` is true. A watcher opens every file the log rotates through as soon as it
        appears, and each is read to its end before the next, so a slow reader (a blocked
        ssh channel) loses nothing; more than FOLLOW_KEEP files behind, the oldest waiting
        one is skipped and the reader sees `-- N lines dropped: ... --` where it was.
        With `caught_up`, an empty string each time it has read all there is (before it
        waits): the moment to flush what the reader batched."""
        files = _FollowedFiles(self.path, since if since is not None else self.end())
        pending = b""
        try:
            while not stop():
                current = files.current()
                if current is None:
                    if caught_up:
                        yield ""
                    time.sleep(poll)
                    continue
                data = current.read(1 << 18)
                finished = not data and files.has_newer()
                if finished:  # a writer that opened it before it rotated may just have added one
                    data = current.read() + (b"\n" if pending else b"")
                if data:
                    *complete, pending = (pending + data).split(b"\n")
                    for raw in complete:
                        line = raw.decode("utf-8", "replace") + "\n"
                        if match is None or match(line):
                            yield line
                if finished:
                    skipped = files.finish()
                    if skipped:
                        yield f"-- {skipped} lines dropped: this reader fell behind the log --\n"
                elif not data:
                    if caught_up:
                        yield ""
                    time.sleep(poll)
        finally:
            files.close()


class _FollowedFiles:
    """The log files a follower has still to read, oldest first. A watcher thread opens each
    as soon as it appears (as app.log, or as app.log.1 after a quick rotation), whatever the
    reader is doing, so a rotation loses no file; it keeps at most FOLLOW_KEEP waiting, and
    skips (counting their lines) the oldest beyond that, so a stalled reader holds bounded
    space. A file is known by its inode, and every file seen stays open while it is still
    app.log or app.log.1: a deleted file's inode is soon given to a new one, which must not be
    taken for a file already read."""

    def __init__(self, path: Path, since: LogPosition, keep: int = FOLLOW_KEEP,
                 every: float = 0.02) -> None:
        self.paths = (path.with_name(path.name + ".1"), path)  # older first
        self.keep = keep
        self.open: deque[tuple[int, BinaryIO]] = deque()  # to read, oldest first
        self.done_with: list[tuple[int, BinaryIO]] = []  # read or skipped, still in place
        self.skipped = 0  # lines in waiting files skipped since the current one was opened
        self.lock = threading.Lock()
        self.done = threading.Event()
        if since.inode is not None:
            for candidate in self.paths:
                handle = _open_inode(candidate, since.inode)
                if handle is not None:
                    handle.seek(since.offset)
                    self.open.append((since.inode, handle))
                    break  # if it rotated away meanwhile: what comes next is followed
        older, newest = (_inode(candidate) for candidate in self.paths)
        if older is not None and since.inode in (None, newest):
            handle = _open_inode(self.paths[0], older)  # lines before the position: not ours
            if handle is not None:
                self.done_with.append((older, handle))
        self.discover()
        self.watcher = threading.Thread(target=self._watch, args=(every,), daemon=True,
                                        name="log-follow")
        self.watcher.start()

    def _watch(self, every: float) -> None:
        while not self.done.wait(every):
            self.discover()

    def discover(self) -> None:
        """Open the files not seen before (app.log.1 before app.log: it is the older)."""
        with self.lock:
            if self.done.is_set():
                return
            present = [_inode(candidate) for candidate in self.paths]
            still = [entry for entry in self.done_with if entry[0] in present]
            for entry in self.done_with:
                if entry not in still:
                    entry[1].close()
            self.done_with = still
            known = {inode for inode, _ in (*self.open, *self.done_with)}
            for candidate, inode in zip(self.paths, present, strict=True):
                if inode is None or inode in known:
                    continue
                handle = _open_inode(candidate, inode)
                if handle is not None:
                    self.open.append((inode, handle))
                    known.add(inode)
            while len(self.open) > self.keep + 1:  # the one being read stays
                inode, handle = self.open[1]
                del self.open[1]
                while chunk := handle.read(1 << 20):
                    self.skipped += chunk.count(b"\n")
                self.done_with.append((inode, handle))

    def current(self) -> BinaryIO | None:
        with self.lock:
            return self.open[0][1] if self.open else None

    def has_newer(self) -> bool:
        with self.lock:
            return len(self.open) > 1

    def finish(self) -> int:
        """Done with the current file: the lines skipped after it, to report."""
        with self.lock:
            self.done_with.append(self.open.popleft())
            skipped, self.skipped = self.skipped, 0
            return skipped

    def close(self) -> None:
        with self.lock:
            self.done.set()
            for _, handle in (*self.open, *self.done_with):
                handle.close()
            self.open.clear()
            self.done_with.clear()


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _open_inode(path: Path, inode: int) -> BinaryIO | None:
    """`path` opened if it still is the file `inode` (a rotation may have moved it)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    if os.fstat(handle.fileno()).st_ino != inode:
        handle.close()
        return None
    return handle


def _write_all(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """Write all of `data`; on a full disk, how much was written and the error."""
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
        except OSError as err:
            if err.errno not in FULL_ERRNOS:
                raise
            return done, err
    return done, None


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
