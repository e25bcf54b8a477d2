"""Slug phase: compress the compiled app, enforce the size limit, and put the tarball and
the unpacked app (moved, not copied) in the app's slugs folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..appfiles import app_subdir
from ..errors import BuildError
from .process import run_to_file

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


# `./app/...` entries like a Heroku slug. --sparse: a file of holes (a 100 GB `truncate`)
# is stored as its data map, read in moments, instead of 100 GB of zeros.
SLUG_SCRIPT = ('set -o pipefail; tar -C "$1" --sparse --numeric-owner '
               r'--transform="s,^\.,./app,S" -cf - . | gzip ' + GZIP_LEVEL + " -c")

# (argv, fd to write the tarball to, byte limit) -> (exit status or -1 past the limit, bytes)
Compressor = Callable[[Sequence[str], int, int], tuple[int, int]]


def slug_argv(app_root: str) -> list[str]:
    return ["bash", "-c", SLUG_SCRIPT, "pushd-slug", app_root]


def _local(argv: Sequence[str], fd: int, limit: int) -> tuple[int, int]:
    lines: list[str] = []
    status, size = run_to_file(argv, fd, limit, lines.append, time.monotonic() + 600, "slug")
    if status > 0:
        raise BuildError(f"Could not compress the slug: {(lines or ['?'])[-1].strip()}",
                         phase="slug")
    return status, size


def make_slug(app_dir: Path, slugs_dir: Path, slug_id: str, limit_mb: int,
              compress: Compressor | None = None, app_root: str | None = None) -> SlugFiles:
    """Tarball + unpacked dir at slugs_dir/<slug_id>{.tgz,/}; on any failure neither exists.
    Raises BuildError(phase="slug") with Heroku's wording when the slug is too large.

    `compress` runs the tar in the build's sandbox (where the app is at `app_root`); the
    tarball is written as it streams and the build stops at the limit."""
    app_subdir(slugs_dir, "slug")
    os.chmod(slugs_dir, 0o711)  # dynos run as the app uid and must reach <slug_id>/
    partial = slugs_dir / f".{slug_id}.tgz.partial"
    tarball = slugs_dir / f"{slug_id}.tgz"
    target = slugs_dir / slug_id
    try:
        run = compress or _local
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            status, size = run(slug_argv(app_root or str(app_dir)), fd, limit_mb * 1024 * 1024)
        finally:
            os.close(fd)
        if status < 0:
            raise BuildError(f"Compiled slug size: more than {limit_mb}M is too large "
                             f"(max is {limit_mb}M).", phase="slug")
        if status > 0:
            raise BuildError(f"Could not compress the slug (status {status})", phase="slug")
        os.rename(app_dir, target)  # same filesystem: a move, the slug is not copied
        os.chmod(target, 0o700)  # the app's uid (its owner) only: other apps read nothing
        os.rename(partial, tarball)
    except BaseException:
        partial.unlink(missing_ok=True)
        if target.exists() and not app_dir.exists():
            os.rename(target, app_dir)  # hand it back so the caller's cleanup removes it
        raise
    return SlugFiles(tarball, target, size)
