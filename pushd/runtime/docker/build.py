"""Builds in a throwaway container of the stack image (the docker runtime's build steps).

The BuildpackBuilder prepares the build's folders on the host as it does for the sandbox
(checkout, buildpack fetch and copies, all as the app's uid in bubblewrap); `ContainerSteps`
then runs what the buildpacks do (bin/detect, bin/compile, bin/release) and the slug's tar in
one container of `pushd/stack:<stack>` made for this build:

- the same mounts as the sandbox: the app at /app, the cache at /cache, ENV_DIR at /env
  (read-only), the buildpack copies at /buildpacks/N; nothing else of the host but its CA
  bundle (the host's trust for package registries, as the sandbox has it through /etc);
- the app's uid, every capability dropped, no-new-privileges, `--init`;
- `network_mode="none"` plus pasta attached to the container's namespace as the app's uid
  (`runtime.netns.attach`): outbound only, no host loopback, never the docker bridge;
- the build's memory, swap, pids and CPU limits on the container;
- each step a `docker exec` whose output is streamed line by line as it arrives; past the
  build's deadline the container is killed (the step's processes with it).

`container_kwargs` and `exec_kwargs` build the engine's arguments (data only); the class runs
them. The container is labelled (`labels.build_labels`) so `pushd gc` finds one a crashed
daemon left.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import select
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...build.process import BuildTimeout, LineSplitter, Reader, stdout_to_file
from ...build.runner import ContainerFactory
from ...build.sandbox import (
    APP_DIR,
    BUILDPACKS_DIR,
    CACHE_DIR,
    ENV_DIR,
    BuildSandbox,
    buildpack_mount,
)
from ...cgroups import counter_seen
from ...errors import BuildError
from ..netns import Attachment, NetnsError, attach, detach
from .client import connect
from .labels import APP, build_labels

log = logging.getLogger("pushd.docker")

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CGROUP_ROOT = Path("/sys/fs/cgroup")
STOPPED_WAIT = 10.0  # seconds to wait for a killed container to be reported stopped
HEADER = struct.Struct(">BxxxI")  # the engine's multiplexed stream: stream id, length


def container_name(app: str) -> str:
    return f"pushd.{app}.build.{secrets.token_hex(3)}"


def container_kwargs(image: str, app: str, sandbox: BuildSandbox, labels: Mapping[str, str],
                     memory_mb: int, cpu_percent: int, pids_max: int,
                     ca_bundle: str | None = CA_BUNDLE) -> dict[str, Any]:
    """`containers.create` arguments of a build container (it idles until killed; the
    steps are execs in it)."""
    mounts = {str(sandbox.build_dir): {"bind": APP_DIR, "mode": "rw"},
              str(sandbox.cache_dir): {"bind": CACHE_DIR, "mode": "rw"},
              str(sandbox.env_dir): {"bind": ENV_DIR, "mode": "ro"}}
    if sandbox.buildpacks_root is not None:
        mounts[str(sandbox.buildpacks_root)] = {"bind": BUILDPACKS_DIR, "mode": "rw"}
    else:
        for index, path in enumerate(sandbox.buildpack_dirs):
            mounts[str(path)] = {"bind": buildpack_mount(index), "mode": "rw"}
    if ca_bundle and os.path.isfile(ca_bundle):
        mounts[ca_bundle] = {"bind": CA_BUNDLE, "mode": "ro"}
    memory = f"{memory_mb}m"
    return {
        "image": image, "command": ["sleep", "infinity"], "name": container_name(app),
        "user": f"{sandbox.uid}:{sandbox.uid}", "working_dir": APP_DIR,
        "hostname": "pushd-build", "labels": dict(labels), "volumes": mounts,
        "network_mode": "none", "init": True, "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"], "mem_limit": memory, "memswap_limit": memory,
        "pids_limit": pids_max, "nano_cpus": cpu_percent * 10_000_000,
        "environment": {"STACK": sandbox.stack}, "detach": True,
    }


def exec_kwargs(uid: int, command: Sequence[str], env: Mapping[str, str],
                workdir: str = APP_DIR) -> dict[str, Any]:
    """`api.exec_create` arguments of one step (the environment travels in the request,
    never on a command line)."""
    return {"cmd": list(command), "environment": dict(env), "workdir": workdir,
            "user": f"{uid}:{uid}", "stdout": True, "stderr": True, "stdin": False,
            "tty": False}


class ContainerSteps:
    """One build's container: `start`, then `run`/`to_file` per step, `close` at the end."""

    def __init__(self, client: Any, image: str, app: str, sandbox: BuildSandbox,
                 labels: Mapping[str, str], memory_mb: int, cpu_percent: int,
                 pids_max: int) -> None:
        self.client = client
        self.sandbox = sandbox
        self.kwargs = container_kwargs(image, app, sandbox, labels, memory_mb, cpu_percent,
                                       pids_max)
        self.container: Any = None
        self.pasta: Attachment | None = None
        self.killed = False

    def start(self) -> None:
        """Make and start the container (the builder calls this on a thread of its own:
        the engine takes a few hundred ms)."""
        import docker.errors

        try:
            self.container = self.client.containers.create(**self.kwargs)
            self.container.start()
            self.container.reload()
        except docker.errors.ImageNotFound:
            raise BuildError(f"The stack image {self.kwargs['image']} is missing: run "
                             "`pushd stack:build`", phase="detect") from None
        except docker.errors.DockerException as err:
            raise BuildError(f"Could not start the build container: {_first_line(err)}",
                             phase="detect") from None

    def connect(self) -> str | None:
        """Attach its network (on the build's own thread: pasta dies with the thread that
        started it). None when it has outbound access, else why not (the build then runs
        offline)."""
        assert self.container is not None
        try:
            self.pasta = attach(self.container.attrs["State"]["Pid"], self.sandbox.uid)
        except NetnsError as err:
            return str(err)
        return None

    def run(self, command: Sequence[str], env: Mapping[str, str], on_line: Callable[[str], None],
            deadline: float, phase: str, timeout_label: str) -> int:
        """Exit status of `command` in the container; stdout and stderr merged, line by line
        as they come."""
        lines = LineSplitter(on_line)
        status = self._exec(command, env, {1: lines.feed, 2: lines.feed}, deadline, phase,
                            timeout_label)
        lines.close()
        assert status is not None
        return status

    def to_file(self, command: Sequence[str], env: Mapping[str, str], fd: int, limit: int,
                on_line: Callable[[str], None], deadline: float, phase: str,
                timeout_label: str) -> tuple[int, int]:
        """stdout into `fd`, stderr to on_line; past `limit` bytes the container is killed
        and (-1, bytes so far) returned: nothing past the limit reaches the disk."""
        return stdout_to_file(fd, limit, on_line, lambda out, err: self._exec(
            command, env, {1: out, 2: err}, deadline, phase, timeout_label))

    def _exec(self, command: Sequence[str], env: Mapping[str, str],
              readers: Mapping[int, Reader], deadline: float,
              phase: str, timeout_label: str) -> int | None:
        """Run one exec, handing each frame's bytes to the reader of its stream (1 stdout,
        2 stderr); a reader returning True stops the build (None returned)."""
        api = self.client.api
        exec_id = api.exec_create(self.container.id,
                                  **exec_kwargs(self.sandbox.uid, command, env))["Id"]
        sock = api.exec_start(exec_id, socket=True)
        pending = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase)
                ready, _, _ = select.select([sock], [], [], min(remaining, 1.0))
                if not ready:
                    continue
                chunk = sock.read(65536)
                if not chunk:
                    break
                pending += chunk
                while len(pending) >= HEADER.size:
                    stream, size = HEADER.unpack_from(pending)
                    if len(pending) < HEADER.size + size:
                        break
                    data = pending[HEADER.size:HEADER.size + size]
                    pending = pending[HEADER.size + size:]
                    reader = readers.get(stream)
                    if reader is not None and reader(data):
                        self.kill()
                        return None
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        if self.killed:  # killed under us (the deadline passed in another exec's wait)
            raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase)
        return self._exit_code(exec_id, deadline, phase, timeout_label)

    def _exit_code(self, exec_id: str, deadline: float, phase: str, timeout_label: str) -> int:
        """The exec's exit code: its output ended, the engine records the exit just after."""
        while True:
            info = self.client.api.exec_inspect(exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return 1 if code is None else int(code)
            if time.monotonic() >= deadline:
                self.kill()
                raise BuildTimeout(f"Build timed out after {timeout_label}", phase=phase)
            time.sleep(0.01)

    def kill(self) -> None:
        """Stop the build: SIGKILL to the container, every process of every step with it."""
        import docker.errors

        self.killed = True
        if self.container is None:
            return
        with contextlib.suppress(docker.errors.DockerException):
            self.container.kill()
        with contextlib.suppress(docker.errors.DockerException, Exception):
            self.client.api.wait(self.container.id, timeout=STOPPED_WAIT)

    def _cgroup(self, controller: str) -> Path | None:
        if self.container is None:
            return None
        parent = self.container.attrs.get("HostConfig", {}).get("CgroupParent") or "docker"
        group = CGROUP_ROOT / controller / parent.strip("/") / self.container.id
        return group if group.is_dir() else None

    def oom_killed(self) -> bool:
        """A process of the build was killed for memory (the engine's `OOMKilled` only
        covers the container's first process, not an exec's)."""
        group = self._cgroup("memory")
        return group is not None and counter_seen(group / "memory.oom_control", "oom_kill")

    def pids_exhausted(self) -> bool:
        group = self._cgroup("pids")
        return group is not None and counter_seen(group / "pids.events", "max")

    def close(self, wait: bool = True) -> None:
        """Remove the container (killed first) and stop its pasta; nothing of it is left.
        `wait=False`: done on a thread (a few hundred ms the push need not wait for; the
        container keeps its build labels, so the app's next build (`BuildContainers.clear`)
        or `pushd gc` removes it if this process dies first)."""
        pasta, container = self.pasta, self.container
        self.pasta = self.container = None
        if wait:
            _remove(self.client, pasta, container)
        else:
            threading.Thread(target=_remove, args=(self.client, pasta, container),
                             name="build-container-removal", daemon=True).start()


def _remove(client: Any, pasta: Attachment | None, container: Any) -> None:
    import docker.errors

    detach(pasta)
    if container is not None:
        try:
            remove_container(client, container.id)
        except docker.errors.DockerException as err:
            log.warning("build container %s not removed: %s", container.name, _first_line(err))


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


class BuildContainers:
    """What the BuildpackBuilder calls for the container of each build (`settings`: the
    platform's); one client of the engine, reached on first use."""

    def __init__(self, settings: Any, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(functools.partial(BuildError, phase="detect"))
        return self._client

    def __call__(self, app: str, app_id: int, sandbox: BuildSandbox) -> ContainerSteps:
        from ... import stack

        settings = self.settings
        return ContainerSteps(self.client, stack.image_name(settings.stack), app, sandbox,
                              build_labels(settings.state_dir, app, app_id),
                              settings.build_memory_mb, settings.build_cpu_percent,
                              settings.build_pids_max)

    def clear(self, app: str, app_id: int) -> None:
        """Build containers of this app still there: the last one's removal, on its way
        since its push ended, or one a killed daemon left (the caller holds the app's deploy
        lock: none of them is building)."""
        import docker.errors

        wanted = [f"{key}={value}" for key, value in
                  build_labels(self.settings.state_dir, app, app_id).items() if key != APP]
        try:
            for stale in self.client.containers.list(all=True, filters={"label": wanted}):
                remove_container(self.client, stale.id)
        except docker.errors.DockerException as err:
            raise BuildError(f"Could not remove an earlier build container: {_first_line(err)}",
                             phase="fetch") from None


def remove_container(client: Any, container_id: str) -> None:
    """Kill and remove a container; one already gone, or being removed by another caller,
    is no error."""
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        if err.status_code != 409:  # 409: its removal is already in progress
            raise
        import requests.exceptions

        with contextlib.suppress(docker.errors.NotFound, requests.exceptions.RequestException):
            client.api.wait(container_id, timeout=STOPPED_WAIT, condition="removed")


def container_steps(settings: Any, client: Any | None = None) -> ContainerFactory:
    """The build containers of a platform (`settings`), as the BuildpackBuilder takes them."""
    return BuildContainers(settings, client)
