"""Issue 8, memory that stays: large pushes and clones through a real daemon (OpenSSH `git`),
with the daemon's memory and its children's read from /proc. A push's pack is never held in
the daemon (git index-pack in a bounded child takes it), the daemon returns to idle after,
and a refused or failed push leaves no pack in the repo."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pushd.store import Store
from tests.memsample import Peak, Sampler, status_kb
from tests.polling import wait_until

from ..e2e.harness import PushdUnderTest, new_root, python_app, running, sh

MB = 1024
PEAK_MARGIN = 100 * MB  # the bound: a push's peak stays under 100 MB above idle
AFTER_MARGIN = 60 * MB  # and the daemon comes back to idle


@pytest.fixture(scope="module")
def pushmem():
    yield from running(new_root("pushd-pushmem-"), {
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5, "build_timeout": 300,
        "ssh_auth_timeout": 5, "dyno_disk_mb": 64,
        "max_pack_mb": 100, "max_object_mb": 50, "pack_memory_mb": 48})


def random_files(repo: Path, sizes_mb: dict[str, int]) -> None:
    for name, size in sizes_mb.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for _ in range(size):
                out.write(os.urandom(1024 * 1024))


def digest(path: Path) -> str:
    with open(path, "rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()


def repo_dir(platform: PushdUnderTest, app: str) -> Path:
    app_id = Store(platform.state / "pushd.db").app(app).id
    return platform.state / "apps" / str(app_id) / "repo.git"


def pack_files(platform: PushdUnderTest, app: str) -> set[str]:
    """Every pack, index and temporary pack or quarantine in the app's repo."""
    objects = repo_dir(platform, app) / "objects"
    found = {f"pack/{p.name}" for p in (objects / "pack").iterdir()}
    return found | {p.name for p in objects.iterdir() if p.name.startswith(("incoming-", "tmp"))}


def remote_sha(platform: PushdUnderTest, repo: Path) -> str:
    out = sh(["git", "ls-remote", "platform", "main"], cwd=repo, env=platform.env()).stdout
    return out.split()[0] if out.strip() else ""


def rss(platform: PushdUnderTest) -> int:
    pid = platform.daemon_pid()
    assert pid
    return status_kb(pid, "VmRSS")


@dataclass
class Measured:
    idle: int
    peak: Peak
    result: object


def measured(platform: PushdUnderTest, action) -> Measured:  # noqa: ANN001
    pid = platform.daemon_pid()
    assert pid
    idle = status_kb(pid, "VmRSS")
    with Sampler(pid) as sampler:
        result = action()
    return Measured(idle, sampler.peak, result)


@pytest.fixture(scope="module")
def big_app(pushmem: PushdUnderTest) -> tuple[Path, Measured]:
    """An app deployed small, then pushed again with 90 MB of random data (two files)."""
    repo = pushmem.deploy("pushmem-big", python_app("small first"))
    pushmem.wait_for("pushmem-big", "small first")
    random_files(repo, {"data/a.bin": 45, "data/b.bin": 45})
    pushmem.commit(repo, {**python_app("big pushed"), ".slugignore": "data/\n"})
    return repo, measured(pushmem, lambda: pushmem.push(repo))


def test_a_large_push_deploys_without_the_daemon_holding_it(pushmem, big_app):
    repo, push = big_app
    assert push.result.returncode == 0, push.result.stderr
    assert "Released v2" in push.result.stderr
    pushmem.wait_for("pushmem-big", "big pushed")
    assert remote_sha(pushmem, repo) == sh(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    # the daemon and the git it started, together, stayed near idle while 90 MB went through
    assert push.peak.daemon_kb < push.idle + PEAK_MARGIN, (push.idle, push.peak)
    assert push.peak.git_kb < push.idle + PEAK_MARGIN, (push.idle, push.peak)
    wait_until(lambda: rss(pushmem) < push.idle + AFTER_MARGIN, timeout=30)


def test_a_clone_of_a_large_repo_does_not_balloon_the_daemon(pushmem, big_app):
    repo, _ = big_app
    clone = pushmem.root / "clone-big"
    done = measured(pushmem, lambda: sh(
        ["git", "clone", "-q", "ssh://git@platform/pushmem-big", str(clone)],
        env=pushmem.env()))
    assert done.result.returncode == 0, done.result.stderr
    for name in ("data/a.bin", "data/b.bin"):
        assert digest(clone / name) == digest(repo / name)
    assert done.peak.git_kb < done.idle + PEAK_MARGIN, (done.idle, done.peak)
    wait_until(lambda: rss(pushmem) < done.idle + AFTER_MARGIN, timeout=30)


def refused_and_unchanged(pushmem: PushdUnderTest, repo: Path, app: str, before: set[str],
                          old: str, why: str, body: str) -> None:
    """Pushing `repo` is refused for `why`, and nothing moved: no pack kept, the branch where
    it was, the old release still answering `body`."""
    result = pushmem.push(repo)
    assert result.returncode != 0
    lines = [line.rstrip() for line in result.stderr.splitlines()]
    assert f"remote:  !     push refused: {why}" in lines, result.stderr
    assert " ! [remote rejected] main -> main (pack refused)" in lines, result.stderr
    assert pack_files(pushmem, app) == before
    assert remote_sha(pushmem, repo) == old
    assert pushmem.http(app).body.startswith(body)


def test_a_file_over_the_cap_is_refused_and_leaves_no_pack(pushmem):
    repo = pushmem.deploy("pushmem-capped", python_app("capped v1"))
    before, old = pack_files(pushmem, "pushmem-capped"), remote_sha(pushmem, repo)
    random_files(repo, {"data/huge.bin": 55})  # over max_object_mb (50), and incompressible
    pushmem.commit(repo, {})
    refused_and_unchanged(pushmem, repo, "pushmem-capped", before, old,
                          "a file of 55 MB is larger than 50 MB (max_object_mb)", "capped v1")


def test_a_delta_over_the_pack_memory_is_refused_and_leaves_no_pack(pushmem):
    repo = pushmem.new_app_repo("pushmem-delta", python_app("delta v1"))
    random_files(repo, {"data/big.bin": 30})
    pushmem.commit(repo, {".slugignore": "data/\n"})
    assert pushmem.push(repo).returncode == 0  # 30 MB of new file: streamed, well under 48 MB
    before, old = pack_files(pushmem, "pushmem-delta"), remote_sha(pushmem, repo)
    with open(repo / "data" / "big.bin", "ab") as out:  # git sends it as a delta of the old
        out.write(os.urandom(1024 * 1024))
    pushmem.commit(repo, {})
    refused_and_unchanged(pushmem, repo, "pushmem-delta", before, old,
                          "unpacking it needed more than 48 MB of memory (pack_memory_mb)",
                          "delta v1")


def test_a_push_whose_build_fails_leaves_no_pack(pushmem):
    repo = pushmem.new_app_repo("pushmem-failing", python_app("never"))
    random_files(repo, {"data/some.bin": 5})
    pushmem.commit(repo, {"requirements.txt": "this-package-does-not-exist-pushd==0.0.1\n"})
    result = pushmem.push(repo)
    assert result.returncode != 0
    assert " ! [remote rejected] main -> main (build failed)" in result.stderr
    assert pack_files(pushmem, "pushmem-failing") == set()
    assert remote_sha(pushmem, repo) == ""


def test_a_push_cut_off_by_a_killed_daemon_is_cleared_by_the_next(pushmem):
    """Last in the module: it kills the daemon (and starts it again)."""
    repo = pushmem.deploy("pushmem-killed", python_app("killed v1"))
    before = pack_files(pushmem, "pushmem-killed")
    random_files(repo, {"data/a.bin": 45})
    pushmem.commit(repo, {**python_app("killed v2"), ".slugignore": "data/\n"})
    objects = repo_dir(pushmem, "pushmem-killed") / "objects"

    def receiving() -> bool:
        return any(q.stat().st_size > 4 * 1024 * 1024 for q in objects.glob("incoming-*/*.pack"))

    pusher = subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=pushmem.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(receiving, timeout=120, interval=0.05)
        pid = pushmem.daemon_pid()
        assert pid
        os.kill(pid, signal.SIGKILL)
    finally:
        pusher.wait(timeout=300)
    assert pusher.returncode != 0
    assert any(p.startswith("incoming-") for p in pack_files(pushmem, "pushmem-killed"))
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30)
    app_id = Store(pushmem.state / "pushd.db").app("pushmem-killed").id
    groups = Path("/sys/fs/cgroup/memory/pushd")  # `pack-<state dir>-<app id>-<random>`
    assert list(groups.glob(f"pack-*-{app_id}-*")) != []  # the killed push's, left behind
    pushmem.up()
    result = pushmem.push(repo)
    assert result.returncode == 0, result.stderr
    pushmem.wait_for("pushmem-killed", "killed v2")
    left = pack_files(pushmem, "pushmem-killed") - before
    assert [name for name in left if not name.startswith("pack/pack-")] == []
    assert list(groups.glob(f"pack-*-{app_id}-*")) == []
