"""The router watched like a dyno: when pushd's nginx master dies, it is started again at
once (its orphaned workers cleared first, see nginxprocs.py), and the outage is told to the
daemon log and, through a small state file, to `pushd status`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import RouterError
from ..files import replace_file

log = logging.getLogger("pushd.router")
WATCH_FILE = "watch.json"  # in the router's folder


class Watched(Protocol):
    def alive(self) -> bool: ...

    def start(self) -> None: ...


class RouterWatch:
    """`step()` once per `interval`: nothing while the router runs; else restart it, and on
    failure retry every `retry` seconds, saying each new reason once."""

    def __init__(self, router: Watched, state_file: Path, *, interval: float = 0.1,
                 retry: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.router, self.state_file = router, Path(state_file)
        self.interval, self.retry, self.clock = interval, retry, clock
        self.down_since: float | None = None
        self.next_try = 0.0
        self.error: str | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the watch must outlive any one failure
                log.exception("router watch failed")

    def step(self) -> None:
        if self.router.alive():
            if self.down_since is not None:
                self._recovered()
            return
        now = self.clock()
        if self.down_since is None:
            self.down_since, self.next_try = now, now
            log.warning("router: nginx is not running (its master died); restarting it")
            self._write({"state": "restarting", "since": now})
        if now < self.next_try:
            return
        try:
            self.router.start()
        except RouterError as err:
            self.next_try = now + self.retry
            if str(err) != self.error:
                self.error = str(err)
                log.error("router: could not restart nginx: %s", err)
                self._write({"state": "restarting", "since": self.down_since,
                             "error": self.error})
            return
        self._recovered()

    def _recovered(self) -> None:
        assert self.down_since is not None
        seconds = self.clock() - self.down_since
        log.warning("router: nginx restarted after an outage of %.2f s", seconds)
        self._write({"state": "up", "last_outage": {"at": self.down_since,
                                                    "seconds": round(seconds, 3)}})
        self.down_since, self.error = None, None

    def _write(self, state: dict) -> None:
        try:
            replace_file(self.state_file, json.dumps(state), mode=0o600)
        except OSError as err:
            log.warning("router: could not record its state: %s", err)


def describe_watch(state_file: Path) -> str:
    """What the watch last recorded, for `pushd status` ("" if nothing)."""
    try:
        state = json.loads(Path(state_file).read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(state, dict):
        return ""
    if state.get("state") == "restarting":
        said = f"restarting since {_when(state.get('since'))}"
        return f"{said}: {state['error']}" if state.get("error") else said
    outage = state.get("last_outage")
    if isinstance(outage, dict):
        return (f"last outage {_when(outage.get('at'))}, {float(outage.get('seconds', 0)):.2f} "
                "s")
    return ""


def _when(at: object) -> str:
    if not isinstance(at, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
