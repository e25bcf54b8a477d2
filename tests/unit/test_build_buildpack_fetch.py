"""Git buildpacks: fetched again on every build into a per-URL cache, pinned commits served from
the cache without the network, one-line errors. Real git on local repositories (file:// URLs),
run as the current user (no setpriv prefix)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pushd.build import buildpacks
from pushd.build.buildpacks import LATEST_REF, BuildpackResolver, _GitFetch
from pushd.build.process import BuildTimeout
from pushd.errors import BuildError


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def commit(repo: Path, version: str) -> str:
    """A buildpack whose bin/compile says which version it is; the new commit's sha."""
    if not repo.exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "bin").mkdir(exist_ok=True)
    (repo / "bin" / "compile").write_text(f"#!/bin/sh\necho {version}\n")
    (repo / "VERSION").write_text(version)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", version)
    return git(repo, "rev-parse", "HEAD")


class Resolve:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache"
        self.builds = 0

    def __call__(self, ref: str) -> tuple[str, list[str]]:
        """Resolve as one build would (own scratch dir); the checkout's VERSION and output."""
        self.builds += 1
        lines: list[str] = []
        resolver = BuildpackResolver(self.root / "bundled", self.cache)
        pack = resolver.resolve(ref, lines.append, time.monotonic() + 60, "60 seconds",
                                self.root / f"build-{self.builds}" / "clones")
        assert not (pack.path / ".git").exists()
        return (pack.path / "VERSION").read_text(), lines


@pytest.fixture
def resolve(tmp_path):
    return Resolve(tmp_path)


def test_a_new_commit_on_the_branch_is_picked_up_by_the_next_build(tmp_path, resolve):
    src = tmp_path / "bp"
    commit(src, "v1")
    url = f"file://{src}#main"
    version, lines = resolve(url)
    assert version == "v1" and lines == [f"-----> Fetching buildpack {url}\n"]
    commit(src, "v2")
    version, lines = resolve(url)
    assert version == "v2" and lines == [f"-----> Fetching buildpack {url}\n"]
    # the earlier build's checkout is its own: the cache is shared, checkouts are not
    assert (tmp_path / "build-1" / "clones").is_dir()
    assert [p.name for p in resolve.cache.iterdir() if p.suffix == ".git"] == [
        BuildpackResolver(tmp_path, resolve.cache).cache_repo(f"file://{src}").name]


def test_no_ref_follows_head_and_a_tag_can_move(tmp_path, resolve):
    src = tmp_path / "bp"
    commit(src, "v1")
    git(src, "tag", "stable")
    assert resolve(f"file://{src}")[0] == "v1"
    assert resolve(f"file://{src}#stable")[0] == "v1"
    commit(src, "v2")
    git(src, "tag", "-f", "stable")
    assert resolve(f"file://{src}")[0] == "v2"
    assert resolve(f"file://{src}#stable")[0] == "v2"
    # one cache entry per URL, whatever the ref
    assert len([p for p in resolve.cache.iterdir() if p.suffix == ".git"]) == 1


def test_a_pinned_commit_in_the_cache_does_not_fetch(tmp_path, resolve):
    src = tmp_path / "bp"
    first = commit(src, "v1")
    commit(src, "v2")
    assert resolve(f"file://{src}#main")[0] == "v2"  # v1 is in the cache as v2's parent
    shutil.rmtree(src)  # no network, no source: only the cache can answer
    version, lines = resolve(f"file://{src}#{first}")
    assert version == "v1" and lines == []


def test_a_pinned_commit_not_yet_cached_is_fetched_once(tmp_path, resolve):
    src = tmp_path / "bp"
    first = commit(src, "v1")
    commit(src, "v2")
    version, lines = resolve(f"file://{src}#{first}")
    assert version == "v1" and lines == [f"-----> Fetching buildpack file://{src}#{first}\n"]
    assert resolve(f"file://{src}#{first}") == ("v1", [])
    assert resolve(f"file://{src}#{first[:10]}")[0] == "v1"  # abbreviated: fetched again


@pytest.mark.parametrize("ref", ["nope", "0123456789abcdef0123456789abcdef01234567", "abc1234"])
def test_a_bad_ref_is_one_line(tmp_path, resolve, ref):
    src = tmp_path / "bp"
    commit(src, "v1")
    with pytest.raises(BuildError) as err:
        resolve(f"file://{src}#{ref}")
    message = str(err.value)
    assert message.startswith(f"Failed to fetch buildpack file://{src}#{ref}: fatal: ")
    assert "\n" not in message and err.value.phase == "detect"
    assert not list((tmp_path / "build-1" / "clones").iterdir())  # nothing left behind


def test_a_missing_repository_is_one_line(tmp_path, resolve):
    with pytest.raises(BuildError) as err:
        resolve(f"file://{tmp_path}/missing#main")
    assert str(err.value) == (f"Failed to fetch buildpack file://{tmp_path}/missing#main: "
                              f"fatal: '{tmp_path}/missing' does not appear to be a git "
                              "repository")


def test_concurrent_builds_share_the_cache_safely(tmp_path, resolve):
    src = tmp_path / "bp"
    commit(src, "v1")
    url = f"file://{src}#main"
    results: list[str] = []
    errors: list[BaseException] = []

    def build(index: int) -> None:
        try:
            resolver = BuildpackResolver(tmp_path / "bundled", resolve.cache)
            pack = resolver.resolve(url, lambda _: None, time.monotonic() + 60, "60 seconds",
                                    tmp_path / f"t{index}")
            results.append((pack.path / "VERSION").read_text())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    for version in ("v2", "v3"):
        commit(src, version)
        threads = [threading.Thread(target=build, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and results == [version] * 6
        results.clear()
        for entry in tmp_path.glob("t*"):
            shutil.rmtree(entry)
    cache = BuildpackResolver(tmp_path, resolve.cache).cache_repo(f"file://{src}")
    subprocess.run(["git", "-C", str(cache), "fsck", "--strict"], check=True,
                   capture_output=True)
    assert git(cache, "cat-file", "-p", git(src, "rev-parse", "HEAD")).startswith("tree ")


def test_the_cache_keeps_one_ref_and_a_bounded_number_of_packs(tmp_path, resolve, monkeypatch):
    monkeypatch.setattr(buildpacks, "PACK_LIMIT", 2)
    src = tmp_path / "bp"
    first = commit(src, "v1")
    url = f"file://{src}#main"
    assert resolve(url)[0] == "v1"
    cache = BuildpackResolver(tmp_path, resolve.cache).cache_repo(f"file://{src}")
    git(cache, "update-ref", f"refs/pushd/{first}", first)  # as earlier versions kept them
    for version in ("v2", "v3", "v4", "v5"):
        sha = commit(src, version)
        assert resolve(url)[0] == version
        assert git(cache, "for-each-ref", "--format=%(refname) %(objectname)") == (
            f"{LATEST_REF} {sha}")
        assert len(list((cache / "objects" / "pack").glob("*.pack"))) <= 2
    shutil.rmtree(src)  # merged packs still hold the older commits: pinned ones need no fetch
    assert resolve(f"file://{src}#{first}") == ("v1", [])
    subprocess.run(["git", "-C", str(cache), "fsck", "--strict"], check=True,
                   capture_output=True)


def test_checkouts_of_the_old_cache_layout_are_removed(tmp_path, resolve):
    old = resolve.cache / "0123456789abcdef0123"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "compile").write_text("#!/bin/sh\n")
    src = tmp_path / "bp"
    commit(src, "v1")
    assert resolve(f"file://{src}#main")[0] == "v1"
    assert not old.exists()
    assert sorted(p.suffix for p in resolve.cache.iterdir()) == [".git", ".lock"]


def test_making_the_cache_repository_keeps_to_the_build_deadline(tmp_path):
    resolver = BuildpackResolver(tmp_path / "bundled", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "tmp").mkdir()
    fetch = _GitFetch(resolver, "file:///bp#main", time.monotonic() - 1, "60 seconds",
                      tmp_path / "tmp")
    with pytest.raises(BuildTimeout, match="Build timed out after 60 seconds"):
        fetch._init_cache()
    assert list((tmp_path / "cache").iterdir()) == []
