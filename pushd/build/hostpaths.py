"""Host folders as buildpacks (`/srv/bp`, `file:///srv/bp.git`): who may name one, and the
folder pinned for the build (its real path and identity), before the sandbox reads it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError


@dataclass(frozen=True)
class Buildpack:
    """A buildpack ready to copy into a build: where it lives and how it was asked for."""

    ref: str
    path: Path
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of a host folder, when named


@dataclass(frozen=True)
class HostPaths:
    """Which host folders (`/path`, `file://`) a push may name as a buildpack: any for admin
    keys; for user keys only folders under one of `allowed` (the operator's
    `allowed_buildpack_paths`). Checked on the real path, symlinks resolved."""

    admin: bool
    allowed: tuple[str, ...] = ()

    def permits(self, real: str) -> bool:
        if self.admin:
            return True
        for root in self.allowed:
            top = os.path.realpath(root)
            if real == top or real.startswith(top.rstrip("/") + "/"):
                return True
        return False


def host_path_of(ref: str) -> str | None:
    """The host folder a reference names (`/srv/bp`, `file:///srv/bp.git#v1`), else None."""
    if ref.startswith("/"):
        return ref
    if ref.startswith("file://"):
        return ref[len("file://"):].partition("#")[0] or "/"
    return None


def host_folder(policy: HostPaths, ref: str, path: str) -> Buildpack | None:
    """The folder `path` names, refused unless `policy` permits its real path. What it
    holds is read later, in the sandbox, as the app's uid, and only if it is still the
    same folder (`identity`): swapping it for a symlink meanwhile gains nothing. None if
    nothing is there (a pinned commit of a file:// buildpack may be in the cache)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = None
    if fd is None:
        if not policy.permits(os.path.normpath(path)):
            raise BuildError(refusal(ref), phase="detect")  # nor what exists there
        return None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not policy.permits(real):
        raise BuildError(refusal(ref), phase="detect")
    return Buildpack(ref, Path(real), (info.st_dev, info.st_ino))


def refusal(ref: str) -> str:
    return (f"Buildpack {ref} refused: a path on the platform's host is for admin keys and "
            "the operator's allowed_buildpack_paths only")
