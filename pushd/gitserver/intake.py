"""A pushed pack taken into an app's repo without ever being held in the daemon.

dulwich's own receive inflates every object whole in the daemon while it indexes a pack: a
push of a few 50 MB files cost the daemon ~300 MB, and its allocator kept part of it. Here the
daemon only passes the bytes along, 64 KB at a time: each piece goes through the PackGuard
(the caps, checked before anything is inflated whole) and on to `git index-pack --stdin
--fix-thin`, a child in a memory cgroup of its own (`pack_memory_mb`), set to stream big
blobs: a few MB whatever the push's size (a delta needs its base and its result at once).

The pack is written into a quarantine folder (`objects/incoming-*`) and moves into
`objects/pack` only once it is whole and indexed, so a refused or failed push leaves
nothing; the pack of a push none of whose refs moved is removed again (`discard`).
Quarantines, temporary packs and cgroups a killed daemon left are cleared by the app's next
push, which holds its deploy lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..build.cgroup import BuildCgroup, BuildLimits, remove_stale
from .packguard import PackCaps, PackGuard, PackRefused, TrailerWatch

PIECE = 64 * 1024
QUARANTINE = "incoming-"
INCOMING = "incoming"  # incoming.pack and incoming.idx in the quarantine
PIDS_MAX = 16  # git index-pack starts nothing; room for the shell that enters the group
PACK_NAME_RE = re.compile(r"pack\t([0-9a-f]{40})")
# Bounded git: objects over 1 MB are streamed, not held (index-pack hashes them as they pass,
# pack-objects copies them without a delta search), packs are mapped 1 MB at a time (16 MB
# at most: a mapped pack counts in the resident memory), small delta caches, one thread.
BOUNDED = ("core.bigFileThreshold=1m", "core.packedGitWindowSize=1m",
           "core.packedGitLimit=16m", "core.deltaBaseCacheLimit=16m", "pack.threads=1",
           "pack.windowMemory=32m", "pack.deltaCacheSize=16m")


class UnpackFailed(OSError):
    """git could not index the pack (corrupt, or a delta whose base is nowhere). An OSError
    so dulwich reports it as the unpack status."""


def git_env(repo: Path) -> dict[str, str]:
    """git reading only the repo's own config (pushd's), never a user's or the system's."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "GIT_DIR": str(repo), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "HOME": str(repo), "LC_ALL": "C"}


def git_argv(*args: str) -> list[str]:
    argv = ["git"]
    for setting in BOUNDED:
        argv += ["-c", setting]
    return [*argv, *args]


def group_prefix(state_dir: Path, app_id: int) -> str:
    """`pack-<state dir hash>-<app id>-`: the cgroups of one app's pushes on one pushd."""
    token = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    return f"pack-{token}-{app_id}-"


def clear_leftovers(repo: Path, prefix: str) -> None:
    """What a killed push left: quarantines, temporary packs (git's and dulwich's) and its
    cgroup. Only under the app's deploy lock, when no other push of the app runs."""
    objects = repo / "objects"
    for folder in objects.glob(f"{QUARANTINE}*"):
        shutil.rmtree(folder, ignore_errors=True)
    for path in [*objects.glob("tmp_pack_*"), *(objects / "pack").glob("tmp*")]:
        path.unlink(missing_ok=True)
    remove_stale(prefix)


def drain(read_some: Callable[[int], bytes], watch: TrailerWatch, budget: int) -> None:
    """Read (and drop) the rest of a refused pack, raw, up to its trailer, so the pusher
    reads the refusal instead of a broken pipe. Past `budget` bytes: hang up."""
    while budget > 0:
        data = read_some(PIECE)
        if not data:
            return
        budget -= len(data)
        if watch.feed(data):
            return
    raise PackRefused("push refused: the pack does not end")


class PackIntake:
    """One push's pack: `add_thin_pack` reads it, checks it and has git index it into the
    repo; `discard` takes it out again."""

    def __init__(self, repo: Path, caps: PackCaps, *, memory_mb: int, prefix: str,
                 read_some: Callable[[int], bytes], say: Callable[[str], None]) -> None:
        self.repo, self.caps, self.memory_mb, self.prefix = repo, caps, memory_mb, prefix
        self.read_some, self.say = read_some, say
        self.refused: PackRefused | None = None
        self.added: list[Path] = []  # the pack, then its index, as moved into objects/pack
        self.watch = TrailerWatch()

    def add_thin_pack(self, *_reads: object, **_options: object) -> None:
        """Stands in for dulwich's `DiskObjectStore.add_thin_pack` (not its read functions:
        the pack is read with `read_some`, which returns what has arrived)."""
        clear_leftovers(self.repo, self.prefix)
        quarantine = Path(tempfile.mkdtemp(prefix=QUARANTINE, dir=self.repo / "objects"))
        cgroup = BuildCgroup(self.prefix + secrets.token_hex(4),
                             BuildLimits(self.memory_mb, PIDS_MAX, 100))
        cgroup.create()
        try:
            with tempfile.TemporaryFile() as errors:
                argv = [*cgroup.enter_argv(), *git_argv(
                    "index-pack", "--threads=1", "--stdin", "--fix-thin",
                    str(quarantine / f"{INCOMING}.pack"))]
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errors, env=git_env(self.repo), cwd=self.repo,
                                        bufsize=0)
                try:
                    ended = self._feed(proc, PackGuard(self.caps))
                    out = proc.communicate()[0]
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                if proc.returncode != 0:
                    self._failed(ended, cgroup.oom_killed(), errors)
            self._move_in(quarantine, out.decode("ascii", "replace"))
        finally:
            cgroup.remove()
            shutil.rmtree(quarantine, ignore_errors=True)

    def _feed(self, proc: subprocess.Popen, guard: PackGuard) -> bool:
        """Pass the pack to git; True once its end has passed, False if git stopped taking
        it first. A pack over the caps is refused at once, and the rest of it dropped."""
        stdin = proc.stdin
        assert stdin is not None
        try:
            while data := self.read_some(PIECE):
                ended = self.watch.feed(data)
                guard.feed(data)
                try:
                    stdin.write(data)
                except OSError:  # git died (its reason is in its stderr)
                    return ended
                if ended:
                    return True
            return True  # the input is over: git judges what came
        except PackRefused as err:
            self.refused = err
            self.say(f" !     {err}\n")
            proc.kill()
            drain(self.read_some, self.watch, 2 * self.caps.max_pack)
            raise

    def _failed(self, ended: bool, oom: bool, errors: IO[bytes]) -> None:
        """git ended without indexing the pack: say why, drop the rest of the pack, raise."""
        if oom:
            err: OSError = PackRefused(
                f"push refused: unpacking it needed more than {self.memory_mb} MB of memory "
                "(pack_memory_mb)")
            self.refused = err  # type: ignore[assignment]
        else:
            errors.seek(0)
            said = [line for line in errors.read().decode("utf-8", "replace").splitlines()
                    if line.strip()]
            err = UnpackFailed(said[-1][:300] if said else "git index-pack failed")
        self.say(f" !     {err}\n")
        if not ended:
            drain(self.read_some, self.watch, 2 * self.caps.max_pack)
        raise err

    def _move_in(self, quarantine: Path, said: str) -> None:
        found = PACK_NAME_RE.match(said)
        if found is None:
            raise UnpackFailed(f"git index-pack said {said.strip()[:100]!r}")
        packs = self.repo / "objects" / "pack"
        packs.mkdir(exist_ok=True)
        name = f"pack-{found.group(1)}"
        if (packs / f"{name}.idx").exists():
            return  # the very same pack is there already (and not ours to discard)
        for suffix in (".pack", ".idx"):  # the index last: git and dulwich count a pack by it
            target = packs / f"{name}{suffix}"
            os.rename(quarantine / f"{INCOMING}{suffix}", target)
            self.added.append(target)

    def discard(self) -> None:
        """Remove the pack this push added: none of its refs moved, so nothing needs it."""
        for path in reversed(self.added):
            path.unlink(missing_ok=True)
        self.added.clear()
