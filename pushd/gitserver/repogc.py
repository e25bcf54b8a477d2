"""What a push leaves in an app's repo: the packs of a push that moved no ref (rejected,
failed, cut off) and dulwich's temporary packs are removed at once; after a deploy,
unreachable objects (force-pushed history, rejected pushes of other days) are pruned by
`git gc` in a bounded child process.

Why git and not dulwich: dulwich's gc repacks in the daemon's own memory (a 200 MB repo
costs hundreds of MB there); git streams. The repo's objects and refs come from tenants, but
its config, hooks and layout are pushd's (nothing in a push can write them), and git runs
with no system or global config, hooks disabled and no fsmonitor, so it runs no tenant code;
it only parses objects, which `git` is hardened to do."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from .intake import BOUNDED

log = logging.getLogger("pushd.gc")
GC_TIMEOUT = 600.0
HARDENING = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
             "-c", "gc.auto=0", "-c", "gc.pruneExpire=now", "-c", "gc.reflogExpire=now",
             "-c", "gc.reflogExpireUnreachable=now", "-c", "core.sharedRepository=false")


def snapshot(repo: Path) -> set[str]:
    """The pack files and temporary packs in the repo now."""
    objects = repo / "objects"
    found = set()
    for folder in (objects, objects / "pack"):
        try:
            found.update(str(folder / name) for name in os.listdir(folder)
                         if name.startswith(("tmp_pack_", "pack-")) or name.endswith(".pack"))
        except FileNotFoundError:
            pass
    return found


def drop_leftovers(repo: Path, before: set[str], refs_moved: bool) -> int:
    """Remove what this push added that nothing refers to: temporary packs always, and its
    packs when no ref moved. The bytes freed."""
    freed = 0
    for path in sorted(snapshot(repo) - before):
        if refs_moved and "tmp_pack_" not in path:
            continue
        try:
            freed += os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            pass
    return freed


def gc_argv(repo: Path) -> list[str]:
    # bounded like a push's git (intake.BOUNDED): a gc of a 200 MB repo took 210 MB, now 21
    bounded = [arg for setting in BOUNDED for arg in ("-c", setting)]
    return ["git", "--git-dir", str(repo), "-c", f"safe.directory={repo}", *HARDENING,
            *bounded, "gc", "--quiet", "--prune=now"]


def collect(repo: Path) -> bool:
    """Prune unreachable objects and repack (git gc). Call it holding the app's deploy lock:
    no push may add objects meanwhile. False (logged) if git failed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C"}
    try:
        # umask 022: new packs 0444 like dulwich's, readable by the app's builds through the
        # repo folder (root:app 0750)
        done = subprocess.run(gc_argv(repo), env=env, capture_output=True, text=True,
                              timeout=GC_TIMEOUT, stdin=subprocess.DEVNULL, umask=0o022,
                              start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("git gc of %s failed: %s", repo, err)
        return False
    if done.returncode != 0:
        log.warning("git gc of %s failed: %s", repo, done.stderr.strip()[-500:])
        return False
    return True
