"""builds:cancel's reach past the build's cgroups (`buildlog.cancel` calls `stop_all` until
the build has ended): with the docker runtime a build's steps run in the engine's containers,
whose processes live in the engine's cgroups, not the build's.

- the app's build containers (a buildpack build's container, a Dockerfile build's network
  holder: both carry the build labels) are killed by the runtime's support
  (`RuntimeSupport.cancel_builds`);
- a running `docker build` stream registers a stopper (`stoppable`) that kills the step
  container it is in, the engine's and unlabelled.

Builds and builds:cancel run in the daemon's process (ssh and the local CLI's control socket
both land there), so the stoppers are kept in memory, by app id."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def stop_all(app_id: int) -> int:
    """Run the stoppers of the app's running build steps; how many there were. (The app's
    build containers are the runtime's: `RuntimeSupport.cancel_builds`.)"""
    with _lock:
        stoppers = list(_stoppers.get(app_id, []))
    for stop in stoppers:
        try:
            stop()
        except Exception:  # noqa: BLE001  (a stopper must not keep the others from running)
            log.exception("build stopper of app %s failed", app_id)
    return len(stoppers)
