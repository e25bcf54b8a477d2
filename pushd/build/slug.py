"""Slug phase: compress the compiled app, enforce the size limit, and put the tarball and
the unpacked app (moved, not copied) in the app's slugs folder."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..appfiles import app_subdir
from ..errors import BuildError

# gzip -1: on slugs full of wheels and node_modules it is several times faster than the
# default -6 for a few percent more bytes; time to deploy matters more than disk.
GZIP_LEVEL = "-1"


@dataclass(frozen=True)
class SlugFiles:
    tarball: Path
    dir: Path
    size: int


def size_text(size: int) -> str:
    """Heroku's slug size shape: `4.2M`; under 100 KB in kilobytes (`12K`) rather than `0.0M`."""
    if size < 100 * 1024:
        return f"{max(1, round(size / 1024))}K"
    return f"{size / (1024 * 1024):.1f}M"


def compress(app_dir: Path, tarball: Path) -> int:
    """`./app/...` entries like a Heroku slug; tar and gzip run as two processes in a pipe."""
    tar_argv = ["tar", "-C", str(app_dir), "--numeric-owner", r"--transform=s,^\.,./app,S",
                "-cf", "-", "."]
    fd = os.open(tarball, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gzip = subprocess.run(["gzip", GZIP_LEVEL, "-c"], stdin=tar.stdout, stdout=fd,
                              stderr=subprocess.PIPE, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        if tar.wait() != 0 or gzip.returncode != 0:
            detail = (tar_err or gzip.stderr.decode(errors="replace")).strip().splitlines()
            raise BuildError(f"Could not compress the slug: {detail[-1] if detail else '?'}",
                             phase="slug")
    finally:
        os.close(fd)
    return tarball.stat().st_size


def make_slug(app_dir: Path, slugs_dir: Path, slug_id: str, limit_mb: int) -> SlugFiles:
    """Tarball + unpacked dir at slugs_dir/<slug_id>{.tgz,/}; on any failure neither exists.
    Raises BuildError(phase="slug") with Heroku's wording when the slug is too large."""
    app_subdir(slugs_dir, "slug")
    os.chmod(slugs_dir, 0o711)  # dynos run as the app uid and must reach <slug_id>/
    partial = slugs_dir / f".{slug_id}.tgz.partial"
    tarball = slugs_dir / f"{slug_id}.tgz"
    target = slugs_dir / slug_id
    try:
        size = compress(app_dir, partial)
        if size > limit_mb * 1024 * 1024:
            raise BuildError(
                f"Compiled slug size: {size_text(size)} is too large (max is {limit_mb}M).",
                phase="slug")
        os.rename(app_dir, target)  # same filesystem: a move, the slug is not copied
        os.chmod(target, 0o700)  # the app's uid (its owner) only: other apps read nothing
        os.rename(partial, tarball)
    except BaseException:
        partial.unlink(missing_ok=True)
        if target.exists() and not app_dir.exists():
            os.rename(target, app_dir)  # hand it back so the caller's cleanup removes it
        raise
    return SlugFiles(tarball, target, size)
