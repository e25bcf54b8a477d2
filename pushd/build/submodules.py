"""Git submodules of a pushed commit, checked out into the build before any buildpack runs.

The commit's gitlinks (tree entries of mode 160000) are read by root with dulwich (git
objects only); their URLs come from the commit's `.gitmodules` (a tenant's file, read bounded
and parsed here, never by git as root). A URL must be a network one (https, http, git) or a
host folder the push may name (`HostPaths`: admin keys, `allowed_buildpack_paths`) outside
pushd's state dir, so a hostile `.gitmodules` cannot pull in another app's repository or a
host folder. Each submodule is fetched and checked out by git in the build's sandbox as the
app's uid, seeing only /app and (read-only) that one host folder. One that cannot be fetched
fails the build naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError
from ..runtime.bwrap import Bind
from .hostpaths import HostPaths, host_path_of

GITLINK = 0o160000
NETWORK_URL = re.compile(r"^(https?|git)://[A-Za-z0-9.-]+(:[0-9]+)?/[^\s]*$")
SAFE_SUB_PATH = re.compile(r"^[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*$")
SECTION = re.compile(r'^\[\s*submodule\s+"([^"\n]*)"\s*\]$')
KEY = re.compile(r"^([A-Za-z]+)\s*=\s*(.*)$")
MAX_SUBMODULES = 32

# Runs in the sandbox as the app uid: fetch one commit from $1 into a throwaway repository
# and check it out at /app/$2 ($3 the commit). Falls back to all branches and tags for
# servers that will not hand out a commit by id.
FETCH_SCRIPT = r"""
set -eo pipefail
export HOME=/tmp GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1
printf '[safe]\n\tdirectory = *\n' > /tmp/.gitconfig
git init --quiet --bare /tmp/sub.git
if ! git -C /tmp/sub.git fetch --quiet --no-tags -- "$1" "$3" 2>/tmp/err; then
  git -C /tmp/sub.git fetch --quiet -- "$1" '+refs/heads/*:refs/heads/*' \
    '+refs/tags/*:refs/tags/*' 2>>/tmp/err || { tail -n 3 /tmp/err; exit 1; }
fi
git -C /tmp/sub.git cat-file -e "$3^{commit}" 2>/dev/null \
  || { echo "fatal: commit $3 is not in that repository"; exit 1; }
mkdir -p "/app/$2"
git --git-dir=/tmp/sub.git --work-tree="/app/$2" -c advice.detachedHead=false \
  checkout --quiet --force "$3" -- .
"""

StepRunner = Callable[[Sequence[str], Sequence[Bind], Callable[[str], None]], int]


@dataclass(frozen=True)
class Submodule:
    path: str
    url: str
    commit: str


def parse_gitmodules(text: str) -> dict[str, str]:
    """path -> url of each `[submodule "…"]` section (git config syntax, the common subset)."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = SECTION.match(line)
        if section:
            current = found.setdefault(section.group(1), {})
            continue
        if line.startswith("["):
            current = None
            continue
        key = KEY.match(line)
        if key and current is not None:
            value = key.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            current[key.group(1).lower()] = value
    return {entry["path"].strip("/"): entry.get("url", "")
            for entry in found.values() if entry.get("path")}


def gitlinks(repo_path: Path, commit: str) -> dict[str, str]:
    """path -> commit of every submodule entry in the commit's tree."""
    from dulwich.repo import Repo

    repo = Repo(str(repo_path))
    try:
        tree = repo[commit.encode()].tree  # type: ignore[union-attr]
        return {entry.path.decode("utf-8", "replace"): entry.sha.decode()
                for entry in repo.object_store.iter_tree_contents(tree)
                if entry.mode == GITLINK}
    finally:
        repo.close()


def source_of(url: str, policy: HostPaths, state_root: Path) -> tuple[str, str | None]:
    """(what git fetches from, the host folder to show the sandbox or None); BuildError for
    a URL a submodule may not use."""
    if NETWORK_URL.match(url):
        return url, None
    host = host_path_of(url)
    if host is None:
        raise BuildError(f"submodule URL {url[:100]!r} is not allowed (https, http, git "
                         "URLs, or a host folder the push may name)", phase="fetch")
    real = os.path.realpath(host)
    state = os.path.realpath(state_root)
    if real == state or real.startswith(state.rstrip("/") + "/") or not policy.permits(real):
        raise BuildError(f"submodule URL {url[:100]!r} refused: a path on the platform's "
                         "host is for admin keys and allowed_buildpack_paths only, never "
                         "pushd's state", phase="fetch")
    if not os.path.isdir(real):
        raise BuildError(f"no repository at {url[:100]}", phase="fetch")
    return f"file://{real}", real


def plan(gitmodules: str | None, links: dict[str, str]) -> list[Submodule]:
    """The submodules to check out; BuildError naming one without a usable entry."""
    if not links:
        return []
    if len(links) > MAX_SUBMODULES:
        raise BuildError(f"more than {MAX_SUBMODULES} submodules", phase="fetch")
    urls = parse_gitmodules(gitmodules or "")
    result = []
    for path, commit in sorted(links.items()):
        if not SAFE_SUB_PATH.match(path) or ".." in path.split("/"):
            raise BuildError(f"Submodule path {path[:100]!r} is not supported", phase="fetch")
        url = urls.get(path, "")
        if not url:
            raise BuildError(f"Submodule {path} has no URL in .gitmodules", phase="fetch")
        result.append(Submodule(path, url, commit))
    return result


def check_out(submodules: list[Submodule], step: StepRunner, app_dir: Path, policy: HostPaths,
              state_root: Path, out: Callable[[str], None]) -> None:
    """Fetch and check out each submodule into /app/<path>, in the sandbox (`step`)."""
    for sub in submodules:
        try:
            source, host = source_of(sub.url, policy, state_root)
        except BuildError as err:
            raise BuildError(f"Submodule {sub.path}: {err}", phase="fetch") from None
        out(f"-----> Fetching submodule {sub.path} ({sub.url[:100]})\n")
        binds = [Bind(str(app_dir), "/app", writable=True)]
        if host is not None:
            binds.append(Bind(host, host))
        lines: list[str] = []
        argv = ["bash", "-c", FETCH_SCRIPT, "pushd-submodule", source, sub.path, sub.commit]
        if step(argv, binds, lines.append) != 0:
            said = [line.strip() for line in lines if line.strip()]
            causes = [line for line in said if line.startswith(("fatal:", "error:"))]
            detail = (causes or said or ["git fetch failed"])[0 if causes else -1]
            raise BuildError(f"Submodule {sub.path} could not be fetched from "
                             f"{sub.url[:100]}: {detail}", phase="fetch")
