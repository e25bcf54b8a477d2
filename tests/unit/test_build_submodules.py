import subprocess
from pathlib import Path

import pytest

from pushd.build import submodules
from pushd.build.hostpaths import HostPaths
from pushd.errors import BuildError

GITMODULES = """\
# a comment
[submodule "lib"]
\tpath = vendor/lib
\turl = https://example.org/lib.git
[submodule "theme"]
	path = "themes/plain"
	url = /srv/git/theme.git
[core]
	path = not-a-submodule
"""


def test_parse_gitmodules():
    assert submodules.parse_gitmodules(GITMODULES) == {
        "vendor/lib": "https://example.org/lib.git", "themes/plain": "/srv/git/theme.git"}
    assert submodules.parse_gitmodules("garbage\n[submodule x\npath=a\n") == {}


def test_plan_names_a_submodule_without_a_url():
    links = {"vendor/lib": "a" * 40, "other": "b" * 40}
    with pytest.raises(BuildError, match="^Submodule other has no URL in .gitmodules$"):
        submodules.plan(GITMODULES, links)
    assert submodules.plan(GITMODULES, {"vendor/lib": "a" * 40}) == [
        submodules.Submodule("vendor/lib", "https://example.org/lib.git", "a" * 40)]
    assert submodules.plan(None, {}) == []


@pytest.mark.parametrize("url", [
    "ext::sh -c touch% /tmp/pwned", "../sibling.git", "git@github.com:o/r.git",
    "ssh://git@example.org/r.git", "https://exa mple.org/x", "-uhttps://example.org/x"])
def test_urls_that_are_neither_network_nor_host_folders_are_refused(url, tmp_path):
    with pytest.raises(BuildError, match="is not allowed"):
        submodules.source_of(url, HostPaths(admin=True), tmp_path)


def test_host_folders_only_where_the_push_may_name_them_and_never_pushds_state(tmp_path):
    state = tmp_path / "state"
    other_app = state / "apps" / "2" / "repo.git"
    other_app.mkdir(parents=True)
    allowed = tmp_path / "shared"
    (allowed / "theme.git").mkdir(parents=True)
    user = HostPaths(admin=False, allowed=(str(allowed),))
    with pytest.raises(BuildError, match="refused"):
        submodules.source_of("/etc", user, state)
    for url in (str(other_app), f"file://{other_app}", f"{allowed}/../state/apps/2/repo.git"):
        with pytest.raises(BuildError, match="refused"):
            submodules.source_of(url, HostPaths(admin=True, allowed=(str(tmp_path),)), state)
    assert submodules.source_of(f"file://{allowed}/theme.git", user, state) == (
        f"file://{allowed}/theme.git", f"{allowed}/theme.git")
    assert submodules.source_of("https://example.org/lib.git", user, state) == (
        "https://example.org/lib.git", None)


def test_gitlinks_of_a_commit(tmp_path: Path):
    def git(*args: str, cwd: Path = tmp_path) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=cwd, check=True, capture_output=True, text=True).stdout
    git("init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("a")
    sha = "1" * 40
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib")
    git("add", "a.txt")
    git("commit", "-q", "-m", "x")
    head = git("rev-parse", "HEAD").strip()
    assert submodules.gitlinks(tmp_path / ".git", head) == {"vendor/lib": sha}
