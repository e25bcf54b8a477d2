"""Desired formation vs running dynos: crash backoff, boot timeout, adoption, and the
platform's event lines (`events.py`) from what the runtime reports. One loop converges
(`reconcile`); everything else (`wake`, `restart`, `stop_all`) only queues and wakes it. A
pending release's rollout is a state machine of its own (`rollout.py`): the loop feeds it
what it sees and does what it decides. Runtime, router, store, clock and probe come in
through the constructor: the logic is tested by replaying scripted histories with fakes.
Endpoints (their ports, the firewall's view of them) are the runtime's; the loop reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from . import maintenance
from . import rollout as ro
from .checks_driver import CheckDriver
from .dynometrics import DynoMetrics
from .dynospec import dyno_spec, stop_app_dynos
from .dynostate import Crash, Dyno, Slot, adopted, build_routes, next_wake, status_rows
from .dynostatus import DynoStatus, last_states
from .dynostatus import wait_release as _wait_release
from .errors import RuntimeFailure
from .events import STOPPING, EventLog, starting
from .health import HealthChecks
from .memwatch import R14, MemoryWatch
from .models import App, Release
from .paths import Paths
from .publish import Publisher
from .rollout_driver import RolloutDriver
from .router.base import Route
from .runtime.records import DynoInfo, DynoSpec, DynoState
from .settings import Settings
from .slo import SLIFile

log = logging.getLogger("pushd.supervisor")


class Supervisor(RolloutDriver, CheckDriver):
    def __init__(self, store, runtime, router, settings: Settings, paths: Paths, *,
                 clock: Callable[[], float] = time.time,
                 probe: Callable[[DynoSpec], bool] | None = None, stable_after: float = 10.0,
                 write_snapshot: bool = True,
                 tls: Callable[[list[Route], Iterable[App]], list[Route]] | None = None,
                 health: HealthChecks | None = None) -> None:
        self.store, self.runtime, self.router = store, runtime, router
        self.tls = tls  # adds each app's certificates and HTTPS features to its route
        self.settings, self.paths, self.clock = settings, paths, clock
        self.probe = probe or runtime.probe  # reaches that very dyno, not just its port
        self.health = health  # app.json checks (health.py) before a web dyno is routed
        self.stable_after = stable_after
        self.out = Publisher(router, paths, write_snapshot=write_snapshot)
        self.events = EventLog(paths, settings.log_max_bytes)
        self.rollouts: dict[int, ro.Rollout] = {}  # app id -> its pending release's
        self.dynos: dict[str, Dyno] = {}
        self.crashes: dict[Slot, Crash] = {}
        self.drain_until: dict[int, float] = {}
        self.halted: dict[int, float] = {}  # app id -> when (an id may go to a new app)
        self.memory = MemoryWatch(settings.memory_warn_percent)
        self.counted = DynoMetrics(SLIFile(paths.slo_file), settings.slo_cold_start_ms)
        self._adopted = False
        self._lock = threading.Lock()
        self._requests: list[tuple[str, int, str | None]] = []
        self._wake = threading.Event()
        self._apps: dict[int, App] = {}
        self._pending: dict[int, Release] = {}
        self._serving: dict[int, Release] = {}
        self.running = False
        if hasattr(runtime, "on_change"):  # a runtime that can tell when a launch is done
            runtime.on_change = self.wake

    # API for commands (any thread)
    def wake(self) -> None:
        self._wake.set()

    def restart(self, app_id: int, target: str | None = None) -> None:
        """ps:restart [web|web.1]: replace the dynos (web: successor first, zero downtime)."""
        with self._lock:
            self._requests.append(("restart", app_id, target))
        self.wake()

    def stop_all(self, app_id: int, timeout: float | None = None) -> None:
        """Stop every dyno of the app and return once they are gone. The app stays halted in
        this supervisor until it leaves the store (apps:destroy)."""
        timeout = timeout if timeout is not None else self.settings.stop_timeout + 15
        if not self.running:  # no loop to ask: do it here
            stop_app_dynos(self.runtime, app_id, timeout, events=self.events)
            return
        with self._lock:
            self._requests.append(("halt", app_id, None))
        self.wake()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                queued = any(r[0] == "halt" and r[1] == app_id for r in self._requests)
            # the loop thread changes self.dynos as it goes: read a copy, never iterate it
            left = [d for d in list(self.dynos.values()) if d.spec.app_id == app_id]
            if not left and not queued:
                return
            time.sleep(0.05)
        with self._lock:  # given up: the app runs again rather than staying halted for good
            self._requests.append(("unhalt", app_id, None))
        self.wake()
        raise RuntimeFailure("Timed out waiting for the dynos to stop")

    def wait_release(self, app_id: int, version: int, timeout: float) -> Release:
        return _wait_release(self.store, app_id, version, timeout)

    # the loop
    def run(self, stop_event: threading.Event) -> None:
        self.running = True
        try:
            while not stop_event.is_set():
                try:
                    timeout = self.reconcile()
                except Exception:  # one bad tick must not kill the loop
                    log.exception("supervisor tick failed")
                    timeout = 1.0
                self._wake.wait(timeout)
                self._wake.clear()
        finally:
            self.running = False

    def reconcile(self) -> float:
        """One convergence step; returns how long the loop may sleep before the next."""
        now = self.clock()
        self._apps = {a.id: a for a in self.store.apps()}
        infos = {i.spec.id: i for i in self.runtime.list()}
        if not self._adopted:
            self._adopt(infos, now)
        self._handle_requests(now)
        self._observe(infos, now)
        desired, pending = self._desired(now)
        self._rollouts(pending)
        self._converge(desired, now)
        self.counted.pass_done(
            {i: a.name for i, a in self._apps.items()}, list(desired),
            [d.slot for d in self.dynos.values() if d.state == "up" and not d.stopping],
            [(d.spec.app_id, d.spec.process_type) for d in self.dynos.values()], now)
        self.out.routes_changed(self._build_routes())
        self.out.status_changed(self.status())
        return self._sleep_for(now)

    # steps
    def _adopt(self, infos: dict[str, DynoInfo], now: float) -> None:
        self._adopted = True
        known = last_states(self.paths)
        for info in infos.values():
            # one-offs belong to their caller (detached ones to the cron loop's reaper)
            if info.spec.process_type not in ("run", "scheduler", "release"):
                self.dynos[info.spec.id] = adopted(info, known.get(info.spec.id) == "up", now)

    def _handle_requests(self, now: float) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        for kind, app_id, target in requests:
            if kind == "halt":
                self.halted[app_id] = time.time()
            elif kind == "unhalt":
                self.halted.pop(app_id, None)
            elif kind == "restart":
                self._restart(app_id, target, now)

    def _restart(self, app_id: int, target: str | None, now: float) -> None:
        def matches(kind: str, index: int) -> bool:
            return target is None or target in (kind, f"{kind}.{index}")

        for slot in [s for s in self.crashes if s[0] == app_id and matches(s[2], s[3])]:
            del self.crashes[slot]
        for dyno in list(self.dynos.values()):
            spec = dyno.spec
            if spec.app_id != app_id or dyno.stopping or not matches(*dyno.slot[2:]):
                continue
            if spec.process_type == "web" and dyno.state == "up":
                dyno.replace = True
            else:
                self._stop(dyno)

    def _observe(self, infos: dict[str, DynoInfo], now: float) -> None:
        for dyno in list(self.dynos.values()):
            info = infos.get(dyno.spec.id)
            if info is None or info.state in (DynoState.CRASHED, DynoState.EXITED):
                self._on_exit(dyno, info, now)
                continue
            dyno.pid = info.pid or dyno.pid
            dyno.endpoint = info.endpoint or dyno.endpoint
            if dyno.stopping:
                continue
            if self.memory.look(self.runtime, dyno.spec.id, now):  # crossed its soft threshold
                self._platform(dyno.spec, R14)
                dyno.warned = True
            if dyno.state == "starting":
                spec = dyno.spec
                if not dyno.web:
                    if info.state is DynoState.UP:  # its process runs
                        self._set_state(dyno, "up", now)
                elif info.state is DynoState.UP and self.probe(spec):
                    self._checked(dyno, now)
                elif now - dyno.started >= self.settings.boot_timeout:
                    self._platform(spec, f"Error R10 (Boot timeout) -> Web process failed to "
                                   f"bind to $PORT within {self.settings.boot_timeout:g} "
                                   f"seconds of launch")
                    self._set_state(dyno, "crashed", now)
                    self._crashed(dyno, now, "did not bind $PORT within "
                                  f"{self.settings.boot_timeout:g} seconds (R10 Boot timeout)")
                    self._stop(dyno)
            elif dyno.state == "up":
                if now - dyno.since >= self.stable_after:
                    self.crashes.pop(dyno.slot, None)  # a successful start resets the cool-off
                if dyno.web and self.health is not None:
                    self._liveness(dyno, now)

    def _on_exit(self, dyno: Dyno, info: DynoInfo | None, now: float) -> None:
        try:
            say = True  # its state change too, unless told (with its exit) before a restart
            if info is not None and dyno.spec.app_id in self._apps:
                # killed for memory having crossed R14's threshold between two looks: R14 first
                r14 = info.oom_killed and not (dyno.warned or self.memory.warned(dyno.spec.id))
                say = self.events.exited(info, now, once=dyno.adopted,
                                         first=[R14] if r14 else []) or not dyno.adopted
            if dyno.state == "crashed":
                return  # counted when it crashed (R10)
            if dyno.stopping or (info is not None and info.state is DynoState.EXITED):
                if say:
                    self._platform(dyno.spec, f"State changed from {dyno.state} to down")
                return
            self._set_state(dyno, "crashed", now, say)
            status = info.exit_status if info else None
            why = f"{info.reason}; " if info is not None and info.reason else ""
            self._crashed(dyno, now, f"{why}exited with status {status} " + (
                "before binding $PORT" if dyno.web else
                f"{now - dyno.started:.0f} seconds after starting (before its uptime check)"))
        finally:
            if self.health is not None:
                self.health.forget(dyno.spec.id)
            self.memory.forget(dyno.spec.id)
            self.runtime.remove(dyno.spec.id)  # after _crashed has read its last output
            self.dynos.pop(dyno.spec.id, None)  # last: stop_all waits for this

    def _crashed(self, dyno: Dyno, now: float, reason: str, failed_check: bool = False) -> None:
        spec = dyno.spec
        app = self._apps.get(spec.app_id)
        self.counted.crashed(app.name if app else "", dyno.slot, spec.process_type, reason)
        event = ro.CheckFailed(spec.dyno, reason, spec.id) if failed_check else ro.DynoCrashed(
            spec.dyno, reason, spec.process_type, dyno.ever_up, spec.id)
        rollout = self._feed(spec.app_id, spec.release, event) if self._gated_crash(dyno) else None
        if rollout is not None and rollout.state.done:
            return  # it failed its release: not restarted
        previous = self.crashes.get(dyno.slot)
        count = previous.count + 1 if previous else 1
        delay = 0.0 if count == 1 else min(
            self.settings.crash_backoff_base * 2 ** (count - 2), self.settings.crash_backoff_max)
        self.crashes[dyno.slot] = Crash(count, now + delay, now, spec.command)

    def _desired(self, now: float) -> tuple[dict[Slot, Release], dict[int, Release]]:
        desired: dict[Slot, Release] = {}
        self._pending: dict[int, Release] = {}
        self._serving: dict[int, Release] = {}
        self.halted = {i: at for i, at in self.halted.items()  # a new app with its id runs
                       if i in self._apps and self._apps[i].created_at <= at}
        for app in self._apps.values():
            current = self.store.current_release(app.id)
            pending = self.store.pending_release(app.id)
            if current is not None:
                self._serving[app.id] = current
            if app.id in self.halted:
                continue
            if pending is not None and (app.stopped or not pending.slug_id):
                self.store.set_release_status(app.id, pending.version, "succeeded")
                current, pending = pending, None  # nothing to run: live at once
                self._serving[app.id] = current
            if app.stopped:
                continue
            formation = self.store.formation(app.id)
            overlap = maintenance.checks(self.paths, app.id).worker_overlap
            for release in (current, pending):
                if release is None or not release.slug_id:
                    continue
                new = {t: self._initial_quantity(app.id, release, t)
                       for t in release.process_types if t not in formation and t != "release"}
                if new:
                    self.store.set_formation(app.id, new)
                    formation.update(new)
                for kind, quantity in formation.items():
                    if kind in release.process_types and kind != "release" and not (
                            release is pending and kind != "web" and not overlap):
                        for index in range(1, quantity + 1):
                            desired[(app.id, release.version, kind, index)] = release
            if pending is not None:
                self._pending[app.id] = pending
                self._supersede_older(app.id, pending)
        return desired, self._pending

    def _converge(self, desired: dict[Slot, Release], now: float) -> None:
        live: dict[Slot, list[Dyno]] = {}
        for dyno in self.dynos.values():
            if not dyno.stopping and dyno.state != "crashed":
                live.setdefault(dyno.slot, []).append(dyno)
        for slot, release in sorted(desired.items(), key=lambda kv: kv[0]):
            dynos = live.get(slot, [])
            fresh = [d for d in dynos if not d.replace]
            if not fresh:
                crash = self.crashes.get(slot)
                if (crash is None or crash.due <= now) and not self._waits_for_old(
                        slot[0], slot[1], slot[2]):
                    self._start(slot, release, now)
                continue
            if any(d.state == "up" for d in fresh):
                for old in (d for d in dynos if d.replace and d.retire_at is None):
                    old.retire_at = now + self._wait_to_retire(old.spec.app_id)
            for extra in sorted(fresh, key=lambda d: (d.state != "up", d.started))[1:]:
                self._stop(extra)
        for dyno in sorted(self.dynos.values(), key=lambda d: -d.spec.index):
            if dyno.stopping:
                continue
            if dyno.retire_at is not None and now >= dyno.retire_at:
                if not self._still_draining(dyno.retire_at, now):
                    self._stop(dyno)
            elif dyno.slot not in desired and dyno.state != "crashed":
                serving = self._serving.get(dyno.spec.app_id)
                older = serving is not None and dyno.spec.release < serving.version
                until = self.drain_until.get(dyno.spec.app_id, 0)
                if older and (until > now or dyno.web and self._still_draining(until, now)) and (
                        dyno.web or maintenance.checks(self.paths, dyno.spec.app_id)
                        .worker_overlap):  # workers without overlap stop at the switch
                    continue
                app = self._apps.get(dyno.spec.app_id)
                scaled_down = (serving is not None and dyno.spec.release == serving.version
                               and app is not None and not app.stopped
                               and app.id not in self.halted)
                if scaled_down and dyno.routable and dyno.web:  # out of the router first
                    dyno.retire_at = now + self._wait_to_retire(dyno.spec.app_id)
                else:
                    self._stop(dyno)
        for slot in [s for s in self.crashes if s not in desired]:
            del self.crashes[slot]

    def _start(self, slot: Slot, release: Release, now: float) -> None:
        app_id, _, kind, index = slot
        port = self.settings.dyno_port if kind == "web" else None  # $PORT in its own network
        spec = dyno_spec(self.store, self.settings, self._apps[app_id], release, kind, index,
                         release.process_types[kind], port)
        if slot in self.crashes:
            self._platform(spec, "State changed from crashed to starting")
        dyno = Dyno(spec, "starting", now, now)
        try:
            info = self.runtime.start(spec)
        except RuntimeFailure as err:  # this dyno fails (no port, ...); the pass goes on
            self._platform(spec, f"Failed to start: {err}")
            self._crashed(dyno, now, f"could not start: {err}")
            return
        self._platform(spec, starting(spec))
        self.counted.started(self._apps[app_id].name, slot, kind, slot in self.crashes)
        dyno.pid, dyno.endpoint = info.pid, info.endpoint
        self.dynos[spec.id] = dyno
        self._feed(app_id, release.version, ro.DynoStarted(spec.dyno))
        if not dyno.web and info.state is DynoState.UP:
            self._set_state(dyno, "up", now)  # nothing to probe: up once its process runs

    def _stop(self, dyno: Dyno) -> None:
        if not dyno.stopping:
            dyno.stopping = True
            self.runtime.stop(dyno.spec.id)
            self._platform(dyno.spec, STOPPING)

    # router, status, logs
    def _build_routes(self, serving: dict[int, int] | None = None) -> list[Route]:
        versions = {app_id: r.version for app_id, r in self._serving.items()}
        versions.update(serving or {})
        routes = build_routes(self._apps.values(), versions, self.dynos.values(),
                              set(self.halted), self.settings.domain,
                              self.store.domains_by_app(), self.crashes,
                              maintenance.apps_in(self.paths, self._apps))
        return self.tls(routes, self._apps.values()) if self.tls else routes

    def status(self) -> dict[int, list[DynoStatus]]:
        return status_rows(self.dynos.values(), self.crashes)

    def _sleep_for(self, now: float) -> float:
        return next_wake(self.dynos.values(), self.crashes, self.drain_until, now)

    def _set_state(self, dyno: Dyno, state: str, now: float, say: bool = True) -> None:
        if dyno.state != state:
            if say:
                self._platform(dyno.spec, f"State changed from {dyno.state} to {state}")
            if state == "up" and not dyno.adopted and dyno.spec.app_id in self._apps:
                self.counted.up(self._apps[dyno.spec.app_id].name, dyno.spec.process_type,
                                now - dyno.started)
            dyno.state, dyno.since = state, now
            dyno.ever_up = dyno.ever_up or state == "up"
            if state == "up" and say:
                # recorded with its line, not at the pass's end: a daemon killed in between
                # would leave the next one to adopt it as starting and tell "up" again
                self.out.status_changed(self.status())

    def _platform(self, spec: DynoSpec, message: str) -> None:
        self._log(spec.app_id, spec.dyno, message)

    def _log(self, app_id: int, source: str, message: str) -> None:
        if app_id in self._apps:  # a destroyed app keeps no log folder
            self.events.write(app_id, source, message)
