"""The supervisor's view of one dyno, and what it derives from all of them: the router's
routes, the `ps` snapshot, when to look again. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .dynostatus import DynoStatus
from .models import App
from .router.base import Route
from .runtime.records import DynoInfo, DynoSpec, Endpoint

Slot = tuple[int, int, str, int]  # app id, release version, process type, index


@dataclass
class Dyno:
    spec: DynoSpec
    state: str  # starting | up | crashed
    since: float
    started: float
    stopping: bool = False
    replace: bool = False  # ps:restart: start a successor, then retire this one
    retire_at: float | None = None  # stop once drained (out of the router already)
    pid: int | None = None
    ever_up: bool = False
    endpoint: Endpoint | None = None  # where the router reaches it (web), as its runtime says
    adopted: bool = False  # found by a restarted daemon (its exit may be logged already)
    warned: bool = False  # R14 told (a kill for memory then needs none before its R15)

    @property
    def slot(self) -> Slot:
        s = self.spec
        return (s.app_id, s.release, s.process_type, s.index)

    @property
    def web(self) -> bool:
        """A dyno the router sends traffic to: up only once it listens on $PORT."""
        return self.spec.process_type == "web" and self.spec.port is not None

    @property
    def routable(self) -> bool:
        return self.state == "up" and not self.stopping and self.retire_at is None


@dataclass
class Crash:
    count: int
    due: float
    since: float
    command: str


def adopted(info: DynoInfo, was_up: bool, now: float) -> Dyno:
    """A dyno found by a restarted daemon, in the state the previous daemon last told: up
    stays up (a busy dyno missing one probe must not be R10-killed by a daemon restart), any
    other is starting. One that has exited keeps that state for the supervisor's next look,
    which tells the exit (a crash, or a finished stop) from it: a dyno never told up is never
    said to have crashed from up. A running starting one gets a fresh boot window from now:
    the next look finds it up (and says so, once) if it runs, or listens on $PORT."""
    spec = info.spec
    state = "up" if was_up else "starting"
    if not info.running:
        return Dyno(spec, state, now, info.started_at, stopping=info.stopping, pid=info.pid,
                    ever_up=was_up, endpoint=info.endpoint, adopted=True)
    began = info.started_at or now
    return Dyno(spec, state, began, began if state == "up" else now, stopping=info.stopping,
                pid=info.pid, ever_up=state == "up", endpoint=info.endpoint, adopted=True)


def next_wake(dynos: Iterable[Dyno], crashes: dict[Slot, Crash],
              drain_until: dict[int, float], now: float) -> float:
    """How long the supervisor may sleep: until the next restart, drain or retirement is
    due, at most 0.5 s (0.1 s while a dyno is starting: its probe)."""
    dynos = list(dynos)
    timeout = 0.5
    if any(d.state == "starting" and not d.stopping for d in dynos):
        timeout = 0.1
    deadlines = [c.due for c in crashes.values()]
    deadlines += list(drain_until.values())
    deadlines += [d.retire_at for d in dynos if d.retire_at]
    for deadline in (t for t in deadlines if t > now):
        timeout = min(timeout, max(0.0, deadline - now))
    return timeout


def build_routes(apps: Iterable[App], versions: dict[int, int], dynos: Iterable[Dyno],
                 halted: set[int], domain: str, custom_domains: dict[int, list[str]],
                 crashes: dict[Slot, Crash] | None = None,
                 maintenance: frozenset[int] = frozenset()) -> list[Route]:
    """One route per app: its hosts, and the up web dynos of the release that serves (none
    because they crashed shows H10, none at all H14)."""
    crashed_web = {slot[0] for slot in crashes or {} if slot[2] == "web"}
    dynos = list(dynos)
    routes = []
    for app in sorted(apps, key=lambda a: a.name):
        version = versions.get(app.id)
        upstreams = sorted(
            (d.endpoint.host, d.endpoint.port, d.spec.dyno) for d in dynos
            if d.spec.app_id == app.id and d.spec.release == version
            and d.spec.process_type == "web" and d.routable and d.endpoint
            and app.id not in halted)
        hosts = (f"{app.name}.{domain}", *custom_domains.get(app.id, ()))
        crashed = not upstreams and app.id in crashed_web and app.id not in halted
        routes.append(Route(app=app.name, hosts=hosts, upstreams=tuple(upstreams),
                            crashed=crashed, maintenance=app.id in maintenance))
    return routes


def status_rows(dynos: Iterable[Dyno], crashes: dict[Slot, Crash]) -> dict[int, list[DynoStatus]]:
    """What `ps` shows: running dynos, and crashed slots waiting for their restart."""
    by_app: dict[int, list[DynoStatus]] = {}
    for dyno in dynos:
        s = dyno.spec
        if dyno.stopping and dyno.state != "crashed":
            continue
        by_app.setdefault(s.app_id, []).append(DynoStatus(
            s.dyno, s.process_type, dyno.state, dyno.since, s.command, s.release,
            dyno.endpoint.port if dyno.endpoint else None, dyno.pid, s.id))  # router's side
    shown = {(app_id, d.dyno) for app_id, rows in by_app.items() for d in rows}
    for (app_id, version, kind, index), crash in crashes.items():
        if (app_id, f"{kind}.{index}") not in shown:
            by_app.setdefault(app_id, []).append(DynoStatus(
                f"{kind}.{index}", kind, "crashed", crash.since, crash.command, version))
    return by_app
