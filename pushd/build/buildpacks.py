"""Buildpack references: validation (for `buildpacks:set`), the selection order of a build,
and turning a reference into a local folder (bundled, local path or a fresh checkout of a git
buildpack, fetched again on every build into a shared per-URL cache).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import BuildError, UsageError
from ..runtime.bwrap import Bind
from .hostpaths import Buildpack, HostPaths, host_folder, host_path_of
from .process import BuildTimeout, run_streaming
from .steps import read_small, same_folder_argv

# wraps a git argv to run in the build's sandbox (cgroup, app uid, only these binds visible)
SandboxWrap = Callable[[list[str], Sequence[Bind]], list[str]]

# python before nodejs: a Python app with a package.json for its assets is the common mixed
# case; nodejs before static because front-end apps carry public/index.html; procfile last.
BUNDLED_ORDER = ("python", "nodejs", "static", "procfile")
URL_RE = re.compile(r"^(https?|git|ssh|file)://[^\s#]+(#[^\s#]+)?$")
SCP_RE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^\s#]+(#[^\s#]+)?$")
REF_RE = re.compile(r"^[A-Za-z0-9_./-]{1,200}$")
BUNDLED_PREFIXES = ("pushd/", "heroku/")  # Heroku users type heroku/python from memory
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
HEXISH_RE = re.compile(r"^[0-9a-f]{4,40}$")
OLD_CACHE_RE = re.compile(r"^[0-9a-f]{20}$")  # the earlier layout: a checkout per URL#ref
LATEST_REF = "refs/pushd/latest"  # the one ref a cache keeps: where the next fetch starts
PACK_LIMIT = 20  # a cache with more packs than this has them merged into one


def bundled_name(ref: str) -> str | None:
    name = ref
    for prefix in BUNDLED_PREFIXES:
        if ref.startswith(prefix):
            name = ref[len(prefix):]
    return name if name in BUNDLED_ORDER else None


def validate_buildpack(ref: str) -> str:
    """Return the cleaned reference or raise UsageError with one line saying what is wrong.

    Accepted: a bundled name (`python`, `pushd/python`, `heroku/python`), an absolute path to
    a folder with bin/compile, or a git URL (https, http, git, ssh, file, user@host:path),
    optionally with `#ref`."""
    value = (ref or "").strip()
    if not value or len(value) > 1000 or any(ord(c) < 32 for c in value):
        raise UsageError(f"Invalid buildpack {value[:60]!r}: expected a name, a path or a URL")
    if bundled_name(value):
        return value
    if value.startswith("/"):
        # whether it holds bin/compile is checked at build time as the app's uid: asked here
        # (as root) the answer would tell any user what exists anywhere on the host
        if "/../" in f"{value}/" or "/./" in f"{value}/":
            raise UsageError(f"Invalid buildpack {value!r}: use a plain absolute path")
        return value
    if URL_RE.match(value) or SCP_RE.match(value):
        _, _, git_ref = value.partition("#")
        if git_ref and (not REF_RE.match(git_ref) or git_ref.startswith("-")):
            raise UsageError(f"Invalid buildpack {value[:60]!r}: bad git ref {git_ref!r}")
        return value
    names = ", ".join(BUNDLED_ORDER)
    raise UsageError(f"Invalid buildpack {value[:60]!r}: expected one of {names}, an absolute "
                     "path or a git URL (https://host/repo.git#ref)")


def parse_buildpacks_file(text: str) -> list[str]:
    """`.buildpacks`: one reference per line; blank lines and `#` comments skipped."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def requested_buildpacks(config: dict[str, str], build_dir: Path,
                         app_buildpacks: Sequence[str]) -> tuple[list[str], str]:
    """The buildpacks the app asks for and where that came from, in Heroku's precedence:
    BUILDPACK_URL, then `.buildpacks`, then buildpacks:set; empty means detect."""
    if config.get("BUILDPACK_URL", "").strip():
        return [config["BUILDPACK_URL"].strip()], "BUILDPACK_URL"
    listing = read_small(build_dir / ".buildpacks", phase="detect")
    if listing is not None:
        refs = parse_buildpacks_file(listing)
        if refs:
            return refs, ".buildpacks"
    if app_buildpacks:
        return list(app_buildpacks), "buildpacks:set"
    return [], "detection"


class BuildpackResolver:
    """Turns references into folders.

    A git URL has one bare repository in the shared cache, `cache_root/<hash of the URL>.git`
    (root's, world-readable), and is fetched again on every build, as Heroku does: a branch
    moves, HEAD moves, a tag can be re-pointed. Only a full 40-hex commit already in the cache
    is used without touching the network. The fetch runs as the app uid in the build's sandbox
    in a scratch repository of this build that borrows the cache's objects (alternates), so
    only new objects travel; root then copies them into the cache under a per-URL flock
    (`<hash>.lock`) and every build checks its buildpack out into its own scratch folder, so
    concurrent builds never share a working tree nor half-written cache state."""

    def __init__(self, bundled_dir: Path, cache_root: Path,
                 sandbox: SandboxWrap | None = None,
                 host_paths: HostPaths | None = None,
                 contain: Callable[[], list[str]] | None = None) -> None:
        self.bundled_dir = Path(bundled_dir)
        self.cache_root = Path(cache_root)
        # the receiver runs as root: fetches run through this wrapper (the build's sandbox, as
        # the app uid) so a user can only pull in what the sandbox shows and the uid may read
        self.sandbox = sandbox or (lambda argv, binds: list(argv))
        # prefix for root's own git reading what a fetch brought (index-pack): the build's
        # cgroup, so a huge pack costs the build, not the daemon's host
        self.contain = contain or (lambda: [])
        self.host_paths = host_paths or HostPaths(admin=True)

    def bundled(self) -> list[Buildpack]:
        return [Buildpack(name, self.bundled_dir / name) for name in BUNDLED_ORDER]

    def resolve(self, ref: str, out: Callable[[str], None], deadline: float,
                timeout_label: str, scratch: Path) -> Buildpack:
        """A folder for `ref`. A git checkout lives under `scratch`, which the caller removes
        when the build ends."""
        try:
            value = validate_buildpack(ref)
        except UsageError as err:
            raise BuildError(str(err), phase="detect") from None
        name = bundled_name(value)
        if name:
            return Buildpack(value, self.bundled_dir / name)
        local = None
        host_path = host_path_of(value)
        if host_path is not None:
            local = host_folder(self.host_paths, value, host_path)
            if value.startswith("/"):
                if local is None:
                    raise BuildError(f"Invalid buildpack {value!r}: no folder there",
                                     phase="detect")
                return local
        scratch.mkdir(parents=True, exist_ok=True)
        fetch = _GitFetch(self, value, deadline, timeout_label,
                          Path(tempfile.mkdtemp(prefix="clone-", dir=scratch)), local)
        return Buildpack(value, fetch.checkout(out))

    def cache_repo(self, url: str) -> Path:
        return self.cache_root / f"{hashlib.sha256(url.encode()).hexdigest()[:20]}.git"


def remove_old_layout(cache_root: Path) -> None:
    """Drop the checkouts an earlier layout kept (`<hash>/`, beside today's `<hash>.git`):
    nothing reads them any more."""
    for entry in cache_root.iterdir():
        if OLD_CACHE_RE.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


class _GitFetch:
    """One git buildpack reference resolved for one build."""

    def __init__(self, resolver: BuildpackResolver, value: str, deadline: float,
                 timeout_label: str, tmp: Path, local: Buildpack | None = None) -> None:
        self.tmp, self.repo = tmp, tmp / "repo.git"  # this build's own, removed with it
        self.sandbox = resolver.sandbox
        self.contain = resolver.contain
        self.cache_root = resolver.cache_root
        self.value = value
        self.url, _, self.ref = value.partition("#")
        self.local = local  # a file:// source: its real folder, shown to the sandbox alone
        self.source = f"file://{local.path}" if local else self.url
        self.cache = resolver.cache_repo(self.url)
        self.deadline, self.timeout_label = deadline, timeout_label
        self.root_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                         "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                         "HOME": str(self.cache_root)}

    def checkout(self, out: Callable[[str], None]) -> Path:
        tmp, dest = self.tmp, self.tmp / "bp"
        try:
            os.chmod(tmp, 0o777)  # the unprivileged fetch writes here
            # file:// sources belong to another user and git 2.39 only reads safe.directory
            # from the global config: give the app-uid git a throwaway one
            (tmp / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
            os.chmod(tmp / ".gitconfig", 0o644)
            self._app(["init", "--quiet", "--bare", str(self.repo)], "git init failed")
            if SHA_RE.match(self.ref) and self._cached(self.ref):
                sha = self.ref  # a pinned commit never changes: no network
            else:
                out(f"-----> Fetching buildpack {self.value}\n")
                sha = self._fetch()
                self._store(sha)
            dest.mkdir()
            os.chmod(dest, 0o777)
            self._app(["--git-dir", str(self.repo), "--work-tree", str(dest), "-c",
                       "advice.detachedHead=false", "checkout", "--quiet", "--force",
                       "--detach", sha], "git checkout failed")
            return dest
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _fail(self, lines: list[str], default: str) -> BuildError:
        """One line: git's first `fatal:`/`error:` line (the cause), else its last line."""
        said = [line.strip() for line in lines if line.strip()]
        causes = [line for line in said if line.startswith(("fatal:", "error:"))]
        detail = (causes or said or [default])[0 if causes else -1]
        return BuildError(f"Failed to fetch buildpack {self.value}: {detail}", phase="detect")

    def _app_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO",
                        "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
        env.update(GIT_TERMINAL_PROMPT="0", HOME=str(self.tmp), GIT_CONFIG_NOSYSTEM="1")
        if (self.cache / "objects").is_dir():
            env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(self.cache / "objects")
        return env

    def _app_argv(self, args: list[str]) -> list[str]:
        """git in the build's sandbox as the app uid, seeing only this fetch's scratch folder,
        the cache's objects (read-only) and a file:// source (read-only, if still the folder
        that was checked)."""
        binds = [Bind(str(self.tmp), str(self.tmp), writable=True)]
        if (self.cache / "objects").is_dir():
            binds.append(Bind(str(self.cache / "objects"), str(self.cache / "objects")))
        argv = ["git", *args]
        if self.local is not None:
            binds.append(Bind(str(self.local.path), str(self.local.path)))
            argv = same_folder_argv(str(self.local.path), self.local.identity, argv)
        return self.sandbox(argv, binds)

    def _app_run(self, args: list[str], lines: list[str]) -> int:
        """git as the app uid (network and user-named paths), with the build's deadline."""
        return run_streaming(self._app_argv(args), lines.append, self.deadline,
                             "detect", env=self._app_env(), timeout_label=self.timeout_label)

    def _app(self, args: list[str], default: str) -> list[str]:
        lines: list[str] = []
        if self._app_run(args, lines) != 0:
            raise self._fail(lines, default)
        return lines

    def _root(self, args: list[str], lines: list[str] | None = None) -> int:
        """git as root on the cache only (never on a path or repository a user controls)."""
        return run_streaming(["git", "-C", str(self.cache), *args],
                             (lines if lines is not None else []).append, self.deadline,
                             "detect", env=self.root_env, timeout_label=self.timeout_label)

    def _cached(self, sha: str) -> bool:
        return (self.cache / "objects").is_dir() and self._root(
            ["cat-file", "-e", f"{sha}^{{commit}}"]) == 0

    def _fetch(self) -> str:
        """Fetch the ref (HEAD without one) into the scratch repository; its commit sha."""
        repo = ["-C", str(self.repo)]
        lines: list[str] = []
        want = self.ref or "HEAD"
        if self._app_run([*repo, "fetch", "--quiet", "--no-tags", "--", self.source, want],
                         lines) == 0:
            target = "FETCH_HEAD^{commit}"
        elif HEXISH_RE.match(self.ref):
            # a commit the server will not hand out by id (old protocol, abbreviated sha):
            # take every branch and tag and look for it there
            self._app([*repo, "fetch", "--quiet", "--", self.source, "+refs/heads/*:refs/heads/*",
                       "+refs/tags/*:refs/tags/*"], "git fetch failed")
            target = f"{self.ref}^{{commit}}"
        else:
            raise self._fail(lines, "git fetch failed")
        found: list[str] = []
        if self._app_run([*repo, "rev-parse", "--verify", "--quiet", target], found) != 0:
            raise self._fail(lines, f"no commit {self.ref} in that repository")
        sha = found[-1].strip() if found else ""
        if not SHA_RE.match(sha):
            raise self._fail(found, "git rev-parse failed")
        return sha

    def _store(self, sha: str) -> None:
        """Copy the commit's new objects into the shared cache and point its one ref there,
        so the next fetch of this URL negotiates from it. Objects are never pruned (a pinned
        commit is served from the cache, and concurrent builds borrow them), so what grows
        is the buildpack's own history; refs stay at one and packs at PACK_LIMIT."""
        self.cache_root.mkdir(parents=True, exist_ok=True)
        remove_old_layout(self.cache_root)
        with self._locked():
            if not (self.cache / "objects").is_dir():
                self._init_cache()
            if not self._cached(sha):
                self._copy_objects(sha)
            self._point_ref(sha)
            self._merge_packs()

    def _cache_failure(self, lines: list[str], default: str) -> BuildError:
        return BuildError(f"Could not cache buildpack {self.value}: "
                          f"{(lines or [default])[-1].strip()}", phase="detect")

    def _point_ref(self, sha: str) -> None:
        """LATEST_REF at `sha`; any other ref (a ref per fetched commit, as earlier versions
        kept) is deleted."""
        lines: list[str] = []
        if self._root(["update-ref", LATEST_REF, sha], lines) != 0:
            raise self._cache_failure(lines, "git update-ref failed")
        refs: list[str] = []
        if self._root(["for-each-ref", "--format=%(refname)"], refs) != 0:
            raise self._cache_failure(refs, "git for-each-ref failed")
        for ref in (line.strip() for line in refs):
            if ref and ref != LATEST_REF and self._root(["update-ref", "-d", ref], lines) != 0:
                raise self._cache_failure(lines, "git update-ref -d failed")

    def _merge_packs(self) -> None:
        """One pack per fetch of a new commit adds up: past PACK_LIMIT they become one,
        unreachable objects included (never pruned, see `_store`)."""
        if len(list((self.cache / "objects" / "pack").glob("*.pack"))) <= PACK_LIMIT:
            return
        lines: list[str] = []
        if self._root(["-c", "repack.writeBitmaps=false", "repack", "-a", "-d", "-q",
                       "--keep-unreachable"], lines) != 0:
            raise self._cache_failure(lines, "git repack failed")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.cache.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= self.deadline:
                        raise BuildTimeout(f"Build timed out after {self.timeout_label}",
                                           phase="detect") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _init_cache(self) -> None:
        """Create the bare repository whole, then rename it in place."""
        fresh = Path(tempfile.mkdtemp(prefix=".init-", dir=self.cache_root))
        try:
            for argv in (["git", "init", "--quiet", "--bare", "--shared=0644", str(fresh)],
                         ["git", "-C", str(fresh), "config", "gc.auto", "0"]):
                lines: list[str] = []
                if run_streaming(argv, lines.append, self.deadline, "detect",
                                 env=self.root_env, timeout_label=self.timeout_label) != 0:
                    raise self._cache_failure(lines, "git init failed")
            os.chmod(fresh, 0o755)  # app uids read it as an alternate object store
            os.rename(fresh, self.cache)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)

    def _copy_objects(self, sha: str) -> None:
        """The app uid packs what its fetch brought (objects the cache lacks), root indexes
        that stream into the cache: root only ever reads bytes that git verifies."""
        pack = subprocess.Popen(self._app_argv(["-C", str(self.repo), "pack-objects",
                                                "--stdout", "--revs", "--local", "-q"]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=self._app_env(),
                                start_new_session=True)
        index = subprocess.Popen([*self.contain(), "git", "-C", str(self.cache), "index-pack",
                                  "--stdin"],
                                 stdin=pack.stdout, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=self.root_env,
                                 start_new_session=True)
        assert pack.stdin is not None and pack.stdout is not None
        pack.stdout.close()
        try:
            try:
                pack.stdin.write(f"{sha}\n".encode())
                pack.stdin.close()
            except BrokenPipeError:
                pass  # pack-objects already failed: its exit status says so below
            _, err = index.communicate(timeout=max(self.deadline - time.monotonic(), 0.1))
            pack.wait(timeout=max(self.deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise BuildTimeout(f"Build timed out after {self.timeout_label}",
                               phase="detect") from None
        finally:
            for proc in (pack, index):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if pack.returncode != 0 or index.returncode != 0 or not self._cached(sha):
            detail = (err.decode("utf-8", "replace").strip().splitlines()
                      or ["git index-pack failed"])[0]
            raise BuildError(f"Could not cache buildpack {self.value}: {detail}",
                             phase="detect")
