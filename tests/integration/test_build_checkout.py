"""The checkout step in the build sandbox, as the app uid: exec bits, symlinks, submodules,
`.slugignore`, and crafted trees that try to write outside the build dir."""

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from pushd.build.process import run_streaming
from pushd.build.sandbox import APP_DIR, BuildSandbox
from pushd.build.steps import REPO_DIR, checkout_argv
from pushd.runtime.bwrap import Bind

UID = 40000 + 918  # used by nothing else on the test machine


@pytest.fixture
def tmp(tmp_path):
    # not pytest's tmp_path: its parents are 0700 and the app uid must traverse to its binds
    root = Path(tempfile.mkdtemp(prefix="pushd-checkout-", dir="/tmp"))
    os.chmod(root, 0o711)
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def checkout(root: Path, sha: str) -> tuple[int, list[str], Path]:
    dest = root / "out"
    dest.mkdir()
    os.chown(dest, UID, UID)
    box = BuildSandbox(UID, dest, root, root, (), "pushd-22", sha)
    lines: list[str] = []
    argv = box.step_argv(checkout_argv(sha), [Bind(str(root / "repo.git"), REPO_DIR),
                                              Bind(str(dest), APP_DIR, writable=True)])
    status = run_streaming(argv, lines.append, time.monotonic() + 60, "fetch")
    return status, lines, dest


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


def test_checkout_modes_symlinks_submodules_and_slugignore(tmp):
    sha = make_commit(tmp / "repo.git", {
        "app.py": (REG, b"print(1)\n"),
        "bin/run": (EXE, b"#!/bin/sh\n"),
        "link": (LNK, b"app.py"),
        "vendor/lib": (0o160000, b"a" * 40),
        "docs/guide.md": (REG, b"doc"),
        "src/docs/keep.txt": (REG, b"anchored pattern: kept"),
        "big.log": (REG, b"x"),
        "src/deep/trace.log": (REG, b"x"),
        "tests/test_a.py": (REG, b"x"),
        ".gitattributes": (REG, b"app.py export-ignore\n"),  # a checkout, not an archive
        ".slugignore": (REG, b"# comment\n/docs\n*.log\ntests/\n!big.log\n"),
    })
    status, lines, dest = checkout(tmp, sha)
    assert status == 0, lines
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir())
    assert found == [".gitattributes", ".slugignore", "app.py", "bin/run", "link",
                     "src/docs/keep.txt"]
    assert os.stat(dest / "bin/run").st_mode & 0o777 == 0o755
    assert os.stat(dest / "app.py").st_mode & 0o777 == 0o644
    assert os.readlink(dest / "link") == "app.py"
    assert os.stat(dest / "app.py").st_uid == UID  # written by the app's uid, not root
    assert not list((dest / "vendor").rglob("*.*"))  # a submodule is an empty folder


def test_unknown_commit_fails(tmp):
    make_commit(tmp / "repo.git", {"a": (REG, b"")})
    status, lines, _ = checkout(tmp, "0" * 40)
    assert status != 0


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/../../x", ".git/config"])
def test_crafted_paths_never_land_outside_the_build_dir(tmp, bad):
    sha = make_commit(tmp / "repo.git", {bad: (REG, b"x")})
    checkout(tmp, sha)
    assert not (tmp / "etc").exists() and not (tmp / "x").exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["out", "repo.git"]


def test_a_symlinked_folder_in_the_tree_cannot_write_outside(tmp):
    # `out -> /repo` (the sandbox's view of the repo) and a file under `out/`: a crafted tree
    target = tmp / "victim"
    target.mkdir()
    os.chmod(target, 0o777)
    sha = make_commit(tmp / "repo.git", {"out": (LNK, str(target).encode()),
                                         "out2": (LNK, b"/repo"),
                                         "zz/../out/pwned": (REG, b"x")})
    checkout(tmp, sha)
    assert list(target.iterdir()) == []
