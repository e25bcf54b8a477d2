"""Dockerfile deploys: a pushed repo with a `Dockerfile` at its root and no buildpack asked
for is built with `docker build` (the SDK's low-level `APIClient.build`, streamed), into the
release image `pushd/<app>:v<N>`.

Builders of data (`wants_dockerfile`, `build_kwargs`, `image_process_types`,
`exposed_port`) decide and run nothing; `DockerfileBuilder` runs the build and
`ChoosingBuilder` sends each push to it or to the buildpack builder.

The build is bounded like a buildpack build: the build context (`git archive` of the commit)
stops at `slug_limit_mb`; the build's network is a namespace of its own with pasta attached
(`dockerfile_network.py`: outbound access, never the host's loopback, network or the docker
bridge), or none at all; its steps get the build memory limit; config vars never become build
args; and at `build_timeout` the step running is killed and the build dropped.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import BuildError
from ..models import App, Slug
from ..paths import Paths
from ..procfile import parse_procfile
from ..runtime.docker import labels as lbl
from ..runtime.docker.client import connect
from ..settings import Settings, app_uid
from ..stack import image_name as stack_image
from .base import Builder, Output
from .buildpacks import parse_buildpacks_file
from .cancel import stoppable
from .dockerfile_network import BuildNamespace
from .process import BuildTimeout, Collected, describe_seconds, run_to_file
from .slug import size_text
from .steps import SHA_RE

DOCKERFILE = "Dockerfile"
REPOSITORY = "pushd"  # images are pushd/<app>:v<N>
BUILDER_NAME = "Dockerfile"  # Slug.buildpack of a Dockerfile release
SANDBOX_REFUSAL = ("This app has a Dockerfile; Dockerfile deploys need the docker runtime "
                   "(pushd up --runtime docker)")
RUNNING_RE = re.compile(r"---> Running in ([0-9a-f]{12,64})")
COLOUR_RE = re.compile(r"\x1b\[[0-9;]*m")  # the engine paints a step's stderr red

# a top-level file of one commit: its bytes if it is a regular file (of at most 1 MB)
TreeFile = Callable[[str], "bytes | None"]
CommitFiles = Callable[[int, str], TreeFile]  # (app id, commit) -> its TreeFile
EngineFactory = Callable[[], Any]  # -> a docker.DockerClient (its .api streams builds)


def image_tag(app: str, version: int) -> str:
    return f"{REPOSITORY}/{app}:v{version}"


def wants_dockerfile(read: TreeFile, config: Mapping[str, str],
                     app_buildpacks: Sequence[str]) -> bool:
    """A Dockerfile at the root and no buildpack asked for, in the buildpack builder's own
    precedence (BUILDPACK_URL, a non-empty `.buildpacks`, buildpacks:set): then the
    Dockerfile builds the app, as on Dokku."""
    if read(DOCKERFILE) is None:
        return False
    if config.get("BUILDPACK_URL", "").strip() or app_buildpacks:
        return False
    listing = read(".buildpacks")
    return not (listing is not None and parse_buildpacks_file(
        listing.decode("utf-8", "replace")))


def build_labels(app: App, version: int, slug_id: str, settings: Settings) -> dict[str, str]:
    """The docker runtime's labels (`runtime/docker/labels.py`: which pushd instance made
    it, for gc and `apps:destroy`), and the slug record it was built for."""
    return {**lbl.app_labels(settings.state_dir, app.name, app.id),
            lbl.RELEASE: str(version), lbl.SLUG: slug_id}


def build_kwargs(context: Any, tag: str, app: App, version: int, slug_id: str,
                 settings: Settings, network_mode: str = "none") -> dict[str, Any]:
    """Arguments of `APIClient.build` for one push. No `buildargs`: config vars reach the
    dynos through their environment, never an image layer."""
    memory = settings.build_memory_mb * 1024 * 1024
    return {
        "fileobj": context, "custom_context": True, "tag": tag, "decode": True,
        "labels": build_labels(app, version, slug_id, settings),
        # never the host's network nor the bridge: none, or the build's own namespace
        # (a holder container's, pasta attached: dockerfile_network.py)
        "network_mode": network_mode,
        "pull": False,  # no registry: FROM names a local image (pushd/stack:pushd-22)
        "rm": True, "forcerm": True,  # no step containers left behind, failed or not
        "container_limits": {"memory": memory, "memswap": memory},
        # the HTTP read timeout only backs up the deadline (a step that prints nothing)
        "timeout": int(settings.build_timeout) + 60,
    }


def image_process_types(config: Mapping[str, Any], procfile: str | None) -> dict[str, str]:
    """Procfile entries win; without a Procfile `web` web is the image's ENTRYPOINT + CMD
    (as one shell-quoted command line, run as it is)."""
    declared = parse_procfile(procfile) if procfile is not None else {}
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if "web" not in declared and argv:
        return {"web": shlex.join(argv), **declared}
    return declared


def exposed_port(config: Mapping[str, Any]) -> int:
    """The lowest TCP port the image EXPOSEs (the dyno's $PORT then), or 0 for none."""
    ports = []
    for spec in config.get("ExposedPorts") or {}:
        number, _, proto = str(spec).partition("/")
        if number.isdigit() and proto in ("", "tcp") and 0 < int(number) < 65536:
            ports.append(int(number))
    return min(ports, default=0)


def one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:limit]


class DockerfileBuilder:
    def __init__(self, settings: Settings, paths: Paths, engine: EngineFactory,
                 files: CommitFiles, next_version: Callable[[int], int]) -> None:
        self.settings, self.paths = settings, paths
        self.engine, self.files, self.next_version = engine, files, next_version

    def build(self, app: App, commit: str, config: dict[str, str], out: Output, *,
              admin: bool = False) -> Slug:
        """`config` is not used: config vars are never part of an image."""
        try:
            return self._build(app, commit, out)
        except BuildTimeout:
            label = describe_seconds(self.settings.build_timeout)
            out(f" !     Build timed out after {label} and was stopped.\n")
            raise BuildError(f"Build timed out after {label}", phase="compile") from None
        except BuildError as err:
            out(f" !     Push rejected, {err}\n")
            raise

    def _build(self, app: App, commit: str, out: Output) -> Slug:
        if not SHA_RE.match(commit):
            raise BuildError(f"commit {commit[:40]} not found", phase="fetch")
        deadline = time.monotonic() + self.settings.build_timeout
        version = self.next_version(app.id)
        tag = image_tag(app.name, version)
        slug_id = f"{int(time.time()):x}{os.urandom(3).hex()}"
        out("-----> Building from Dockerfile\n")
        with tempfile.TemporaryFile(dir=self.paths.root) as context:
            self._context(app, commit, context.fileno(), deadline)
            context.seek(0)
            client = self.engine()
            network = BuildNamespace(client, app_uid(self.settings, app.id),
                                     stack_image(self.settings.stack),
                                     build_labels(app, version, slug_id, self.settings))
            try:
                mode, offline = network.start()
                if offline:
                    out(f" !     Warning: this build has no network access ({offline})\n")
                stream = _Stream(client.api, out, deadline)
                with stoppable(app.id, stream.stop):  # builds:cancel kills its step
                    image_id = stream.run(
                        build_kwargs(context, tag, app, version, slug_id, self.settings, mode))
                attrs = client.api.inspect_image(image_id)
            except (BuildError, BuildTimeout):
                raise
            except Exception as err:  # the engine's own errors (docker.errors.*): one line
                raise BuildError(f"docker build failed: {one_line(str(err))}") from None
            finally:
                network.stop()
                client.close()
        image_config = attrs.get("Config") or {}
        procfile = self.files(app.id, commit)("Procfile")
        out("-----> Discovering process types\n")
        types = image_process_types(image_config, None if procfile is None else
                                    procfile.decode("utf-8", "replace"))
        if procfile is not None:
            out(f"       Procfile declares types -> {', '.join(types) or '(none)'}\n")
        elif types:
            out(f"       Default types for Dockerfile -> web ({types['web']})\n")
        if not types:
            raise BuildError("the Dockerfile has no CMD and there is no Procfile: nothing "
                             "to run", phase="release")
        port = exposed_port(image_config)
        size = int(attrs.get("Size") or 0)
        out(f"-----> Image {tag} ({size_text(size)})"
            f"{f', web listens on EXPOSEd port {port}' if port else ''}\n")
        return Slug(id=slug_id, app_id=app.id, path="",
                    dir="", size=size, commit=commit, process_types=types,
                    buildpack=BUILDER_NAME, created_at=time.time(),
                    image=str(attrs.get("Id") or image_id), port=port)  # the id: tags move

    def _context(self, app: App, commit: str, fd: int, deadline: float) -> None:
        """The commit's tree as a tar (the build context), stopped at slug_limit_mb."""
        limit = self.settings.slug_limit_mb
        lines = Collected()
        argv = ["git", "-c", "safe.directory=*", "--git-dir", str(self.paths.repo(app.id)),
                "archive", "--format=tar", commit]
        status, _ = run_to_file(argv, fd, limit * 1024 * 1024, lines.append, deadline,
                                "fetch", describe_seconds(self.settings.build_timeout))
        if status < 0:
            raise BuildError(f"the build context is larger than {limit}M (max is {limit}M)",
                             phase="fetch")
        if status > 0:
            raise BuildError(f"could not read commit {commit[:7]}: "
                             f"{one_line(''.join(lines.lines))}", phase="fetch")


class _Stream:
    """One `docker build`: its output line by line to `out`, live; past the deadline the
    step container running is killed (a quiet `RUN sleep` would block the stream) and the
    stream dropped, which the engine takes as a cancel."""

    def __init__(self, api: Any, out: Output, deadline: float) -> None:
        self.api, self.out, self.deadline = api, out, deadline
        self.step: str | None = None
        self.timed_out = False
        self.pending = ""

    def run(self, kwargs: dict[str, Any]) -> str:
        done = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(done,), daemon=True)
        watchdog.start()
        image_id = ""
        try:
            for item in self.api.build(**kwargs):
                if self.timed_out or time.monotonic() >= self.deadline:
                    raise BuildTimeout("compile")
                if "error" in item:
                    self._flush()
                    raise BuildError(f"docker build failed: {one_line(item['error'])}")
                image_id = (item.get("aux") or {}).get("ID", image_id)
                self._feed(str(item.get("stream", "")))
        except BuildError:
            raise
        except Exception as err:  # the engine's errors, a dropped stream: one line
            if self.timed_out:
                raise BuildTimeout("compile") from None
            raise BuildError(f"docker build failed: {one_line(str(err))}") from None
        finally:
            done.set()
        if self.timed_out:
            raise BuildTimeout("compile")
        self._flush()
        if not image_id:
            raise BuildError("docker build failed: the engine named no image")
        return image_id

    def _feed(self, text: str) -> None:
        self.pending += COLOUR_RE.sub("", text)
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            found = RUNNING_RE.search(line)
            if found:
                self.step = found.group(1)
            if line.strip():
                self.out(f"       {line.rstrip()}\n")

    def _flush(self) -> None:
        if self.pending.strip():
            self.out(f"       {self.pending.rstrip()}\n")
        self.pending = ""

    def stop(self) -> None:
        """builds:cancel: kill the step container running (the engine fails the build)."""
        if self.step:
            try:
                self.api.kill(self.step)
            except Exception:  # noqa: BLE001  (already gone)
                pass

    def _watch(self, done: threading.Event) -> None:
        if done.wait(max(0.0, self.deadline - time.monotonic())):
            return
        self.timed_out = True
        self.stop()


class ChoosingBuilder:
    """The builder a platform uses: each push goes to the Dockerfile builder when the
    commit has a Dockerfile and no buildpack is asked for, else to the buildpack builder.
    With a runtime that runs no images such a push is refused in one line."""

    def __init__(self, buildpacks: Builder, dockerfile: DockerfileBuilder, runs_images: bool,
                 files: CommitFiles) -> None:
        self.buildpacks, self.dockerfile = buildpacks, dockerfile
        self.runs_images, self.files = runs_images, files

    def build(self, app: App, commit: str, config: dict[str, str], out: Output, *,
              admin: bool = False) -> Slug:
        if not wants_dockerfile(self.files(app.id, commit), config, app.buildpacks):
            return self.buildpacks.build(app, commit, config, out, admin=admin)
        if not self.runs_images:
            out(f" !     {SANDBOX_REFUSAL}\n")
            raise BuildError(SANDBOX_REFUSAL, phase="detect")
        return self.dockerfile.build(app, commit, config, out, admin=admin)


def repo_files(repo_path: Callable[[int], Path]) -> CommitFiles:
    """Top-level regular files of a commit of an app's bare repository (read by dulwich:
    git objects only, no checkout, nothing of the tenant's runs)."""
    from dulwich.repo import Repo

    from ..governance.enforce import tree_file

    def files(app_id: int, commit: str) -> TreeFile:
        def read(name: str) -> bytes | None:
            path = repo_path(app_id)
            if not path.is_dir():
                return None
            repo = Repo(str(path))
            try:
                return tree_file(repo, commit, name)
            finally:
                repo.close()
        return read

    return files


def docker_client() -> Any:
    """A client of the local engine (`runtime/docker/client.connect`); builds stream through
    its low-level `.api`."""
    return connect(functools.partial(BuildError, phase="fetch"))
