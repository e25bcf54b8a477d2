"""Detached one-off dynos: `run:detached` (`run.N`) and cron's (`scheduler.N`). Each is a
dyno the runtime starts like any other (its output goes to the app log, it outlives the
daemon, it ends with its main process) with a spec id ending in `-detached`, which the
supervisor never adopts; `reap` writes the exit lines of those that ended and removes them.
`running` lists them, and the interactive one-offs of the sandbox runtime, for `ps`."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass

from .dynospec import dyno_spec
from .errors import NotFound
from .events import EventLog, starting
from .models import App
from .platform import Platform
from .runtime.records import DynoSpec

SUFFIX = "-detached"
ONEOFF_TYPES = ("run", "scheduler")


@dataclass(frozen=True)
class OneOff:
    dyno: str
    since: float
    command: str


def events(platform: Platform) -> EventLog:
    return EventLog(platform.paths, platform.settings.log_max_bytes)


def start(platform: Platform, app: App, command: str, kind: str = "run") -> DynoSpec:
    """Start `command` as a detached one-off of the app's current release."""
    store = platform.store
    release = store.current_release(app.id)
    if release is None or not release.slug_id:
        raise NotFound(f"{app.name} has no release to run; git push first")
    used = {d.name.split("-")[1] for d in platform.paths.dynos_dir.glob(f"{app.id}-{kind}.*")}
    index = random.choice([n for n in range(1000, 10000) if f"{kind}.{n}" not in used])
    spec = dyno_spec(store, platform.settings, app, release, kind, index, command)
    spec = dataclasses.replace(spec, id=spec.id + SUFFIX)
    events(platform).write(app.id, spec.dyno, starting(spec))
    platform.runtime.start(spec)
    return spec


def reap(platform: Platform) -> None:
    """Exit lines (once) for detached one-offs that ended, and their removal."""
    log = events(platform)
    for info in platform.runtime.list():
        if info.spec.id.endswith(SUFFIX) and not info.running:
            log.exited(info, time.time(), once=True)
            platform.runtime.remove(info.spec.id)


def running(platform: Platform, app_id: int) -> list[OneOff]:
    found = {}
    for info in platform.runtime.list():
        spec = info.spec
        if spec.app_id == app_id and spec.process_type in ONEOFF_TYPES and info.running:
            found[spec.dyno] = OneOff(spec.dyno, info.started_at, spec.command)
    # interactive `run` one-offs of the sandbox runtime keep no spec: their folder tells
    for folder in platform.paths.dynos_dir.glob(f"{app_id}-run.*"):
        dyno = folder.name.split("-")[1]
        if dyno not in found and (folder / "oneoff.json").exists():
            found[dyno] = OneOff(dyno, folder.stat().st_mtime, "")
    return sorted(found.values(), key=lambda o: o.since)
