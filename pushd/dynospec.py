"""What a dyno is given (its environment, a one-off's spec), stopping an app's dynos
directly through the runtime, and restart requests queued for the daemon's supervisor:
shared by the supervisor loop and by commands run anywhere."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from .errors import RuntimeFailure
from .events import STOPPING, EventLog
from .limits import for_dyno
from .models import App, Release
from .paths import Paths
from .runtime.base import Runtime
from .runtime.records import DynoSpec
from .settings import Settings, app_uid


def reachable_ports(store, app_id: int) -> tuple[int, ...]:  # noqa: ANN001
    """The add-on ports an app's dynos (one-offs too) reach at 127.0.0.1:PORT inside, each
    relayed to its add-on's unix socket (`addons/reach.py`): the one place this is decided,
    for any runtime."""
    return tuple(store.addon_ports(app_id))

# under dynos/, whose dot-named entries the runtime never takes for dynos
DYNO_PATH = "/app/.venv/bin:/app/node_modules/.bin:/app/bin:/usr/local/bin:/usr/bin:/bin"


def dyno_env(settings: Settings, release: Release, dyno: str, port: int | None) -> dict[str, str]:
    env = {"PATH": DYNO_PATH, **release.config}  # a PATH config var wins, as on Heroku
    env.update({"DYNO": dyno, "PS": dyno, "HOME": "/app",
                "STACK": settings.stack, "SOURCE_VERSION": release.commit,
                "PUSHD_RELEASE_VERSION": release.name})
    if port is not None:
        env["PORT"] = str(port)
    return env


def oneoff_spec(store, settings: Settings, paths: Paths, app_id: int, command: str,  # noqa: ANN001
                env: dict[str, str] | None = None) -> DynoSpec:
    """A `run.N` dyno of the app's current release (N random, like Heroku's run.1234)."""
    app = store.app_by_id(app_id)
    release = store.current_release(app_id)
    if app is None or release is None or not release.slug_id:
        raise RuntimeFailure("The app has no release to run yet; deploy it first")
    used = {d.name.split("-")[1] for d in paths.dynos_dir.glob(f"{app_id}-run.*")}
    index = random.choice([n for n in range(1000, 10000) if f"run.{n}" not in used])
    return dyno_spec(store, settings, app, release, "run", index, command, extra_env=env)


def dyno_spec(store, settings: Settings, app: App, release: Release, kind: str,  # noqa: ANN001
              index: int, command: str, port: int | None = None,
              extra_env: dict[str, str] | None = None) -> DynoSpec:
    """Everything a runtime needs to start dyno KIND.INDEX of `release` (a fresh id each)."""
    name = f"{kind}.{index}"
    limits = for_dyno(store, settings, app.id, kind)  # resource:limit, else the defaults
    slug = store.slug(release.slug_id)
    if port is not None and slug.port:
        port = slug.port  # the port a Dockerfile EXPOSEs is its $PORT
    return DynoSpec(
        id=f"{app.id}-{name}-v{release.version}-{random.getrandbits(24):06x}",
        app_id=app.id, app=app.name, release=release.version, process_type=kind,
        index=index, command=command,
        env={**dyno_env(settings, release, name, port), **(extra_env or {})},
        slug_dir=slug.dir, image=slug.image, uid=app_uid(settings, app.id), port=port,
        memory_mb=limits.memory_mb, pids_max=settings.pids_max,
        cpu_shares=settings.cpu_shares, cpu_limit=limits.cpu, disk_mb=settings.dyno_disk_mb,
        stop_timeout=settings.stop_timeout, reach=reachable_ports(store, app.id))


def stop_app_dynos(runtime: Runtime, app_id: int, timeout: float,
                   match: Callable[[DynoSpec], bool] = lambda spec: True, *,
                   events: EventLog | None = None) -> list[DynoSpec]:
    """Stop every dyno of the app (that `match`) through the runtime and return once they
    are gone (SIGKILLed past `timeout`): the specs of those that were running. With
    `events`, their stop and exit lines are written (an exit's only once, should a running
    daemon's supervisor see it too)."""
    mine = [i for i in runtime.list() if i.spec.app_id == app_id and match(i.spec)]
    stopped = [info.spec for info in mine if info.running]
    for spec in stopped:
        runtime.stop(spec.id)
        if events is not None:
            events.write(app_id, spec.dyno, STOPPING)
    deadline = time.monotonic() + timeout
    ids = {i.spec.id for i in mine}
    while ids and time.monotonic() < deadline:
        infos = runtime.list()
        running = {i.spec.id for i in infos if i.running}
        for info in infos:
            if info.spec.id in ids - running:
                if events is not None:
                    events.exited(info, time.time(), once=True)
                runtime.remove(info.spec.id)
        ids &= running
        if ids:
            time.sleep(0.1)
    for dyno_id in ids:
        runtime.remove(dyno_id)
    return stopped


