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
SOURCE_DIR = "/buildpack-src"
COPY_DIR = "/buildpack"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
SMALL_FILE = 1024 * 1024  # the most of a tenant's file (Procfile, .buildpacks) root reads

# The commit's tree as files in /app, checked out by git in the sandbox (as `git checkout`
# would: not `git archive`, which honours export-ignore), then `.slugignore` (gitignore
# syntax; `!` lines dropped, as on Heroku) removes what it matches.
CHECKOUT_SCRIPT = r"""
set -eo pipefail
git() { command git -c safe.directory='*' --git-dir=/repo --work-tree=/app "$@"; }
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

COPY_SCRIPT = (
    'test -f /buildpack-src/bin/compile || '
    '{ echo "no bin/compile there that the app\'s user can read"; exit 2; }; '
    'exec cp -RP --preserve=mode,timestamps -- /buildpack-src/. /buildpack')


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


def copy_argv(identity: tuple[int, int] | None) -> list[str]:
    """Copy /buildpack-src into /buildpack; first make sure /buildpack-src is still the
    folder that was checked, when it is a host folder someone else may swap."""
    return same_folder_argv(SOURCE_DIR, identity, ["sh", "-c", COPY_SCRIPT])


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
