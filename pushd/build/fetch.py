"""Fetch phase: export a pushed commit's tree into a fresh build dir, minus `.slugignore`.

Reads the bare repo with dulwich (no `git` process, no index). Runs as root on content a user
pushed, so every path is checked to stay inside the build dir: a crafted tree must not write
through a symlink or a `..` component.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dulwich.ignore import IgnoreFilter
from dulwich.objects import Commit, Tag, Tree
from dulwich.repo import Repo

from ..errors import BuildError

S_IFGITLINK = 0o160000


def slugignore_filter(text: str) -> IgnoreFilter:
    """`.slugignore` is gitignore syntax without negation; `!` lines are dropped, not honoured,
    because Heroku ignores them too."""
    patterns = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if line and not line.startswith("#") and not line.startswith("!"):
            patterns.append(line.encode())
    return IgnoreFilter(patterns)


def is_ignored(rules: IgnoreFilter, path: str) -> bool:
    """True if `path` (a file, relative, '/'-separated) or any folder above it is ignored."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        if rules.is_ignored("/".join(parts[:depth]) + "/"):
            return True
    return bool(rules.is_ignored(path))


def _tree_of(repo: Repo, commit: str) -> Tree:
    try:
        obj = repo[commit.encode("ascii")]
        while isinstance(obj, Tag):
            obj = repo[obj.object[1]]
        if not isinstance(obj, Commit):
            raise KeyError(commit)
        tree = repo[obj.tree]
    except (KeyError, UnicodeEncodeError, ValueError):
        raise BuildError(f"Commit {commit[:40]} not found in the app's repository",
                         phase="fetch") from None
    assert isinstance(tree, Tree)
    return tree


def _safe_target(root: Path, rel: str) -> Path:
    parts = rel.split("/")
    if any(part in ("", ".", "..", ".git") for part in parts):
        raise BuildError(f"Refusing unsafe path in commit: {rel[:80]!r}", phase="fetch")
    return root.joinpath(*parts)


def export_tree(repo_path: Path, commit: str, dest: Path) -> int:
    """Write the commit's files into `dest` (must exist, empty); return how many were written.

    Regular files keep their exec bit, symlinks stay symlinks, submodules are skipped, and
    `.slugignore` (read from the commit) removes matching paths before anything is written.
    """
    root = dest.resolve()
    with Repo(str(repo_path)) as repo:
        tree = _tree_of(repo, commit)
        store = repo.object_store
        rules = None
        try:
            _, ignore_sha = tree[b".slugignore"]
            rules = slugignore_filter(store[ignore_sha].as_raw_string().decode("utf-8",
                                                                              "replace"))
        except KeyError:
            pass
        written = 0
        for entry in store.iter_tree_contents(tree.id):
            rel = entry.path.decode("utf-8", "surrogateescape")
            if entry.mode == S_IFGITLINK or stat.S_ISDIR(entry.mode):
                continue
            if rules is not None and is_ignored(rules, rel):
                continue
            target = _safe_target(root, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            # a symlink earlier in the tree could redirect a folder outside the build dir
            if not target.parent.resolve().is_relative_to(root):
                raise BuildError(f"Refusing path through a symlink: {rel[:80]!r}",
                                 phase="fetch")
            data = store[entry.sha].as_raw_string()
            if stat.S_ISLNK(entry.mode):
                os.symlink(data, target)
            else:
                mode = 0o755 if entry.mode & 0o111 else 0o644
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(target, mode)  # the umask must not strip the exec bit
            written += 1
        return written
