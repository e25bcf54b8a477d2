"""An app's build cache as a filesystem of its own: an ext4 image of `build_cache_mb`
(`apps/<id>/cache.img`, sparse) loop-mounted into the build's folder for the length of the
build. A build that fills it gets ENOSPC inside the cache; the host's disk never fills up.

Where loop mounts are refused (no loop devices), the cache is a plain folder measured after
each build and emptied, with a warning, once it is over the size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import BuildError
from .base import Output

MKFS = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def unmount(mountpoint: Path) -> None:
    """Detach a cache mounted at `mountpoint` (a build's or a crashed build's)."""
    if os.path.ismount(mountpoint):
        if _run(["umount", str(mountpoint)]).returncode != 0:
            _run(["umount", "-l", str(mountpoint)])


def tree_size(root: Path) -> int:
    """Bytes in use below root, symlinks not followed (run after the build: nothing moves)."""
    total = 0
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


class BuildCache:
    """The cache of one app for one build: `open` gives the folder to bind at /cache."""

    def __init__(self, app_dir: Path, size_mb: int, uid: int) -> None:
        self.image = app_dir / "cache.img"
        self.folder = app_dir / "cache"  # the fallback (and the layout before images)
        self.size = size_mb * 1024 * 1024
        self.uid = uid
        self.mountpoint: Path | None = None
        self.plain = False  # the fallback folder is in use

    def open(self, mountpoint: Path, out: Output) -> Path:
        """Mount the image at `mountpoint` (made here), creating or resizing it first."""
        try:
            fresh = self._prepare_image(out)
            mountpoint.mkdir(mode=0o700)
            mounted = _run(["mount", "-o", "loop,nosuid,nodev", str(self.image),
                            str(mountpoint)])
            if mounted.returncode != 0 and not fresh:  # damaged (a crash mid-build): anew
                self.image.unlink()
                self._prepare_image(out)
                mounted = _run(["mount", "-o", "loop,nosuid,nodev", str(self.image),
                                str(mountpoint)])
            if mounted.returncode != 0:
                raise OSError(mounted.stderr.strip())
        except (OSError, subprocess.SubprocessError) as err:
            unmount(mountpoint)
            shutil.rmtree(mountpoint, ignore_errors=True)
            out(f" !     Warning: the build cache is not size-limited here ({err}); it is "
                "emptied when it grows past its size\n")
            return self._plain_folder()
        self.mountpoint = mountpoint
        os.chown(mountpoint, self.uid, self.uid)
        os.chmod(mountpoint, 0o700)
        lost = mountpoint / "lost+found"
        if lost.is_dir() and not lost.is_symlink():
            shutil.rmtree(lost, ignore_errors=True)
        if self.folder.is_dir():  # the cache of an earlier pushd: not carried over
            shutil.rmtree(self.folder, ignore_errors=True)
        return mountpoint

    def close(self, out: Output) -> None:
        if self.mountpoint is not None:
            unmount(self.mountpoint)
            self.mountpoint = None
        elif self.plain and tree_size(self.folder) > self.size:
            out(f" !     Warning: the build cache grew past {self.size // (1024 * 1024)} MB "
                "and was emptied\n")
            shutil.rmtree(self.folder, ignore_errors=True)

    def _prepare_image(self, out: Output) -> bool:
        """True if the image was made now (empty)."""
        if self.image.is_file() and self.image.stat().st_size == self.size:
            return False
        if self.image.exists():
            out(f"-----> Build cache size is now {self.size // (1024 * 1024)} MB; starting "
                "with an empty cache\n")
        partial = self.image.with_name(".cache.img.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, self.size)  # sparse: blocks are used as the cache fills
        finally:
            os.close(fd)
        made = _run([*MKFS, "-E", f"root_owner={self.uid}:{self.uid}", str(partial)])
        if made.returncode != 0:
            partial.unlink(missing_ok=True)
            raise OSError(made.stderr.strip() or "mkfs.ext4 failed")
        os.rename(partial, self.image)
        return True

    def _plain_folder(self) -> Path:
        try:
            self.folder.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise BuildError("The app was destroyed during the build", phase="fetch") from None
        os.chown(self.folder, self.uid, self.uid)
        os.chmod(self.folder, 0o700)
        self.plain = True
        return self.folder
