"""A small real filesystem for a daemon's state dir: an ext4 image mounted with `mount -o
loop` (root only), filled on demand to provoke ENOSPC, freed again, removed afterwards."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

FILLER = ".disk-filler"


class SmallDisk:
    """`size_mb` of ext4 (no blocks reserved for root: root's writes fail like anyone's)
    mounted at `mount_point`, which must exist or be creatable and be unique to the test."""

    def __init__(self, image: Path, mount_point: Path, size_mb: int = 128) -> None:
        self.image, self.mount_point, self.size_mb = image, mount_point, size_mb

    def mount(self) -> None:
        with open(self.image, "wb") as fh:
            fh.truncate(self.size_mb * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E",
                        "lazy_itable_init=0,lazy_journal_init=0", str(self.image)],
                       check=True, capture_output=True)
        self.mount_point.mkdir(parents=True, exist_ok=True)
        # nodelalloc: blocks are taken when written, so a full disk fails the write() itself;
        # ext4's delayed allocation may accept a write on an almost full disk and lose it at
        # writeback ("Delayed block allocation failed ... Data will be lost"), which no
        # writer can count
        subprocess.run(["mount", "-o", "loop,nodelalloc", str(self.image), str(self.mount_point)],
                       check=True, capture_output=True)

    def unmount(self) -> None:
        for _ in range(20):  # a dying process may still hold a file for a moment
            done = subprocess.run(["umount", str(self.mount_point)], capture_output=True)
            if done.returncode == 0 or not os.path.ismount(self.mount_point):
                break
            subprocess.run(["sleep", "0.5"])
        else:
            subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)
        self.image.unlink(missing_ok=True)

    def free_mb(self) -> float:
        stat = os.statvfs(self.mount_point)
        return stat.f_bavail * stat.f_frsize / 1024 / 1024

    def fill(self, leave_kb: int = 0) -> None:
        """Take every free block (but `leave_kb`), so the next write that needs one fails."""
        path = self.mount_point / FILLER
        stat = os.statvfs(self.mount_point)
        size = max(0, stat.f_bavail * stat.f_frsize - leave_kb * 1024)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            try:
                if size:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, size)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
            if leave_kb == 0:  # blocks fallocate could not take in one piece
                chunk = b"\0" * 4096
                while True:
                    try:
                        os.write(fd, chunk)
                    except OSError as err:
                        if err.errno == errno.ENOSPC:
                            break
                        raise
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.mount_point / FILLER).unlink(missing_ok=True)
