"""The docker runtime: one container per dyno, from the release image `pushd/<app>:v<N>`
(`images.py`), made as `container.py` says (init, the app's uid, no capabilities, a
read-only root with `/app` and `/tmp` writable, limits, `network_mode="none"`), with pasta
attached from the host (`network.py`) and its output followed into the app log
(`logcollect.py`).

start() returns at once (`launching.py`): the container is launched (release image, create,
start, pasta) by a process of its own, so the supervisor's loop never waits on the engine;
until it runs the dyno is reported running without a pid, and a launch that fails is
reported exited (255) with its reason. This module reports, stops and removes dynos.

What the daemon must find again after a restart lives in the engine (the containers, by the
labels of this state dir, and their output) and in one small state file per dyno under
`<state>/docker/dynos/` (`launching.py`'s: its spec, endpoint, pasta, when a stop was
asked). stop() is the engine's own: SIGTERM, SIGKILL after the timeout, carried out by the
engine even if the daemon dies meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...cgroups import memory_use
from ...files import FileLock
from ...logs import AppLog
from ...paths import Paths
from ...procs import owner_alive, owner_token
from ...settings import Settings
from .. import egress, shimbin
from ..base import register
from ..endpoints import HostEndpoints
from ..netns import NetnsError, listening
from ..records import DynoInfo, DynoSpec, Endpoint, MemoryUse, OneOffIO
from . import network
from .client import (
    ID,
    INSTANCE,
    ONEOFF,
    connect,
    docker_time,
    instance_id,
    request_stop,
)
from .forkserver import ForkServer
from .hooks import DockerSupport
from .launching import Launching
from .logcollect import Collectors, read_cursor

log = logging.getLogger("pushd.docker")

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")  # the engine's groups (cgroupfs, v1)
LAUNCH_GRACE = 30.0  # a state file without its container yet is still starting this long
DRAIN_TIMEOUT = 5.0  # for a follower to copy an exited container's last lines
KILL_TIMEOUT_SLACK = 0.5


@register("docker", support=DockerSupport)
class DockerRuntime(Launching):
    name = "docker"

    def __init__(self, settings: Settings, paths: Paths) -> None:
        self.settings = settings
        self.paths = paths
        self.instance = instance_id(paths.root)
        self.state_dir = paths.root / "docker" / "dynos"
        self.endpoints = HostEndpoints(settings)  # ports from port_range, the firewall's pairs
        self._client: Any = None
        self._collectors: Collectors | None = None
        self._lock = threading.Lock()
        # read-modify-write of the state files, by the daemon and its launcher processes
        self._state_lock = FileLock(self.state_dir / ".lock")
        self._launching: set[str] = set()
        self._launcher: ForkServer | None = None
        self.on_change: Callable[[], None] | None = None  # the supervisor's wake

    # the engine, connected on first use (a CLI that never touches a dyno needs none)
    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                # a streaming connection per followed container: all kept in the pool
                self._client = connect(timeout=120, max_pool_size=1024)
                self._collectors = Collectors(self._client.api)
        return self._client

    @property
    def collectors(self) -> Collectors:
        self.client  # noqa: B018  (connects)
        assert self._collectors is not None
        return self._collectors

    def stop(self, dyno_id: str) -> None:
        with self._state_lock:
            state = self._read(dyno_id)
            if state is None:
                return
            if not state.get("stop_requested"):
                state["stop_requested"] = time.time()
                self._write(dyno_id, state)
        if state.get("launched") and state.get("container"):
            # the engine's own escalation: SIGTERM now, SIGKILL past the timeout (rounded
            # up: never early), carried out by the engine even if the daemon dies meanwhile
            request_stop(self.client.api, state["container"],
                         math.ceil(state["spec"]["stop_timeout"]))

    def list(self) -> list[DynoInfo]:
        states = self._states()
        containers = self._containers()
        return [self._report(dyno_id, state, containers)
                for dyno_id, state in sorted(states.items())]

    def _report(self, dyno_id: str, state: dict[str, Any],
                containers: dict[str, dict[str, Any]]) -> DynoInfo:
        if not state.get("launched") and not state.get("failed"):
            with self._lock:
                launching = dyno_id in self._launching
            if launching or (state.get("launcher") != owner_token()
                             and owner_alive(state.get("launcher", ""))):
                return self._info(state, running=True)
            fresh = self._read(dyno_id)  # it may have launched since `state` was read
            if fresh is None or not (fresh.get("launched") or fresh.get("failed")):
                # its launcher died before the container ran with its network
                return self._info(state, running=False, exit_status=255,
                                  reason="its start was interrupted")
            state, containers = fresh, self._containers()
        if state.get("failed"):
            return self._info(state, running=False, exit_status=255,
                              finished_at=state.get("created_at", 0.0))
        summary = containers.get(dyno_id)
        if summary is not None and summary.get("State") in ("running", "restarting", "paused"):
            self._follow(DynoSpec(**state["spec"]), summary["Id"])
            self._keep_forwarder(dyno_id, state)
            return self._info(state, running=True)
        return self._exited(dyno_id, state, summary)

    def _keep_forwarder(self, dyno_id: str, state: dict[str, Any]) -> None:
        """A running container whose forwarder (endpoint, add-ons) died gets another (the
        endpoint's port is bound again); a failure is logged and tried on the next list."""
        if (not (state.get("endpoint") or state["spec"].get("reach")) or not state.get("pid")
                or state.get("stop_requested")
                or network.pasta_alive(state.get("pasta"), state.get("pasta_start"))):
            return
        spec = DynoSpec(**state["spec"])
        with self._state_lock:
            fresh = self._read(dyno_id)
            if (fresh is None or fresh.get("stop_requested")
                    or network.pasta_alive(fresh.get("pasta"), fresh.get("pasta_start"))):
                return
            try:
                endpoint = fresh.get("endpoint")
                handle = network.reforward(fresh["pid"], spec.uid,
                                           int(endpoint) if endpoint else None, spec.port,
                                           self.paths.root, spec.reach)
            except NetnsError as err:
                log.warning("%s: forwarder not started again: %s", dyno_id, err)
                return
            if handle is None:
                return
            fresh.update(pasta=handle.pid, pasta_start=handle.start)
            self._write(dyno_id, fresh)

    def _containers(self) -> dict[str, dict[str, Any]]:
        """This state dir's dyno containers (one-offs aside) as the engine lists them."""
        listed = self.client.api.containers(all=True, filters={
            "label": [f"{INSTANCE}={self.instance}"]})
        return {c["Labels"][ID]: c for c in listed
                if ID in c.get("Labels", {}) and ONEOFF not in c["Labels"]}

    def _endpoint(self, state: dict[str, Any]) -> Endpoint | None:
        return Endpoint("127.0.0.1", state["endpoint"]) if state.get("endpoint") else None

    def _info(self, state: dict[str, Any], running: bool, **facts: Any) -> DynoInfo:
        facts.setdefault("reason", state.get("failed") or state.get("reason", ""))
        return DynoInfo(spec=DynoSpec(**state["spec"]), pid=state.get("pid"), running=running,
                        started_at=state.get("started_at") or state.get("created_at", 0.0),
                        stopping=bool(state.get("stop_requested")),
                        endpoint=self._endpoint(state), **facts)

    def _exited(self, dyno_id: str, state: dict[str, Any],
                summary: dict[str, Any] | None) -> DynoInfo:
        """An exited (or vanished) container: its status, once all its output is copied
        (till then, or DRAIN_TIMEOUT, it is still reported running), its pasta ended."""
        if summary is None:
            self._release_later(state)
            return self._info(state, running=False, exit_status=255,
                              reason=state.get("reason") or "its container is gone")
        try:
            attrs = self.client.api.inspect_container(summary["Id"])["State"]
        except Exception:  # removed meanwhile
            return self._info(state, running=False, exit_status=255,
                              reason="its container is gone")
        finished = docker_time(attrs.get("FinishedAt"))
        self._follow(DynoSpec(**state["spec"]), summary["Id"])
        if not read_cursor(self._cursor_path(dyno_id)).done \
                and time.time() - finished < DRAIN_TIMEOUT:
            return self._info(state, running=True)  # its last lines are on their way
        self._release_later(state)
        status = int(attrs.get("ExitCode", 255))
        asked = state.get("stop_requested") or 0.0
        timeout = state["spec"]["stop_timeout"]
        killed = bool(asked and status == 137
                      and finished - asked >= timeout - KILL_TIMEOUT_SLACK)
        oom = bool(attrs.get("OOMKilled"))
        reason = state.get("reason", "") or (attrs.get("Error") or "")
        if oom:
            reason = "killed for exceeding its memory limit"
        elif killed:
            reason = f"did not exit within {timeout:g} seconds of SIGTERM"
        return self._info(state, running=False, exit_status=status, oom_killed=oom,
                          finished_at=finished, killed_after_timeout=killed, reason=reason)

    @staticmethod
    def _release_later(state: dict[str, Any]) -> None:
        """End an exited container's pasta on a thread: list() reports the exit at once."""
        if network.pasta_alive(state.get("pasta"), state.get("pasta_start")):
            threading.Thread(target=network.release, args=(state["pasta"], state["pasta_start"]),
                             daemon=True).start()

    def _follow(self, spec: DynoSpec, container_id: str) -> None:
        def exited() -> bool:
            try:
                return not self.client.api.inspect_container(container_id)["State"]["Running"]
            except Exception:
                return True
        log_file = AppLog.shared(self.paths.log_file(spec.app_id), self.settings.log_max_bytes)
        self.collectors.ensure(spec.id, container_id, spec.dyno, log_file,
                               self._cursor_path(spec.id), exited)

    def check_host(self) -> None:
        """At `pushd up`: the engine answers and the forwarder in front of web dynos is
        built (one line if not)."""
        connect().ping()
        shimbin.ensure(self.paths, shimbin.FORWARDER)

    def memory(self, dyno_id: str) -> MemoryUse | None:
        """The container's memory use and limit, from its cgroup (the engine's cgroupfs
        driver); None while it is not running."""
        container = (self._read(dyno_id) or {}).get("container")
        if not container:
            return None
        found = memory_use(CGROUP_MEMORY / container)
        return MemoryUse(*found) if found else None

    def probe(self, spec: DynoSpec) -> bool:
        """The dyno listens on $PORT in its own network, and its pasta (the endpoint) runs."""
        state = self._read(spec.id)
        return bool(state and spec.port and state.get("pid")
                    and network.pasta_alive(state.get("pasta"), state.get("pasta_start"))
                    and listening(state["pid"], spec.port))

    def logs(self, dyno_id: str, lines: int) -> list[str]:
        state = self._read(dyno_id)
        if state is None or not state.get("container") or lines <= 0:
            return []
        try:
            data = self.client.api.logs(state["container"], stdout=True, stderr=True,
                                        tail=lines)
        except Exception:
            return []
        return data.decode("utf-8", "replace").splitlines()[-lines:]

    def remove(self, dyno_id: str) -> None:
        with self._state_lock:  # gone first: a launch still under way undoes itself
            state = self._read(dyno_id)
            if state is None:
                return
            self._state_path(dyno_id).unlink(missing_ok=True)
        container_id = state.get("container")
        if container_id:
            with contextlib.suppress(Exception):
                self.client.api.kill(container_id)
            if not self.collectors.following(dyno_id):
                self._follow(DynoSpec(**state["spec"]), container_id)
            self.collectors.drain(dyno_id, DRAIN_TIMEOUT)
        for found in self.client.api.containers(all=True, filters={"label": [
                f"{INSTANCE}={self.instance}", f"{ID}={dyno_id}"]}):
            with contextlib.suppress(Exception):
                self.client.api.remove_container(found["Id"], v=True, force=True)
        network.release(state.get("pasta"), state.get("pasta_start"))
        self.collectors.forget(dyno_id)
        self._cursor_path(dyno_id).unlink(missing_ok=True)
        if state.get("endpoint"):
            self.endpoints.guard(self.list())
        egress.stop_when_unused(self.paths.root)  # the last dyno gone: nothing goes out

    def sweep(self) -> list[str]:
        """Containers of this state dir that nobody owns any more: one-offs whose process
        died, and dyno containers whose start never got a state file written."""
        states = self._states()
        swept = []
        for found in self.client.api.containers(all=True, filters={
                "label": [f"{INSTANCE}={self.instance}"]}):
            labels = found.get("Labels", {})
            dyno_id = labels.get(ID, "")
            if ONEOFF in labels:
                if owner_alive(labels[ONEOFF]):
                    continue
            elif dyno_id in states or time.time() - found.get("Created", 0) < LAUNCH_GRACE:
                continue
            with contextlib.suppress(Exception):
                self.client.api.remove_container(found["Id"], v=True, force=True)
            swept.append(dyno_id)
        return swept

    def run(self, spec: DynoSpec, io: OneOffIO) -> int:
        from .oneoff import run_oneoff

        return run_oneoff(self, spec, io)
