"""The state dir's filesystem running full: how much is free, which filesystem a path is on,
and turning the errors a full disk causes (ENOSPC, EDQUOT, SQLite's "database or disk is
full") into one line that says so and where, instead of "Internal error" or silence."""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .errors import DiskFull

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# a command that changes state refuses to begin with less than this free: it could not finish
MIN_FREE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Filesystem:
    device: str  # /dev/loop3
    mount_point: str  # where it is mounted
    free_bytes: int  # what an unprivileged writer may still use
    total_bytes: int

    @property
    def free_mb(self) -> float:
        return self.free_bytes / 1024 / 1024


def filesystem(path: Path) -> Filesystem:
    """The filesystem `path` (or its nearest existing parent) lives on."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    stat = os.statvfs(path)
    device, mount_point = _mount_of(path)
    return Filesystem(device, mount_point, stat.f_bavail * stat.f_frsize,
                      stat.f_blocks * stat.f_frsize)


def _mount_of(path: Path) -> tuple[str, str]:
    """(source device, mount point) of the mount holding `path`, from mountinfo: the
    longest mount point that contains it."""
    real = os.path.realpath(path)
    best = ("?", "/")
    try:
        with open("/proc/self/mountinfo") as fh:
            entries = fh.read().splitlines()
    except OSError:
        return best
    for entry in entries:
        fields, _, tail = entry.partition(" - ")
        parts, extra = fields.split(), tail.split()
        if len(parts) < 5 or len(extra) < 2:
            continue
        point = parts[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[1]):
            best = (extra[1], point)
    return best


def is_full(err: BaseException | None) -> bool:
    """Whether `err` (or what caused it) is a full disk or quota."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno in FULL_ERRNOS:
            return True
        if isinstance(err, sqlite3.OperationalError) and "disk is full" in str(err):
            return True
        if isinstance(err, DiskFull):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def _failed_path(err: BaseException | None) -> str | None:
    while err is not None:
        if isinstance(err, OSError) and err.filename:
            return os.fsdecode(err.filename)
        err = err.__cause__ or err.__context__
    return None


def disk_full(state_dir: Path, err: BaseException | None = None) -> DiskFull:
    """The one-line error for a full disk: the path that could not be written (else the state
    dir), the filesystem it is on and what is free there."""
    if isinstance(err, DiskFull):
        return err
    path = _failed_path(err) or str(state_dir)
    try:
        fs = filesystem(Path(path))
        where = f"{fs.device} mounted on {fs.mount_point}, {fs.free_mb:.1f} MB free"
    except OSError:
        where = "filesystem unknown"
    return DiskFull(f"No space left on device: could not write {path} ({where}); "
                    "nothing was changed")


# how child processes (build steps) word a failed write: git frees what it could not finish,
# so by the time the step has failed the filesystem may have room again
FULL_WORDS = ("No space left on device", "Disk quota exceeded", "unable to write file")


def full_at(path: Path | None, said: str = "") -> DiskFull | None:
    """A DiskFull naming `path` if its filesystem is full now, or if a child process that
    wrote there failed saying so in its own words (`said`)."""
    if path is None:
        return None
    try:
        fs = filesystem(path)
    except OSError:
        return None
    if fs.free_bytes >= MIN_FREE_BYTES and not any(word in said for word in FULL_WORDS):
        return None
    return DiskFull(f"No space left on device: could not write {path} ({fs.device} mounted "
                    f"on {fs.mount_point}, {fs.free_mb:.1f} MB free); nothing was changed")


def require_space(state_dir: Path, needed: int = MIN_FREE_BYTES) -> None:
    """Refuse (DiskFull) to begin a change the state dir's filesystem has no room for."""
    fs = filesystem(state_dir)
    if fs.free_bytes < needed:
        raise DiskFull(f"No space left on device: the state dir {state_dir} ({fs.device} "
                       f"mounted on {fs.mount_point}) has {fs.free_mb:.1f} MB free; "
                       "nothing was changed")


def status_line(state_dir: Path, warn_mb: int) -> str:
    """`pushd status`: free space of the state dir's filesystem, with a warning under
    `warn_mb`."""
    fs = filesystem(state_dir)
    line = (f"{fs.free_mb:.0f} MB free of {fs.total_bytes / 1024 / 1024:.0f} MB "
            f"({fs.device} on {fs.mount_point})")
    if fs.free_mb < warn_mb:
        line += (f"  WARNING: below disk_warn_mb ({warn_mb} MB): logs are dropped and "
                 "pushes and changes fail when it is full")
    return line
