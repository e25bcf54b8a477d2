"""Checkout with dulwich (exec bits, symlinks, submodules skipped) and `.slugignore`."""

import os
import stat

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from pushd.build.fetch import _safe_target, export_tree, is_ignored, slugignore_filter
from pushd.errors import BuildError


def make_commit(repo_path, files):
    """files: path -> (mode, bytes); builds nested trees by hand, as a push would store them."""
    repo = Repo.init_bare(str(repo_path), mkdir=True)
    store = repo.object_store

    def tree_for(entries):
        tree = Tree()
        subdirs = {}
        for path, (mode, data) in entries.items():
            head, _, rest = path.partition("/")
            if rest:
                subdirs.setdefault(head, {})[rest] = (mode, data)
            elif mode == 0o160000:
                tree.add(head.encode(), mode, data)
            else:
                blob = Blob.from_string(data)
                store.add_object(blob)
                tree.add(head.encode(), mode, blob.id)
        for name, sub in subdirs.items():
            tree.add(name.encode(), stat.S_IFDIR, tree_for(sub).id)
        store.add_object(tree)
        return tree

    commit = Commit()
    commit.tree = tree_for(files).id
    commit.author = commit.committer = b"t <t@t>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"x"
    store.add_object(commit)
    repo.close()
    return commit.id.decode()


REG, EXE, LNK = 0o100644, 0o100755, 0o120000


def test_export_modes_symlinks_submodules_and_slugignore(tmp_path):
    sha = make_commit(tmp_path / "repo.git", {
        "app.py": (REG, b"print(1)\n"),
        "bin/run": (EXE, b"#!/bin/sh\n"),
        "link": (LNK, b"app.py"),
        "vendor/lib": (0o160000, b"a" * 40),
        "docs/guide.md": (REG, b"doc"),
        "src/docs/keep.txt": (REG, b"anchored pattern: kept"),
        "big.log": (REG, b"x"),
        "src/deep/trace.log": (REG, b"x"),
        "tests/test_a.py": (REG, b"x"),
        ".slugignore": (REG, b"# comment\n/docs\n*.log\ntests/\n!big.log\n"),
    })
    dest = tmp_path / "out"
    dest.mkdir()
    export_tree(tmp_path / "repo.git", sha, dest)
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir())
    assert found == [".slugignore", "app.py", "bin/run", "link", "src/docs/keep.txt"]
    assert os.stat(dest / "bin/run").st_mode & 0o777 == 0o755
    assert os.stat(dest / "app.py").st_mode & 0o777 == 0o644
    assert os.readlink(dest / "link") == "app.py"
    assert not (dest / "vendor").exists()


def test_slugignore_matching():
    rules = slugignore_filter("*.psd\n/tmp\nspec/\nassets/**/*.map\n!keep.psd\n")
    assert is_ignored(rules, "a.psd")
    assert is_ignored(rules, "x/y/keep.psd")  # `!` is not supported, as on Heroku
    assert is_ignored(rules, "tmp/a.txt")
    assert not is_ignored(rules, "src/tmp/a.txt")
    assert is_ignored(rules, "lib/spec/x_spec.rb")
    assert is_ignored(rules, "assets/js/deep/app.js.map")
    assert not is_ignored(rules, "assets/js/app.js")


def test_unknown_commit_is_a_fetch_error(tmp_path):
    make_commit(tmp_path / "repo.git", {"a": (REG, b"")})
    with pytest.raises(BuildError) as err:
        export_tree(tmp_path / "repo.git", "0" * 40, tmp_path)
    assert err.value.phase == "fetch"


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/../../x", ".git/config", "a//b"])
def test_unsafe_paths_are_refused(tmp_path, bad):
    sha = make_commit(tmp_path / "repo.git", {bad: (REG, b"x")}) if "//" not in bad else None
    if sha is None:
        with pytest.raises(BuildError):
            _safe_target(tmp_path, bad)
        return
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BuildError) as err:
        export_tree(tmp_path / "repo.git", sha, dest)
    assert err.value.phase == "fetch"
    assert not (tmp_path / "etc").exists()
