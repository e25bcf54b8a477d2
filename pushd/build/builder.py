"""BuildpackBuilder: the phases in order (fetch, detect, compile, release, slug) for one push.

Each phase lives in its own module; this one wires them, owns the build's folder and deadline,
and turns every failure into Heroku's ` !     ` lines plus one BuildError, leaving nothing
half-written behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..appfiles import app_subdir
from ..errors import BuildError
from ..models import App, Slug
from ..names import CONFIG_KEY_RE
from ..paths import Paths
from ..runtime import seccomp
from ..settings import Settings, app_uid
from .base import Output
from .buildpacks import Buildpack, BuildpackResolver, requested_buildpacks
from .compile import CompileFailed, compile_one
from .detect import detect as detect_one
from .detect import first_detected
from .fetch import export_tree
from .process import BuildTimeout, describe_seconds, run_streaming
from .release import process_types, run_release
from .sandbox import BuildSandbox
from .slug import make_slug, size_text


def default_bundled_dir() -> Path:
    """The buildpacks/ folder shipped next to the pushd package."""
    return Path(__file__).resolve().parents[2] / "buildpacks"


def _chown_tree(root: Path, uid: int) -> None:
    os.lchown(root, uid, uid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, uid)


def _as_uid(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--"]


class BuildpackBuilder:
    def __init__(self, settings: Settings, paths: Paths, bundled_dir: Path,
                 host_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.paths = paths
        self.bundled_dir = Path(bundled_dir)
        self.host_env = dict(os.environ if host_env is None else host_env)

    def build(self, app: App, commit: str, config: dict[str, str], out: Output) -> Slug:
        run = _BuildRun(self, app, commit, config, out)
        return run.execute()


class _BuildRun:
    """State of one build; thrown away when it ends."""

    def __init__(self, builder: BuildpackBuilder, app: App, commit: str,
                 config: dict[str, str], out: Output) -> None:
        self.settings, self.paths = builder.settings, builder.paths
        self.host_env = builder.host_env
        self.app, self.commit, self.config, self.out = app, commit, config, out
        self.uid = app_uid(self.settings, app.id)
        self.resolver = BuildpackResolver(builder.bundled_dir, self.paths.buildpack_cache,
                                          _as_uid(self.uid))
        self.deadline = time.monotonic() + self.settings.build_timeout
        self.timeout_label = describe_seconds(self.settings.build_timeout)
        self.phase = "fetch"
        self.name = ""  # the buildpack compiling now, for "failed to compile <Name> app"
        self.sandbox: BuildSandbox | None = None

    def execute(self) -> Slug:
        root: Path | None = None
        try:
            builds = app_subdir(self.paths.builds(self.app.id), "fetch")
            os.chmod(builds, 0o711)  # traversable to this build's root, never listable
            self._remove_leftovers(builds)
            root = Path(tempfile.mkdtemp(prefix="build-", dir=builds))
            os.chmod(root, 0o711)  # setpriv'd bwrap must traverse it to bind the pieces
            return self._phases(root)
        except BuildTimeout:
            self.out(f" !     Build timed out after {self.timeout_label} and was stopped.\n")
            raise BuildError(f"Build timed out after {self.timeout_label}",
                             phase=self.phase) from None
        except BuildError as err:
            if not isinstance(err, CompileFailed):
                self.out(f" !     {err}\n")
            if self.name:
                self.out(f" !     Push rejected, failed to compile {self.name} app.\n")
            else:
                self.out(" !     Push failed\n")
            raise
        finally:
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)

    def _remove_leftovers(self, builds: Path) -> None:
        """A daemon killed mid-build leaves its build dir; the caller holds the app's deploy
        lock, so nothing else is building this app and every leftover is stale."""
        for stale in builds.glob("build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        slugs = self.paths.slugs(self.app.id)
        if slugs.is_dir():
            for partial in slugs.glob(".*.tgz.partial"):
                partial.unlink(missing_ok=True)

    def _phases(self, root: Path) -> Slug:
        app_dir, env_dir, bp_root = root / "app", root / "env", root / "buildpacks"
        cache_dir = self.paths.cache(self.app.id)
        self.out(f"-----> Building on the {self.settings.stack} stack\n")
        app_dir.mkdir()
        export_tree(self.paths.repo(self.app.id), self.commit, app_dir)
        _chown_tree(app_dir, self.uid)
        self._write_env_dir(env_dir)
        app_subdir(cache_dir, "fetch")
        os.chown(cache_dir, self.uid, self.uid)
        os.chmod(cache_dir, 0o700)

        self.phase = "detect"
        refs, source = requested_buildpacks(self.config, app_dir, self.app.buildpacks)
        if refs:
            self._announce(refs, source)
            packs = [self.resolver.resolve(ref, self.out, self.deadline, self.timeout_label,
                                           root / "clones") for ref in refs]
        else:
            packs = self.resolver.bundled()
        copies = self._copy_buildpacks(packs, bp_root)
        self.sandbox = BuildSandbox(self.uid, app_dir, cache_dir, env_dir, tuple(copies),
                                    self.settings.stack, self.commit)
        chosen = self._detect(packs, explicit=bool(refs))

        self.phase = "compile"
        for position, (index, name) in enumerate(chosen):
            self.name = name
            self.out(f"-----> {name} app detected\n")
            earlier = [i for i, _ in chosen[:position]]
            status = compile_one(self._run, index, earlier, self.out)
            if status != 0:
                raise CompileFailed(f"bin/compile exited with status {status}",
                                    phase="compile")

        self.phase = "release"
        release = run_release(self._run, chosen[-1][0])
        types = process_types(app_dir, release, self.out)

        self.phase = "slug"
        slug_id = f"{int(time.time()):x}{secrets.token_hex(3)}"
        self.out("-----> Compressing...\n")
        files = make_slug(app_dir, self.paths.slugs(self.app.id), slug_id,
                          self.settings.slug_limit_mb)
        self.out(f"-----> Compiled slug size: {size_text(files.size)}\n")
        return Slug(id=slug_id, app_id=self.app.id, path=str(files.tarball),
                    dir=str(files.dir), size=files.size, commit=self.commit,
                    process_types=types, buildpack=chosen[-1][1], created_at=time.time())

    def _run(self, command: Sequence[str], extra_env: Mapping[str, str],
             on_line: Callable[[str], None]) -> int:
        assert self.sandbox is not None
        denylist = seccomp.program_fd()  # the sandbox's seccomp filter, read once by bwrap
        try:
            argv = self.sandbox.argv(command, extra_env, self.host_env, seccomp_fd=denylist)
            return run_streaming(argv, on_line, self.deadline, self.phase,
                                 timeout_label=self.timeout_label, pass_fds=(denylist,))
        finally:
            os.close(denylist)

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
        folder), made as the app uid so a path the app names is read with its rights only."""
        bp_root.mkdir()
        os.chown(bp_root, self.uid, self.uid)
        copies = []
        for index, pack in enumerate(packs):
            dest = bp_root / str(index)
            lines: list[str] = []
            argv = [*_as_uid(self.uid), "cp", "-RP", "--preserve=mode,timestamps",
                    "--", f"{pack.path}/.", str(dest)]
            dest.mkdir()
            os.chown(dest, self.uid, self.uid)
            if run_streaming(argv, lines.append, self.deadline, "detect",
                             timeout_label=self.timeout_label) != 0:
                detail = lines[-1].strip() if lines else ""
                raise BuildError(f"Could not read buildpack {pack.ref}: {detail}",
                                 phase="detect")
            copies.append(dest)
        return copies

    def _detect(self, packs: list[Buildpack], explicit: bool) -> list[tuple[int, str]]:
        if not explicit:
            found = first_detected(self._run, range(len(packs)))
            if found is None:
                raise BuildError("No default language could be detected for this app.",
                                 phase="detect")
            return [found]
        chosen = []
        for index, pack in enumerate(packs):
            name = detect_one(self._run, index)
            if name is None:
                raise BuildError(f"App not compatible with buildpack: {pack.ref}",
                                 phase="detect")
            chosen.append((index, name))
        return chosen
