"""A container dyno's output into its app's log (`app[web.1]: ...`), from the engine's own
log of the container.

The engine keeps every line a container prints, with a nanosecond timestamp, whether or not
anyone reads it: one follower thread per container copies them into the AppLog, each line
stamped with the time the engine gave it. How far it got (the timestamp of the last line
copied, and how many lines bore exactly that timestamp) is kept in a small cursor file per
dyno, rewritten in place after every line; a follower started later (by a restarted daemon)
resumes there: what was printed while the daemon was down arrives, nothing twice.

One collector per container across processes: a follower holds an exclusive `flock` on the
cursor file for its whole life, and another (a second thread, a CLI process) that cannot take
it leaves the container alone. Once the container has exited and its output is all copied,
the cursor says `done` and nobody follows it again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...logs import AppLog, format_line
from .client import nanoseconds

log = logging.getLogger("pushd.docker.logs")
CURSOR_WIDTH = 64  # one fixed-size record, rewritten in place (the lock is on this inode)


@dataclass
class Cursor:
    ns: int = 0  # engine timestamp of the last frame copied
    same: int = 0  # frames copied that bore exactly `ns`
    done: bool = False  # the container exited and everything it printed is copied

    def encode(self) -> bytes:
        return f"{self.ns} {self.same} {int(self.done)}\n".encode().ljust(CURSOR_WIDTH)

    @classmethod
    def decode(cls, data: bytes) -> Cursor:
        try:
            ns, same, done = data.split()[:3]
            return cls(int(ns), int(same), done == b"1")
        except ValueError:
            return cls()


def read_cursor(path: Path) -> Cursor:
    try:
        return Cursor.decode(path.read_bytes())
    except OSError:
        return Cursor()


class Follower(threading.Thread):
    """Copies one container's output into `log` as `app[dyno]` lines until it ends."""

    def __init__(self, api: Any, container_id: str, dyno: str, log_file: AppLog,
                 cursor_path: Path, exited: Callable[[], bool]) -> None:
        super().__init__(name=f"logs-{dyno}", daemon=True)
        self.api, self.container_id, self.dyno = api, container_id, dyno
        self.log, self.cursor_path, self.exited = log_file, cursor_path, exited
        self.fd: int | None = None

    def claim(self) -> bool:
        """Take the cursor's lock; False when another collector holds it."""
        fd = os.open(self.cursor_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self.fd = fd
        return True

    def run(self) -> None:
        try:
            self._copy()
        except Exception as err:  # the engine went away, the container was removed meanwhile
            log.debug("log follower of %s ended: %s", self.dyno, err)
        finally:
            if self.fd is not None:
                os.close(self.fd)

    def _save(self, cursor: Cursor) -> None:
        os.pwrite(self.fd, cursor.encode(), 0)

    def _copy(self) -> None:
        cursor = Cursor.decode(os.pread(self.fd, CURSOR_WIDTH, 0))
        if cursor.done:
            return
        self.cursor, self.seen, self.pending = cursor, Cursor(cursor.ns, cursor.same), ""
        self._pass(follow=True)
        if not self.exited():
            return  # the engine went away: a later follower resumes at the cursor
        # the follow stream may end before the engine has stored the last partial line
        self.cursor = Cursor(self.seen.ns, self.seen.same)  # skip what is copied or pending
        self._pass(follow=False)
        if self.pending:  # an unfinished last line, ended by the container's exit
            self._write(self.pending, self.seen.ns)
        self._save(Cursor(self.seen.ns, self.seen.same, done=True))

    def _pass(self, follow: bool) -> None:
        """Copy the frames after the cursor; whole lines are written and move it."""
        since = max(self.cursor.ns / 1e9 - 0.001, 0.0)
        skip_same = self.cursor.same  # frames at exactly cursor.ns already seen
        stream = self.api.logs(self.container_id, stdout=True, stderr=True, stream=True,
                               follow=follow, timestamps=True, since=since or None)
        try:
            for frame in stream:
                stamp, _, text = frame.decode("utf-8", "replace").partition(" ")
                try:
                    ns = nanoseconds(stamp)
                except ValueError:
                    continue
                if ns < self.cursor.ns:
                    continue
                if ns == self.cursor.ns and skip_same > 0:
                    skip_same -= 1
                    continue
                self.seen = Cursor(ns, self.seen.same + 1 if ns == self.seen.ns else 1)
                self.pending += text
                if self.pending.endswith("\n"):  # a whole line (the engine splits long ones)
                    self._write(self.pending, ns)
                    self.pending = ""
                    self._save(self.seen)
        except Exception as err:  # the stream may end with an error once the container is gone
            log.debug("log stream of %s ended: %s", self.dyno, err)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    def _write(self, text: str, ns: int) -> None:
        self.log.write_lines([format_line("app", self.dyno, text, now=ns / 1e9)])


class Collectors:
    """The followers this process runs, by dyno id."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._followers: dict[str, Follower] = {}

    def ensure(self, dyno_id: str, container_id: str, dyno: str, log_file: AppLog,
               cursor_path: Path, exited: Callable[[], bool]) -> None:
        """Follow this container unless someone does already or it is all copied."""
        with self._lock:
            current = self._followers.get(dyno_id)
            if current is not None and current.is_alive():
                return
            if read_cursor(cursor_path).done:
                return
            follower = Follower(self.api, container_id, dyno, log_file, cursor_path, exited)
            with contextlib.suppress(OSError):
                if follower.claim():
                    self._followers[dyno_id] = follower
                    follower.start()

    def drain(self, dyno_id: str, timeout: float) -> None:
        """Wait (up to `timeout`) for this container's follower to copy its last lines."""
        with self._lock:
            follower = self._followers.get(dyno_id)
        if follower is not None:
            follower.join(timeout)

    def following(self, dyno_id: str) -> bool:
        with self._lock:
            follower = self._followers.get(dyno_id)
        return follower is not None and follower.is_alive()

    def forget(self, dyno_id: str) -> None:
        with self._lock:
            self._followers.pop(dyno_id, None)
