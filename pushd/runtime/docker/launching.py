"""The docker runtime's launch half: one small state file per dyno under
`<state>/docker/dynos/` (its spec, endpoint, container, pasta, when a stop was asked:
read-modified-written under a lock the launcher processes share), and `start`, which records
the dyno and has a child of the warm launcher (`forkserver.py`) make the release image, the
container and its pasta, so the supervisor's loop never waits on the engine and a daemon
killed meanwhile never leaves a launch half done. `DockerRuntime` (`runtime.py`) composes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...errors import RuntimeFailure
from ...files import FileLock, replace_file
from ...paths import Paths
from ...procs import owner_token
from ...settings import Settings
from ..endpoints import HostEndpoints
from ..netns import NetnsError
from ..records import DynoInfo, DynoSpec
from . import network
from .client import INSTANCE, docker_time, one_line, request_stop
from .container import create_kwargs
from .forkserver import ForkServer
from .images import release_image

log = logging.getLogger("pushd.docker")


class _Removed(Exception):
    """The dyno was removed while its container was being launched."""


class Launching:
    """State files and launches of `DockerRuntime` (a mixin: the attributes below, and
    `list`, `_info` and `_follow`, are the runtime's)."""

    settings: Settings
    paths: Paths
    instance: str
    state_dir: Path
    endpoints: HostEndpoints
    client: Any
    on_change: Callable[[], None] | None
    _lock: threading.Lock
    _state_lock: FileLock
    _launching: set[str]
    _launcher: ForkServer | None

    def _state_path(self, dyno_id: str) -> Path:
        if not dyno_id or "/" in dyno_id or dyno_id.startswith("."):
            raise RuntimeFailure(f"Invalid dyno id {dyno_id!r}")
        return self.state_dir / f"{dyno_id}.json"

    def _cursor_path(self, dyno_id: str) -> Path:
        return self.state_dir / f"{dyno_id}.cursor"

    def _read(self, dyno_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._state_path(dyno_id).read_text())
        except (OSError, ValueError):
            return None

    def _write(self, dyno_id: str, state: dict[str, Any]) -> None:
        replace_file(self._state_path(dyno_id), json.dumps(state, sort_keys=True), sync=True)

    def _states(self) -> dict[str, dict[str, Any]]:
        found = {}
        if self.state_dir.is_dir():
            for path in self.state_dir.glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    found[path.stem] = json.loads(path.read_text())
        return found

    def image(self, spec: DynoSpec) -> Any:
        if spec.image:  # built from the app's Dockerfile
            return self.client.images.get(spec.image)
        return release_image(self.client, spec.app, spec.app_id, spec.release, spec.slug_dir,
                             self.settings.stack, {INSTANCE: self.instance},
                             lock_dir=self.paths.root / "docker")

    def create_kwargs(self, spec: DynoSpec, image: Any) -> dict[str, Any]:
        return create_kwargs(spec, image.id, self.instance)

    # the Runtime protocol
    def start(self, spec: DynoSpec) -> DynoInfo:
        """Record the dyno and launch its container on a thread of its own: returns at once
        (the release image, the engine's start and pasta take a second or more, which the
        supervisor's loop must not wait for). The dyno is `running` without a pid until its
        container runs; a launch that fails reports it exited (255) with the reason."""
        if self._state_path(spec.id).exists():
            raise RuntimeFailure(f"Dyno {spec.id} exists already")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        endpoint = None
        if spec.process_type == "web" and spec.port is not None:
            known = self.list()
            endpoint = self.endpoints.allocate(known).port  # RuntimeFailure when none is free
            self.endpoints.guard(known, frozenset({(endpoint, spec.uid)}))
        state: dict[str, Any] = {"spec": asdict(spec), "endpoint": endpoint,
                                 "created_at": time.time(), "launcher": owner_token()}
        self._write(spec.id, state)
        with self._lock:
            self._launching.add(spec.id)
        # a process of its own (a child of the warm launcher): a daemon killed meanwhile
        # never leaves a launch half done (the next daemon sees the launcher alive, then
        # its container)
        try:
            # the child records itself as the launcher (its first write): the daemon writes
            # nothing more here, which would race the child's own writes
            self.launcher.launch(spec.id)
        except RuntimeFailure as err:
            with self._lock:
                self._launching.discard(spec.id)
            state = self._update(spec.id, {"failed": f"could not start: {err}"}) or state
            return self._info(state, running=True)  # reported exited on the next list()
        return self._info(state, running=True)

    @property
    def launcher(self) -> ForkServer:
        with self._lock:
            if self._launcher is None:
                self._launcher = ForkServer(self.paths.root, self.state_dir.parent
                                            / "launch.log", self._launched)
            return self._launcher

    def _launched(self, dyno_id: str) -> None:
        """Once its launcher is done: follow the container's output from here on, and tell
        the supervisor (its probe need not wait for the next tick)."""
        state = self._read(dyno_id)
        if state and state.get("launched") and state.get("container"):
            with contextlib.suppress(Exception):
                self._follow(DynoSpec(**state["spec"]), state["container"])
        with self._lock:
            self._launching.discard(dyno_id)
        if self.on_change is not None:
            self.on_change()

    def launch(self, dyno_id: str) -> None:
        """In the launcher process: the release image, the container, its pasta."""
        state = self._update(dyno_id, {"launcher": owner_token()})
        if state is not None:
            endpoint = state.get("endpoint")
            self._launch(DynoSpec(**state["spec"]), int(endpoint) if endpoint else None)

    def _launch(self, spec: DynoSpec, endpoint: int | None) -> None:
        container_id = None
        pasta = None
        try:
            image = self.image(spec)
            container = self.client.containers.create(**self.create_kwargs(spec, image))
            container_id = container.id
            if not self._update(spec.id, {"container": container_id}):
                raise _Removed
            container.start()
            container.reload()
            pid = container.attrs["State"]["Pid"] or None
            facts: dict[str, Any] = {"pid": pid, "launched": True, "started_at": docker_time(
                container.attrs["State"]["StartedAt"])}
            if pid:
                try:
                    pasta = network.connect(pid, spec.uid, endpoint, spec.port,
                                            self.paths.root, self.settings.uid_base,
                                            spec.reach)
                    if pasta is not None:  # the dyno's forwarder
                        facts["pasta"], facts["pasta_start"] = pasta.pid, pasta.start
                except NetnsError as err:
                    if endpoint is not None:
                        raise
                    facts["reason"] = f"no network for this dyno: {err}"
            state = self._update(spec.id, facts)
            if state is None:
                raise _Removed
            if state.get("stop_requested"):  # stopped while it was launching
                request_stop(self.client.api, container_id, math.ceil(spec.stop_timeout))
        except Exception as err:
            if pasta is not None:
                network.release(pasta.pid, pasta.start)
            if container_id is not None:
                with contextlib.suppress(Exception):
                    self.client.api.remove_container(container_id, v=True, force=True)
            if not isinstance(err, _Removed):
                reason = str(err) if isinstance(err, RuntimeFailure) else one_line(err)
                log.warning("could not start %s: %s", spec.id, reason)
                self._update(spec.id, {"failed": f"could not start: {reason}",
                                       "container": None})

    def _update(self, dyno_id: str, facts: dict[str, Any]) -> dict[str, Any] | None:
        """Add facts to the dyno's state file; None (nothing written) once it is removed."""
        with self._state_lock:
            state = self._read(dyno_id)
            if state is None:
                return None
            state.update(facts)
            self._write(dyno_id, state)
            return state

