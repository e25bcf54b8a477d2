"""Supervisor logic replayed with a fake runtime, router, clock and dyno probe."""

from __future__ import annotations

import threading

import pytest

from pushd.dynostatus import read_failure, read_status
from pushd.errors import RouterError, RuntimeFailure
from pushd.models import Slug
from pushd.paths import Paths
from pushd.runtime.records import DynoInfo, DynoSpec, Endpoint
from pushd.settings import Settings
from pushd.store import Store
from pushd.supervisor import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRuntime:
    name = "fake"

    def __init__(self) -> None:
        self.infos: dict[str, DynoInfo] = {}
        self.events: list[tuple[str, str]] = []
        self.output: dict[str, list[str]] = {}
        self.endpoint_host, self.next_port = "127.0.0.1", 20000  # where $PORT is published
        self.full = False  # no endpoint left for a web dyno
        self.launching = False  # a dyno started now has no pid yet (its launch goes on)

    def start(self, spec: DynoSpec) -> DynoInfo:
        endpoint = None
        if spec.port:
            if self.full:
                raise RuntimeFailure("No free port left in 20000-29999")
            endpoint = Endpoint(self.endpoint_host, self.next_port)
            self.next_port += 1
        pid = None if self.launching else 100 + len(self.events)
        info = DynoInfo(spec=spec, pid=pid, running=True, endpoint=endpoint)
        self.infos[spec.id] = info
        self.events.append(("start", spec.id))
        return info

    def stop(self, dyno_id: str) -> None:
        self.events.append(("stop", dyno_id))
        info = self.infos[dyno_id]
        info.stopping, info.running, info.exit_status = True, False, 143

    def list(self) -> list[DynoInfo]:
        return list(self.infos.values())

    def remove(self, dyno_id: str) -> None:
        self.events.append(("remove", dyno_id))
        self.infos.pop(dyno_id, None)

    def logs(self, dyno_id: str, lines: int) -> list[str]:
        return [] if dyno_id not in self.infos else self.output.get(dyno_id, [])[-lines:]

    def run(self, spec, io) -> int:
        return 0

    def memory(self, dyno_id: str) -> None:
        return None

    # scripting
    def crash(self, dyno_id: str, status: int = 1) -> None:
        info = self.infos[dyno_id]
        info.running, info.exit_status = False, status

    def endpoint(self, spec: DynoSpec) -> tuple[str, int]:
        return tuple(self.infos[spec.id].endpoint)

    def running(self, kind: str | None = None) -> list[DynoSpec]:
        return sorted((i.spec for i in self.infos.values() if i.running
                       and (kind is None or i.spec.process_type == kind)),
                      key=lambda s: (s.process_type, s.index, s.release))


class FakeRouter:
    def __init__(self, events: list) -> None:
        self.applied: list = []
        self.events = events
        self.fail = False

    def apply(self, routes) -> None:
        if self.fail:
            raise RouterError("nginx: [emerg] broken")
        self.applied.append(routes)
        self.events.append(("router", tuple((r.app, r.upstreams) for r in routes)))


class World:
    def __init__(self, tmp_path) -> None:
        self.paths = Paths(tmp_path / "state")
        self.paths.ensure()
        self.settings = Settings(state_dir=self.paths.root, boot_timeout=60, drain_seconds=2,
                                 crash_backoff_base=1, crash_backoff_max=8)
        self.store = Store(self.paths.db)
        self.clock = Clock()
        self.runtime = FakeRuntime()
        self.router = FakeRouter(self.runtime.events)
        self.bound: set[str] = set()  # dynos whose "app" accepts connections on $PORT
        self.sup = self.make()
        self.app = self.store.create_app("myapp", "alice")
        self.paths.app_dir(self.app.id).mkdir(parents=True)  # as apps:create does

    def make(self) -> Supervisor:
        return Supervisor(self.store, self.runtime, self.router, self.settings, self.paths,
                          clock=self.clock, probe=self.probe)

    def deploy(self, types: dict[str, str], config: dict[str, str] | None = None,
               scale_others: bool = True):
        """`scale_others`: types other than web get one dyno, as `ps:scale` would give them
        (by Heroku's rule only web starts by itself)."""
        if scale_others:
            known = self.store.formation(self.app.id)
            self.store.set_formation(self.app.id, {t: 1 for t in types if t not in known
                                                   and t not in ("web", "release")})
        slug = Slug(id=f"s{len(self.store.slugs(self.app.id))}", app_id=self.app.id,
                    path="/x.tgz", dir="/slug", size=1, commit="abc1234", process_types=types)
        self.store.add_slug(slug)
        return self.store.create_release(self.app.id, description="Deploy", user="alice",
                                         slug=slug, config_set=config)

    def probe(self, spec: DynoSpec) -> bool:
        return spec.id in self.bound

    def bind_all(self) -> None:
        self.bound.update(s.id for s in self.runtime.running("web"))

    def tick(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)
        self.sup.reconcile()

    def log(self) -> str:
        path = self.paths.log_file(self.app.id)
        return path.read_text() if path.exists() else ""


@pytest.fixture
def w(tmp_path) -> World:
    return World(tmp_path)


def names(specs) -> list[str]:
    return [s.dyno for s in specs]


def deploy_live(w: World, types=None) -> None:
    release = w.deploy(types or {"web": "python app.py", "worker": "python worker.py"})
    w.tick()
    w.bind_all()
    w.tick()
    assert w.store.release(w.app.id, release.version).status == "succeeded"


def test_first_deploy_starts_one_web_dyno_only(w):
    release = w.deploy({"web": "gunicorn app", "worker": "celery", "release": "migrate"},
                       scale_others=False)
    w.tick()
    assert w.store.formation(w.app.id) == {"web": 1, "worker": 0}
    assert names(w.runtime.running()) == ["web.1"]
    w.store.set_formation(w.app.id, {"worker": 1})  # ps:scale worker=1
    w.tick()
    assert names(w.runtime.running()) == ["web.1", "worker.1"]
    web = w.runtime.running("web")[0]
    assert web.env["PORT"] == str(web.port) == "5000" and web.env["DYNO"] == "web.1"
    assert web.env["HOME"] == "/app" and web.uid == 40000 + w.app.id
    assert web.env["STACK"] and web.env["SOURCE_VERSION"] == "abc1234"
    assert "PORT" not in w.runtime.running("worker")[0].env
    assert w.store.release(w.app.id, release.version).status == "pending"
    w.bind_all()
    w.tick()
    assert w.store.release(w.app.id, release.version).status == "succeeded"
    assert w.router.applied[-1][0].upstreams == ((*w.runtime.endpoint(web), "web.1"),)
    assert w.router.applied[-1][0].hosts[0] == "myapp.localhost"
    assert "web.1]: State changed from starting to up" in w.log()
    status = read_status(w.paths, w.app.id)
    assert [(s.dyno, s.state) for s in status] == [("web.1", "up"), ("worker.1", "up")]


def test_routes_go_to_the_endpoint_the_runtime_reports(w):
    w.runtime.endpoint_host, w.runtime.next_port = "127.0.0.2", 20007
    deploy_live(w, {"web": "python app.py"})
    web = w.runtime.running("web")[0]
    assert web.port == w.settings.dyno_port  # $PORT inside; the endpoint is the runtime's
    assert w.router.applied[-1][0].upstreams == (("127.0.0.2", 20007, "web.1"),)


def test_no_free_port_fails_that_web_dyno_and_the_pass_goes_on_for_everyone_else(w):
    other = w.store.create_app("other", "bob")
    w.paths.app_dir(other.id).mkdir(parents=True)
    w.runtime.full = True  # every endpoint port held by other processes of the host
    release = w.deploy({"web": "python app.py", "worker": "python worker.py"})
    slug = Slug(id="o1", app_id=other.id, path="/o.tgz", dir="/slug", size=1,
                commit="abc1234", process_types={"worker": "python worker.py"})
    w.store.add_slug(slug)
    w.store.set_formation(other.id, {"worker": 1})
    w.store.create_release(other.id, description="Deploy", user="bob", slug=slug)
    w.tick()  # raises nothing
    assert "web.1]: Failed to start: No free port left in 20000-29999" in w.log()
    assert w.store.release(w.app.id, release.version).status == "failed"
    # the other app's workers (no port needed) run, and the router got this pass's routes
    assert ("other", "worker.1") in {(s.app, s.dyno) for s in w.runtime.running()}
    assert [r.app for r in w.router.applied[-1]] == ["myapp", "other"]
    w.tick(30)  # later passes keep going as well
    assert ("other", "worker.1") in {(s.app, s.dyno) for s in w.runtime.running()}


def test_scale_up_and_down_highest_index_first(w):
    deploy_live(w)
    w.store.set_formation(w.app.id, {"web": 3})
    w.tick()
    w.bind_all()
    w.tick()
    assert names(w.runtime.running("web")) == ["web.1", "web.2", "web.3"]
    assert len(w.router.applied[-1][0].upstreams) == 3
    w.store.set_formation(w.app.id, {"web": 1, "worker": 0})
    w.tick()  # out of the router at once, SIGTERM after the wait-to-retire (drain)
    assert w.router.applied[-1][0].upstreams[0][2] == "web.1"
    assert len(w.router.applied[-1][0].upstreams) == 1
    assert names(w.runtime.running()) == ["web.1", "web.2", "web.3"]
    w.tick(w.settings.drain_seconds)
    assert names(w.runtime.running()) == ["web.1"]
    stops = [e[1] for e in w.runtime.events if e[0] == "stop" and "-web." in e[1]]
    assert "-web.3-" in stops[0] and "-web.2-" in stops[1]


def test_crash_restarts_at_once_then_backs_off_then_resets(w):
    deploy_live(w)
    worker = w.runtime.running("worker")[0]
    w.runtime.crash(worker.id)
    w.tick()
    first = w.runtime.running("worker")
    assert len(first) == 1 and first[0].id != worker.id  # immediately restarted
    delays = []
    for _ in range(5):
        w.runtime.crash(w.runtime.running("worker")[0].id)
        w.tick()
        assert w.runtime.running("worker") == []  # cooling off, nothing started
        waited = 0.0
        while not w.runtime.running("worker"):
            w.tick(0.25)
            waited += 0.25
            assert waited < 100
        delays.append(waited)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped at crash_backoff_max
    assert [s.state for s in read_status(w.paths, w.app.id) if s.type == "worker"] == ["up"]
    # a crash-looping dyno costs nothing while cooling off: the loop sleeps till it is due
    w.runtime.crash(w.runtime.running("worker")[0].id)
    w.tick()
    assert w.sup._sleep_for(w.clock()) == 0.5  # poll only; no busy loop
    assert [s.state for s in read_status(w.paths, w.app.id) if s.type == "worker"] == [
        "crashed"]
    w.tick(8)
    # stays up a while: the next crash restarts at once again
    w.tick(w.sup.stable_after + 1)
    w.runtime.crash(w.runtime.running("worker")[0].id)
    w.tick()
    assert len(w.runtime.running("worker")) == 1
    assert "worker.1]: State changed from up to crashed" in w.log()


def test_restart_resets_the_cool_off(w):
    deploy_live(w)
    w.runtime.crash(w.runtime.running("worker")[0].id)
    w.tick()  # first crash: back at once
    w.runtime.crash(w.runtime.running("worker")[0].id)
    w.tick()
    assert w.runtime.running("worker") == []  # second crash: cooling off
    w.sup.restart(w.app.id, "worker")
    w.tick()
    assert len(w.runtime.running("worker")) == 1


def test_boot_timeout_r10(w):
    deploy_live(w, {"web": "python app.py"})
    web = w.runtime.running("web")[0]
    w.runtime.crash(web.id)
    w.tick()  # restarted at once, but the new one never binds
    new = w.runtime.running("web")[0]
    w.tick(59)
    assert w.runtime.running("web")[0].id == new.id
    w.tick(2)
    assert ("stop", new.id) in w.runtime.events
    assert "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 " \
           "seconds of launch" in w.log()
    assert "web.1]: State changed from starting to crashed" in w.log()


def test_rollout_switches_router_before_stopping_old_after_drain(w):
    deploy_live(w, {"web": "v1"})
    old = w.runtime.running("web")[0]
    v2 = w.deploy({"web": "v2"}, config={"A": "1"})
    w.tick()
    new = [s for s in w.runtime.running("web") if s.release == v2.version][0]
    old_at, new_at = w.runtime.endpoint(old), w.runtime.endpoint(new)
    assert new.env["A"] == "1" and new_at != old_at
    w.tick(1)
    assert w.router.applied[-1][0].upstreams[0][:2] == old_at  # old serves while new boots
    w.bind_all()
    w.tick()
    assert w.store.release(w.app.id, v2.version).status == "succeeded"
    assert w.router.applied[-1][0].upstreams == ((*new_at, "web.1"),)
    assert ("stop", old.id) not in w.runtime.events  # still draining
    w.tick(1)
    assert ("stop", old.id) not in w.runtime.events
    w.tick(1.5)
    events = w.runtime.events
    switched = max(i for i, e in enumerate(events) if e[0] == "router"
                   and e[1][0][1] == ((*new_at, "web.1"),))
    assert switched < events.index(("stop", old.id))
    assert names(w.runtime.running()) == ["web.1"]


def test_rollout_failure_keeps_old_release_serving(w):
    deploy_live(w, {"web": "v1"})
    old = w.runtime.running("web")[0]
    routes_before = w.router.applied[-1]
    v2 = w.deploy({"web": "broken"})
    w.tick()
    new = [s for s in w.runtime.running("web") if s.release == v2.version][0]
    w.runtime.output[old.id] = ["GET / 200 (the old release, still serving)"]
    w.runtime.output[new.id] = ["Traceback (most recent call last):", "KeyError: 'SECRET'"]
    w.runtime.crash(new.id)
    w.tick()
    assert w.store.release(w.app.id, v2.version).status == "failed"
    assert f"pushd[api]: Release v{v2.version} failed: web.1 exited with status 1" in w.log()
    # the pusher is told why, with the failing dyno's own output (not the old web.1's)
    assert read_failure(w.paths, w.app.id, v2.version) == (
        "web.1 exited with status 1 before binding $PORT",
        ["Traceback (most recent call last):", "KeyError: 'SECRET'"])
    assert ("remove", new.id) in w.runtime.events
    assert [s.id for s in w.runtime.running()] == [old.id]
    assert w.router.applied[-1] == routes_before
    w.tick(100)
    assert [s.id for s in w.runtime.running()] == [old.id]  # no retry of the failed release
    assert w.sup.wait_release(w.app.id, v2.version, 0).status == "failed"


def test_a_newer_release_supersedes_one_still_rolling_out(w):
    deploy_live(w, {"web": "v1"})
    v2 = w.deploy({"web": "v2"})
    w.tick()  # v2's dyno boots
    v3 = w.deploy({"web": "v3"})
    w.tick()
    assert w.store.release(w.app.id, v2.version).status == "superseded"  # not "failed"
    assert read_failure(w.paths, w.app.id, v2.version) == (f"superseded by v{v3.version}", [])
    w.bind_all()
    w.tick()
    assert w.store.release(w.app.id, v3.version).status == "succeeded"


def test_rollout_failure_on_boot_timeout(w):
    deploy_live(w, {"web": "v1"})
    old = w.runtime.running("web")[0]
    v2 = w.deploy({"web": "never binds"})
    w.tick()
    w.tick(61)
    assert w.store.release(w.app.id, v2.version).status == "failed"
    w.tick()
    assert [s.id for s in w.runtime.running()] == [old.id]
    assert w.router.applied[-1][0].upstreams[0][:2] == w.runtime.endpoint(old)


def test_release_without_web_succeeds_once_started(w):
    release = w.deploy({"worker": "python worker.py"})
    w.tick()
    assert w.store.release(w.app.id, release.version).status == "succeeded"
    assert w.router.applied[-1][0].upstreams == ()  # H14 page


def test_adoption_without_duplicates_and_same_routes(w):
    deploy_live(w)
    before = sorted(s.id for s in w.runtime.running())
    routes = w.router.applied[-1]
    applied = len(w.router.applied)
    w.sup = w.make()  # the daemon restarted; the dynos did not
    w.tick()
    w.tick(1)
    assert sorted(s.id for s in w.runtime.running()) == before
    assert not [e for e in w.runtime.events if e[0] == "start" and e[1] not in before]
    assert len(w.router.applied) == applied + 1 and w.router.applied[-1] == routes


def test_route_of_an_app_whose_web_dynos_crashed_is_h10(w):
    deploy_live(w, {"web": "python app.py"})
    assert w.router.applied[-1][0].crashed is False
    web = w.runtime.running("web")[0]
    w.runtime.crash(web.id)
    w.bound.discard(web.id)
    w.tick()
    route = w.router.applied[-1][0]
    assert route.upstreams == () and route.crashed is True
    w.store.set_formation(w.app.id, {"web": 0})
    w.tick()
    assert w.router.applied[-1][0].crashed is False  # scaled to zero: H14 again


def test_a_stop_all_that_times_out_leaves_the_app_running(w):
    deploy_live(w, {"web": "python app.py"})
    w.sup.running = True  # as if its loop ran; nobody serves the request: it times out
    with pytest.raises(RuntimeFailure):
        w.sup.stop_all(w.app.id, timeout=0.2)
    w.tick()
    assert w.app.id not in w.sup.halted
    assert names(w.runtime.running()) == ["web.1"]


def test_adopted_web_dyno_that_was_up_survives_a_missed_probe(w):
    deploy_live(w)
    web = w.runtime.running("web")[0]
    w.runtime.infos[web.id].started_at = w.clock.now - 3600  # up for an hour
    w.bound.clear()  # busy: the first probes after the restart fail
    w.sup = w.make()
    w.tick(w.settings.boot_timeout + 1)
    assert web.id in [s.id for s in w.runtime.running("web")]
    assert "R10" not in w.log()
    assert w.router.applied[-1][0].upstreams  # still routed


def test_adopted_web_dyno_still_booting_gets_a_fresh_boot_window(w):
    w.deploy({"web": "python app.py"})
    w.tick()  # started, never bound
    web = w.runtime.running("web")[0]
    w.runtime.infos[web.id].started_at = w.clock.now - 3600
    w.sup = w.make()
    w.tick(1)
    assert "R10" not in w.log()  # not killed for time spent before the restart
    w.tick(w.settings.boot_timeout)
    assert "Error R10 (Boot timeout)" in w.log()


def test_adoption_handles_exits_while_down(w):
    deploy_live(w)
    worker = w.runtime.running("worker")[0]
    web = w.runtime.running("web")[0]
    w.runtime.crash(worker.id)
    w.runtime.stop(web.id)  # a stop requested before the daemon died
    w.sup = w.make()
    w.tick()
    assert worker.id not in w.runtime.infos and web.id not in w.runtime.infos
    assert names(w.runtime.running()) == ["web.1", "worker.1"]


def test_an_exit_while_down_is_told_from_the_state_last_told(w):
    w.deploy({"worker": "python worker.py"})
    w.runtime.launching = True
    w.tick()  # started; the daemon dies before its next look would say "up"
    w.runtime.launching = False
    worker = w.runtime.running("worker")[0]
    w.runtime.infos[worker.id].pid = 4242  # it ran, then exited while no daemon looked
    w.runtime.crash(worker.id)
    w.sup = w.make()
    w.tick()
    told = [line.split(": ", 1)[1] for line in w.log().splitlines() if "worker.1" in line]
    assert "State changed from starting to crashed" in told
    assert not [t for t in told if t.startswith("State changed from up")]  # never said up
    assert names(w.runtime.running()) == ["worker.1"]  # and restarted


def test_duplicate_dynos_after_adoption_are_stopped(w):
    deploy_live(w, {"worker": "w"})
    first = w.runtime.running("worker")[0]
    twin = DynoSpec(**{**first.__dict__, "id": first.id + "-twin"})
    w.runtime.infos[twin.id] = DynoInfo(spec=twin, pid=9, running=True)
    w.sup = w.make()
    w.tick()
    assert len(w.runtime.running("worker")) == 1


def test_destroyed_app_is_cleaned_up(w):
    deploy_live(w)
    w.store.delete_app(w.app.id)
    w.tick()
    w.tick()  # the stopped dynos have exited: removed
    assert w.runtime.running() == [] and w.runtime.infos == {}
    assert [r.app for r in w.router.applied[-1]] == []
    assert read_status(w.paths, w.app.id) == []


def test_stop_all_returns_once_dynos_are_gone(w):
    deploy_live(w)
    stop = threading.Event()
    loop = threading.Thread(target=w.sup.run, args=(stop,), daemon=True)
    loop.start()
    try:
        w.sup.stop_all(w.app.id, timeout=10)
        assert w.runtime.running() == []
    finally:
        stop.set()
        w.sup.wake()
        loop.join(5)


def test_restart_web_is_zero_downtime(w):
    deploy_live(w, {"web": "v1"})
    old = w.runtime.running("web")[0]
    w.sup.restart(w.app.id, "web.1")
    w.tick()
    new = [s for s in w.runtime.running("web") if s.id != old.id][0]
    assert w.router.applied[-1][0].upstreams[0][:2] == w.runtime.endpoint(old)
    w.bind_all()
    w.tick()
    assert w.router.applied[-1][0].upstreams == ((*w.runtime.endpoint(new), "web.1"),)
    assert ("stop", old.id) not in w.runtime.events
    w.tick(3)
    assert [s.id for s in w.runtime.running()] == [new.id]


def test_router_error_does_not_kill_the_loop(w):
    w.router.fail = True
    release = w.deploy({"web": "v1"})
    w.tick()
    w.bind_all()
    w.tick()
    assert w.store.release(w.app.id, release.version).status == "failed"
    w.router.fail = False
    w.tick()
    assert w.router.applied  # recovered on a later tick


def test_stopped_app_runs_nothing(w):
    deploy_live(w)
    w.store.set_stopped(w.app.id, True)
    w.tick()
    assert w.runtime.running() == []
    assert w.router.applied[-1][0].upstreams == ()
    w.store.set_stopped(w.app.id, False)
    w.tick()
    assert names(w.runtime.running()) == ["web.1", "worker.1"]


def test_a_new_app_that_reuses_a_halted_id_runs(w):
    deploy_live(w, {"web": "python app.py"})
    w.sup.running = True  # apps:destroy asks the loop (ticked here) to halt the app...
    stopping = threading.Thread(target=w.sup.stop_all, args=(w.app.id, 5.0))
    stopping.start()
    while stopping.is_alive():
        w.tick()
    assert w.runtime.running() == []
    w.store.delete_app(w.app.id)  # ...and gone; a new app takes its id before the next pass
    w.app = w.store.create_app("newcomer", "bob")
    assert w.app.id in w.sup.halted
    deploy_live(w, {"web": "python app.py"})
    assert names(w.runtime.running()) == ["web.1"]
    assert all(spec.app_id == w.app.id for spec in w.runtime.running())


def test_an_old_web_dyno_gets_its_sigterm_once_the_routers_old_workers_are_done(w):
    """The router's workers from before the switch may still proxy requests to the old dyno
    (slow ones, on a starved host): its SIGTERM waits for them, at most RETIRE_CAP s."""
    from pushd.rollout_driver import RETIRE_CAP

    w.router.draining = lambda: busy
    busy = True
    deploy_live(w, {"web": "v1"})
    old = w.runtime.running("web")[0]
    w.deploy({"web": "v2"})
    w.tick()
    w.bind_all()
    w.tick()  # switched
    w.tick(w.settings.drain_seconds + 0.5)
    assert ("stop", old.id) not in w.runtime.events  # an old nginx worker still answers
    busy = False
    w.tick(0.1)
    assert ("stop", old.id) in w.runtime.events
    # a worker that never ends (a websocket) holds the retirement RETIRE_CAP s at most
    busy = True
    w.tick(10)
    before = w.runtime.running("web")[0]
    assert w.sup.restart(w.app.id) is None
    w.tick()
    w.bind_all()
    w.tick()
    w.tick(w.settings.drain_seconds + 1)
    assert ("stop", before.id) not in w.runtime.events
    w.tick(RETIRE_CAP)
    assert ("stop", before.id) in w.runtime.events
