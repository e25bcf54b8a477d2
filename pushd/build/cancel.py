"""builds:cancel's reach past the build's cgroups (`buildlog.cancel` calls `stop_all` until
the build has ended): with the docker runtime a build's steps run in the engine's containers,
whose processes live in the engine's cgroups, not the build's.

- the app's build containers (a buildpack build's container, a Dockerfile build's network
  holder: both carry the build labels, `runtime/docker/labels.py`) are killed;
- a running `docker build` stream registers a stopper (`stoppable`) that kills the step
  container it is in, the engine's and unlabelled.

Builds and builds:cancel run in the daemon's process (ssh and the local CLI's control socket
both land there), so the stoppers are kept in memory, by app id."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("pushd.build")

_lock = threading.Lock()
_stoppers: dict[int, list[Callable[[], None]]] = {}


@contextmanager
def stoppable(app_id: int, stop: Callable[[], None]) -> Iterator[None]:
    """While the block runs, builds:cancel of the app calls `stop`."""
    with _lock:
        _stoppers.setdefault(app_id, []).append(stop)
    try:
        yield
    finally:
        with _lock:
            left = [s for s in _stoppers.get(app_id, []) if s is not stop]
            if left:
                _stoppers[app_id] = left
            else:
                _stoppers.pop(app_id, None)


def stop_all(app_id: int, state_dir: Path, runtime: str,
             engine: Callable[[], object] | None = None) -> int:
    """Stop what of the app's build runs outside its cgroups; how many things were stopped."""
    with _lock:
        stoppers = list(_stoppers.get(app_id, []))
    for stop in stoppers:
        try:
            stop()
        except Exception:  # noqa: BLE001  (a stopper must not keep the others from running)
            log.exception("build stopper of app %s failed", app_id)
    if runtime != "docker":
        return len(stoppers)
    return len(stoppers) + _kill_build_containers(app_id, state_dir, engine)


def _kill_build_containers(app_id: int, state_dir: Path,
                           engine: Callable[[], object] | None) -> int:
    import docker.errors

    from .. import stack
    from ..runtime.docker.labels import BUILD, app_filter

    try:
        client = (engine or stack.engine)()
        running = client.containers.list(filters=app_filter(state_dir, app_id, f"{BUILD}=1"))
    except (stack.StackError, docker.errors.DockerException) as err:
        log.warning("builds:cancel could not list build containers: %s", err)
        return 0
    killed = 0
    for container in running:
        try:
            container.kill()
            killed += 1
        except docker.errors.DockerException:  # already gone: its build ends by itself
            pass
    return killed
