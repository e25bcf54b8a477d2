"""The daemon's cron loop: app.json `cron` entries of each app's serving release (read from
its commit), due in the current minute (UTC), start a detached `scheduler.N` one-off
(`detached.py`). Only the current minute is looked at: runs missed while the daemon was down
are not replayed. The same loop reaps ended detached one-offs. With `test_hooks`, the
`cron_speed` setting makes the loop's clock run that many times faster (tests only)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import cron, detached, health
from .errors import PushdError
from .models import App, Release
from .platform import Platform

log = logging.getLogger("pushd.cron")


def fast_clock(speed: int) -> Callable[[], float]:
    """Wall-clock time, running `speed` times faster from now on."""
    start = time.time()
    return lambda: start + (time.time() - start) * speed


def release_entries(platform: Platform, app: App, release: Release) -> list[cron.CronEntry]:
    """The cron entries of the release's app.json (parsed and checked at its push)."""
    manifest = health.load(platform.paths, app.id, release.slug_id)
    return [cron.CronEntry(e.command, cron.parse_schedule(e.schedule)) for e in manifest.cron]


class Scheduler:
    def __init__(self, platform: Platform, clock: Callable[[], float] = time.time,
                 tick: float = 5.0) -> None:
        self.platform, self.clock, self.tick = platform, clock, tick
        self._cache: dict[int, tuple[int, list[cron.CronEntry]]] = {}
        self._last_minute = int(clock() // 60)  # what was due before we started is not run

    def entries(self, app: App) -> tuple[Release | None, list[cron.CronEntry]]:
        release = self.platform.store.current_release(app.id)
        if release is None or not release.slug_id:
            return None, []
        cached = self._cache.get(app.id)
        if cached is None or cached[0] != release.version:
            try:
                found = release_entries(self.platform, app, release)
            except PushdError as err:
                detached.events(self.platform).write(app.id, "scheduler", f"Error: {err}")
                found = []
            self._cache[app.id] = cached = (release.version, found)
        return release, cached[1]

    def step(self) -> list[str]:
        """One look at the clock: the one-offs started (their dyno names)."""
        started: list[str] = []
        minute = int(self.clock() // 60)
        if minute <= self._last_minute:
            return started
        self._last_minute = minute  # only this minute: no bulk replay of missed ones
        for app in self.platform.store.apps():
            if app.stopped:
                continue
            _, entries = self.entries(app)
            for entry in entries:
                if entry.schedule.due(minute * 60):
                    try:
                        spec = detached.start(self.platform, app, entry.command, "scheduler")
                        started.append(spec.dyno)
                    except PushdError as err:
                        log.warning("cron of %s: %s", app.name, err)
        return started

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.tick):
            try:
                self.step()
                detached.reap(self.platform)
            except Exception:  # one bad tick must not end the loop
                log.exception("cron tick failed")
