"""The commands of the build steps that handle a push's files before the buildpacks run:
checkout of the pushed commit and the copy of each buildpack. Both run in the build's
sandbox as the app's uid (never as root on a tenant's files): builders of argv only.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from ..errors import BuildError

REPO_DIR = "/repo"
SOURCE_DIR = "/buildpack-src"  # /N: the buildpacks to copy, read-only
COPY_DIR = "/buildpack"  # /N: their copies
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
SMALL_FILE = 1024 * 1024  # the most of a tenant's file (Procfile, .buildpacks) root reads

# The commit's tree as files in /app, checked out by git in the sandbox (as `git checkout`
# would: not `git archive`, which honours export-ignore), then `.slugignore` (gitignore
# syntax; `!` lines dropped, as on Heroku) removes what it matches.
CHECKOUT_SCRIPT = r"""
set -eo pipefail
# big files streamed and packs mapped 1 MB at a time: a checkout of 200 MB of files takes
# ~20 MB of memory, not the pack's size (gitserver/intake.py BOUNDED)
git() { command git -c safe.directory='*' -c core.bigFileThreshold=1m \
  -c core.packedGitWindowSize=1m -c core.packedGitLimit=16m --git-dir=/repo --work-tree=/app "$@"; }
export GIT_INDEX_FILE=/tmp/index
git read-tree "$1"
git checkout-index --all --force
cd /app
if [ -f .slugignore ] && [ ! -L .slugignore ]; then
  grep -v '^!' .slugignore > /tmp/slugignore || true
  GIT_INDEX_FILE=/tmp/none git ls-files -z --others --ignored --directory \
    --exclude-from=/tmp/slugignore | xargs -0 -r rm -rf --
fi
"""

# Each buildpack ("N" or "N:dev:inode" for a host folder someone else may swap) from
# /buildpack-src/N into /buildpack/N; a host folder only if it is still the one checked. On
# a failure the last line is "N: why".
COPY_SCRIPT = r"""
for pack in "$@"; do
  n=${pack%%:*}; want=${pack#*:}; src=/buildpack-src/$n
  if [ "$want" != "$pack" ] && [ "$(stat -c %d:%i -- "$src" 2>/dev/null)" != "$want" ]; then
    echo "$n: the buildpack folder changed while it was read"; exit 1
  fi
  if [ ! -f "$src/bin/compile" ]; then
    echo "$n: no bin/compile there that the app's user can read"; exit 1
  fi
  cp -RP --preserve=mode,timestamps -- "$src/." "/buildpack/$n" 2>&1 || {
    echo "$n: could not be copied"; exit 1; }
done
"""


# Go on only if the folder at $1 is still the one checked ($2, "dev:inode"): a host folder
# swapped for a symlink between the check and the sandbox's bind is refused.
SAME_FOLDER = ('[ "$(stat -c %d:%i -- "$1" 2>/dev/null)" = "$2" ] || '
               '{ echo "fatal: the buildpack folder changed while it was read"; exit 1; }; '
               'shift 2; exec "$@"')


def same_folder_argv(path: str, identity: tuple[int, int] | None,
                     argv: Sequence[str]) -> list[str]:
    if identity is None:
        return list(argv)
    return ["sh", "-c", SAME_FOLDER, "pushd-same", path, f"{identity[0]}:{identity[1]}",
            *argv]


def checkout_argv(commit: str) -> list[str]:
    if not SHA_RE.match(commit):
        raise BuildError(f"Commit {commit[:40]} not found in the app's repository",
                         phase="fetch")
    return ["bash", "-c", CHECKOUT_SCRIPT, "pushd-checkout", commit]


def copy_argv(identities: Sequence[tuple[int, int] | None]) -> list[str]:
    """Copy every /buildpack-src/N into /buildpack/N in one step; first make sure a host
    folder is still the folder that was checked (its identity)."""
    packs = [f"{n}:{i[0]}:{i[1]}" if i else str(n) for n, i in enumerate(identities)]
    return ["sh", "-c", COPY_SCRIPT, "pushd-copy", *packs]


def read_small(path: Path, phase: str = "release") -> str | None:
    """A tenant's file read by root: only a regular file (never through a symlink, never a
    FIFO), at most SMALL_FILE bytes. None if it is not there or not a plain file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, SMALL_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > SMALL_FILE:
        raise BuildError(f"{path.name} is larger than {SMALL_FILE // 1024} KB", phase=phase)
    return data.decode("utf-8", "replace")
