"""BuildpackBuilder: the phases in order (fetch, detect, compile, release, slug) for one push.

Each phase lives in its own module; this one wires them, owns the build's folder and deadline,
and turns every failure into Heroku's ` !     ` lines plus one BuildError, leaving nothing
half-written behind.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .. import diskspace
from ..appfiles import app_subdir
from ..errors import BuildError
from ..models import App, Slug
from ..names import CONFIG_KEY_RE
from ..paths import Paths
from ..runtime.bwrap import Bind
from ..runtime.netns import NetnsError
from ..settings import Settings, app_uid
from . import submodules, unsupported
from .base import Output
from .buildpacks import BuildpackResolver, requested_buildpacks
from .cachefs import BuildCache, unmount
from .cgroup import BuildCgroup, BuildLimits, group_prefix, remove_stale
from .compile import CompileFailed, compile_chain
from .detect import first_detected
from .hostpaths import Buildpack, HostPaths
from .network import BuildNetwork
from .process import BuildTimeout, Collected, describe_seconds, run_streaming, run_to_file
from .release import process_types, run_release
from .runner import ContainerFactory, StepContainer
from .sandbox import APP_DIR, BuildSandbox
from .slug import make_slug, size_text
from .stackhint import StackWatch
from .steps import COPY_DIR, REPO_DIR, SOURCE_DIR, checkout_argv, copy_argv, read_small


def default_bundled_dir() -> Path:
    """The buildpacks/ folder shipped next to the pushd package."""
    return Path(__file__).resolve().parents[2] / "buildpacks"


class BuildpackBuilder:
    def __init__(self, settings: Settings, paths: Paths, bundled_dir: Path,
                 host_env: Mapping[str, str] | None = None,
                 containers: ContainerFactory | None = None) -> None:
        """`containers`: where the buildpacks' steps and the slug's tar run (the docker
        runtime's build container); None: in the bubblewrap sandbox."""
        self.settings = settings
        self.paths = paths
        self.bundled_dir = Path(bundled_dir)
        self.host_env = dict(os.environ if host_env is None else host_env)
        self.containers = containers

    def build(self, app: App, commit: str, config: dict[str, str], out: Output, *,
              admin: bool = False) -> Slug:
        """`admin`: the push came from an admin key, which may name any host folder as a
        buildpack; a user key only those under settings.allowed_buildpack_paths."""
        run = _BuildRun(self, app, commit, config, out, admin)
        return run.execute()


class _BuildRun:
    """State of one build; thrown away when it ends."""

    def __init__(self, builder: BuildpackBuilder, app: App, commit: str,
                 config: dict[str, str], out: Output, admin: bool) -> None:
        self.settings, self.paths = builder.settings, builder.paths
        self.host_env = builder.host_env
        self.containers = builder.containers
        self.container: StepContainer | None = None
        self.starting: threading.Thread | None = None  # the container's start, under way
        self.succeeded = False
        # every line passes through: a failed compile that named the stack gets a hint
        self.stack_watch = StackWatch(out, builder.settings.stack)
        self.app, self.commit, self.config, self.out = app, commit, config, self.stack_watch
        self.uid = app_uid(self.settings, app.id)
        self.resolver = BuildpackResolver(
            builder.bundled_dir, self.paths.buildpack_cache, self._git_argv,
            HostPaths(admin, self.settings.allowed_buildpack_paths),
            lambda: self.cgroup.enter_argv() if self.cgroup else [])
        self.deadline = time.monotonic() + self.settings.build_timeout
        self.timeout_label = describe_seconds(self.settings.build_timeout)
        self.phase = "fetch"
        self.name = ""  # the buildpack compiling now, for "failed to compile <Name> app"
        self.sandbox: BuildSandbox | None = None
        settings = self.settings
        self.limits = BuildLimits(settings.build_memory_mb, settings.build_pids_max,
                                  settings.build_cpu_percent)
        self.cgroup: BuildCgroup | None = None
        self.network = BuildNetwork(self.uid)
        self.cache = BuildCache(self.paths.app_dir(app.id), settings.build_cache_mb, self.uid)

    def execute(self) -> Slug:
        root: Path | None = None
        try:
            builds = app_subdir(self.paths.builds(self.app.id), "fetch")
            os.chmod(builds, 0o711)  # traversable to this build's root, never listable
            self._remove_leftovers(builds)
            root = Path(tempfile.mkdtemp(prefix="build-", dir=builds))
            os.chmod(root, 0o711)  # setpriv'd bwrap must traverse it to bind the pieces
            prefix = group_prefix(self.paths.root, self.app.id)
            remove_stale(prefix)
            self.cgroup = BuildCgroup(prefix + root.name[6:], self.limits)
            missing = self.cgroup.create()
            if missing:
                self.out(f" !     Warning: this host has no {', '.join(missing)} cgroup: the "
                         "build runs without that limit\n")
            try:
                offline = self.network.start(self.cgroup.enter_argv())
            except NetnsError as err:
                raise BuildError(f"Could not set up the build's network: {err}",
                                 phase="fetch") from None
            if offline:
                self.out(f" !     Warning: this build has no network access ({offline})\n")
            slug = self._phases(root)
            self.succeeded = True
            return slug
        except BuildTimeout:
            self.out(f" !     Build timed out after {self.timeout_label} and was stopped.\n")
            raise BuildError(f"Build timed out after {self.timeout_label}",
                             phase=self.phase) from None
        except BuildError as err:
            full = diskspace.full_at(root, str(err))  # a step that died of a full disk says so
            if full is not None:
                err = BuildError(str(full), phase=err.phase)
                err.__cause__ = full
            if full is not None or not isinstance(err, CompileFailed):
                self.out(f" !     {err}\n")
            hint = self.stack_watch.hint() if isinstance(err, CompileFailed) else None
            if hint:
                self.out(f" !     {hint}\n")
            if self.name:
                self.out(f" !     Push rejected, failed to compile {self.name} app.\n")
            else:
                self.out(" !     Push failed\n")
            raise err from err.__cause__
        finally:
            if self.starting is not None:
                self.starting.join()
            if self.container is not None:
                # after a success its removal need not hold the push up
                self.container.close(wait=not self.succeeded)
            self.network.stop()
            if self.cgroup is not None:
                self.cgroup.kill_all()
            self.cache.close(self.out)
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
            if self.cgroup is not None:
                self.cgroup.remove()

    def _remove_leftovers(self, builds: Path) -> None:
        """A daemon killed mid-build leaves its build dir; the caller holds the app's deploy
        lock, so nothing else is building this app and every leftover is stale."""
        for stale in builds.glob("build-*"):
            unmount(stale / "cache")
            shutil.rmtree(stale, ignore_errors=True)
        if self.containers is not None:  # before the cache is mounted again
            self.containers.clear(self.app.name, self.app.id)
        slugs = self.paths.slugs(self.app.id)
        if slugs.is_dir():
            for partial in slugs.glob(".*.tgz.partial"):
                partial.unlink(missing_ok=True)

    def _phases(self, root: Path) -> Slug:
        app_dir, env_dir, bp_root = root / "app", root / "env", root / "buildpacks"
        self.out(f"-----> Building on the {self.settings.stack} stack\n")
        app_dir.mkdir(mode=0o755)
        os.chown(app_dir, self.uid, self.uid)
        self._write_env_dir(env_dir)
        cache_dir = self.cache.open(root / "cache", self.out)
        bp_root.mkdir()
        os.chown(bp_root, self.uid, self.uid)
        self.sandbox = BuildSandbox(self.uid, app_dir, cache_dir, env_dir, (),
                                    self.settings.stack, self.commit, buildpacks_root=bp_root)
        started = self._start_container() if self.containers is not None else None
        self._checkout(app_dir)
        self._submodules(app_dir)

        self.phase = "detect"
        refs, source = requested_buildpacks(self.config, app_dir, self.app.buildpacks)
        if refs:
            self._announce(refs, source)
            packs = [self.resolver.resolve(ref, self.out, self.deadline, self.timeout_label,
                                           root / "clones") for ref in refs]
        else:
            packs = self.resolver.bundled()
        copies = self._copy_buildpacks(packs, bp_root)
        self.sandbox = dataclasses.replace(self.sandbox, buildpack_dirs=tuple(copies))
        if started is not None:
            started()
        detected = None if refs else self._detect(packs)
        chosen = compile_chain(self._run, [pack.ref for pack in packs], detected, self.out,
                               self._entering)

        self.phase = "release"
        release = run_release(self._run, chosen[-1][0])
        types = process_types(app_dir, release, self.out)

        self.phase = "slug"
        slug_id = f"{int(time.time()):x}{secrets.token_hex(3)}"
        self.out("-----> Compressing...\n")
        files = make_slug(app_dir, self.paths.slugs(self.app.id), slug_id,
                          self.settings.slug_limit_mb, self._compress, APP_DIR)
        self.out(f"-----> Compiled slug size: {size_text(files.size)}\n")
        return Slug(id=slug_id, app_id=self.app.id, path=str(files.tarball),
                    dir=str(files.dir), size=files.size, commit=self.commit,
                    process_types=types, buildpack=chosen[-1][1], created_at=time.time())

    def _start_container(self) -> Callable[[], None]:
        """Start the build's container on a thread (the engine takes a few hundred ms, about
        what the checkout and the buildpack copies take meanwhile, in folders it mounts);
        the call returned waits for it (its error raised) and attaches its network."""
        assert self.containers is not None and self.sandbox is not None
        container = self.container = self.containers(self.app.name, self.app.id,
                                                      self.sandbox)
        failed: list[BaseException] = []

        def start() -> None:
            try:
                container.start()
            except BaseException as err:  # raised again by ready()
                failed.append(err)

        self.starting = threading.Thread(target=start, name="build-container-start",
                                         daemon=True)
        self.starting.start()

        def ready() -> None:
            assert self.starting is not None
            self.starting.join()
            self.starting = None
            if failed:
                raise failed[0]
            offline = container.connect()
            if offline:
                self.out(f" !     Warning: this build has no network access ({offline})\n")

        return ready

    def _run(self, command: Sequence[str], extra_env: Mapping[str, str],
             on_line: Callable[[str], None]) -> int:
        """A buildpack's step (detect, compile, release) in the full build sandbox, or in
        the build's container."""
        assert self.sandbox is not None
        if self.container is not None:
            status = self.container.run(command, self.sandbox.env(self.host_env, extra_env),
                                        on_line, self.deadline, self.phase,
                                        self.timeout_label)
            self._check_limits(status)
            return status
        argv = self.sandbox.argv(command, extra_env, self.host_env)
        return self._limited(argv, on_line)

    def _step(self, command: Sequence[str], binds: Sequence[Bind],
              on_line: Callable[[str], None]) -> int:
        """A step that sees only `binds` (checkout, buildpack copy)."""
        assert self.sandbox is not None
        return self._limited(self.sandbox.step_argv(command, binds, host_env=self.host_env),
                             on_line)

    def _limited(self, argv: Sequence[str], on_line: Callable[[str], None]) -> int:
        assert self.cgroup is not None
        status = run_streaming([*self._enter(), *argv], on_line, self.deadline,
                               self.phase, timeout_label=self.timeout_label)
        self._check_limits(status)
        return status

    def _enter(self) -> list[str]:
        """What every step starts with (as root): into the build's cgroup and network."""
        assert self.cgroup is not None
        return [*self.cgroup.enter_argv(), *self.network.enter_argv()]

    def _check_limits(self, status: int) -> None:
        limited = self.container if self.container is not None else self.cgroup
        assert limited is not None
        if limited.oom_killed():
            raise BuildError(f"Build exceeded its memory limit of {self.limits.memory_mb} MB "
                             "and was stopped", phase=self.phase)
        if status != 0 and limited.pids_exhausted():
            raise BuildError(f"Build reached its limit of {self.limits.pids_max} processes",
                             phase=self.phase)

    def _git_argv(self, argv: list[str], binds: Sequence[Bind]) -> list[str]:
        """A git step of a buildpack fetch: in the cgroup and a sandbox showing only `binds`;
        the environment is the one run_streaming gives it."""
        assert self.sandbox is not None and self.cgroup is not None
        return [*self._enter(), *self.sandbox.step_argv(argv, binds, env=False)]

    def _compress(self, command: Sequence[str], fd: int, limit: int) -> tuple[int, int]:
        assert self.sandbox is not None and self.cgroup is not None
        lines = Collected()
        if self.container is not None:
            status, size = self.container.to_file(command, self.sandbox.env(self.host_env),
                                                  fd, limit, lines.append, self.deadline,
                                                  "slug", self.timeout_label)
        else:
            argv = self.sandbox.step_argv(command,
                                          [Bind(str(self.sandbox.build_dir), APP_DIR)],
                                          host_env=self.host_env)
            status, size = run_to_file([*self._enter(), *argv], fd, limit,
                                       lines.append, self.deadline, "slug", self.timeout_label)
        if status >= 0:
            self._check_limits(status)
        if status > 0:
            detail = (lines.lines or ["?"])[-1].strip()
            raise BuildError(f"Could not compress the slug: {detail}", phase="slug")
        return status, size

    def _checkout(self, app_dir: Path) -> None:
        """The pushed commit's files in /app, written by the app's uid in the sandbox. The
        bare repo is root's and readable by the app's group (appfiles.ensure_repo)."""
        lines = Collected()
        binds = [Bind(str(self.paths.repo(self.app.id)), REPO_DIR),
                 Bind(str(app_dir), APP_DIR, writable=True)]
        if self._step(checkout_argv(self.commit), binds, lines.append) != 0:
            said = [line.strip() for line in lines.lines if line.strip()]
            raise BuildError(f"Could not check out {self.commit[:7]}: "
                             f"{said[-1] if said else 'git archive failed'}", phase="fetch")

    def _submodules(self, app_dir: Path) -> None:
        """The commit's submodules checked out into the build (`submodules.py`)."""
        gitmodules = read_small(app_dir / ".gitmodules", "fetch")
        if gitmodules is None:
            return
        subs = submodules.plan(gitmodules,
                               submodules.gitlinks(self.paths.repo(self.app.id), self.commit))
        submodules.check_out(subs, self._step, app_dir, self.resolver.host_paths,
                             self.paths.root, self.out)

    def _announce(self, refs: list[str], source: str) -> None:
        if len(refs) == 1:
            self.out(f"-----> Using buildpack: {refs[0]} (from {source})\n")
            return
        self.out(f"-----> Using buildpacks (from {source}):\n")
        for number, ref in enumerate(refs, start=1):
            self.out(f"       {number}. {ref}\n")

    def _write_env_dir(self, env_dir: Path) -> None:
        """One file per config var: the classic ENV_DIR, readable only by the app's uid."""
        env_dir.mkdir(mode=0o700)
        for key, value in self.config.items():
            if not CONFIG_KEY_RE.fullmatch(key):
                continue  # the store validates keys; never let one become a path anyway
            fd = os.open(env_dir / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
            os.chown(env_dir / key, self.uid, self.uid)
        os.chown(env_dir, self.uid, self.uid)

    def _copy_buildpacks(self, packs: list[Buildpack], bp_root: Path) -> list[Path]:
        """Writable per-build copies (buildpacks write `export` and scratch files in their own
        folder), made in the sandbox as the app uid: the source is the only host folder it
        sees, so a symlink in it (or swapped in while it is read) leads nowhere else."""
        copies, binds = [], []
        for index, pack in enumerate(packs):
            dest = bp_root / str(index)
            dest.mkdir()
            os.chown(dest, self.uid, self.uid)
            binds += [Bind(str(pack.path), f"{SOURCE_DIR}/{index}"),
                      Bind(str(dest), f"{COPY_DIR}/{index}", writable=True)]
            copies.append(dest)
        lines = Collected()
        if self._step(copy_argv([pack.identity for pack in packs]), binds, lines.append):
            said = [line.strip() for line in lines.lines if line.strip()]
            index, _, detail = (said[-1] if said else "0: cannot be read").partition(": ")
            ref = packs[int(index)].ref if index.isdigit() and int(index) < len(packs) else ""
            cause = next((line for line in said if line.startswith("cp: ")), detail)
            raise BuildError(f"Invalid buildpack {ref!r}: {cause}", phase="detect")
        return copies

    def _entering(self, phase: str, name: str) -> None:
        self.phase, self.name = phase, name

    def _detect(self, packs: list[Buildpack]) -> tuple[int, str]:
        """Automatic detection over the bundled buildpacks: the first that accepts; a
        repository of a language no bundled buildpack supports is refused naming it."""
        found = first_detected(self._run, range(len(packs)))
        assert self.sandbox is not None
        refused = unsupported.refusal(self.sandbox.build_dir, found and found[1])
        if refused:
            raise BuildError(refused, phase="detect")
        if found is None:
            raise BuildError("No default language could be detected for this app.",
                             phase="detect")
        return found
