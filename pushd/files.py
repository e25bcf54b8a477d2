"""Replacing a small file whole: readers see the old or the new text, never half of one;
a lock held across threads and processes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o600, sync: bool = False) -> None:
    """Write `text` beside `path` (created with `mode`, root-only by default: specs and
    failure records hold config and output) and rename it over `path`. `sync` for state a
    crash must not lose; hints and snapshots rewritten often skip the fsync."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow (or a stale tmp widen) it
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: `path` keeps its old text, and no half tmp stays
        tmp.unlink(missing_ok=True)
        raise


class FileLock:
    """A lock that holds across threads and processes: a thread lock, then `flock` on a file
    (read-modify-write of state files that a daemon and its launcher processes both write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.Lock()
        self._fd = -1

    def __enter__(self) -> FileLock:
        self._thread.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._thread.release()
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, -1
        os.close(fd)  # releases the flock
        self._thread.release()
