"""Platform event lines, written by the supervisor alone from scripted `DynoInfo` histories
(fake runtime and clock), once each, also across a daemon restart; one-off lines from
`run_oneoff`; what a runtime reports as a dyno's state; the shared endpoint helper."""

from __future__ import annotations

import dataclasses

import pytest

from pushd.errors import RuntimeFailure
from pushd.events import EventLog, run_oneoff
from pushd.logs import timestamp
from pushd.ports import PortAllocator
from pushd.runtime.endpoints import HostEndpoints, endpoint_pairs
from pushd.runtime.records import DynoInfo, DynoSpec, DynoState, Endpoint, MemoryUse
from pushd.settings import Settings

from .test_supervisor import World, deploy_live


@pytest.fixture
def w(tmp_path) -> World:
    return World(tmp_path)


def platform(w: World, dyno: str) -> list[str]:
    """`stamp message` of the pushd[dyno] lines, in file order."""
    found = []
    for line in w.log().splitlines():
        stamp, _, rest = line.partition(" ")
        if rest.startswith(f"pushd[{dyno}]: "):
            found.append(f"{stamp} {rest.split(': ', 1)[1]}")
    return found


def messages(w: World, dyno: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in platform(w, dyno)]


def worker(w: World) -> DynoInfo:
    (spec,) = w.runtime.running("worker")
    return w.runtime.infos[spec.id]


def exit_now(info: DynoInfo, status: int, at: float, **facts) -> None:
    """The runtime reports the dyno exited, with these facts."""
    info.running, info.exit_status, info.finished_at = False, status, at
    for name, value in facts.items():
        setattr(info, name, value)


def test_a_crash_is_told_once_with_the_exit_s_own_time(w):
    deploy_live(w, {"worker": "python worker.py"})
    info = worker(w)
    exit_now(info, 1, w.clock.now - 0.25)
    w.tick(0.5)
    w.tick(0.5)
    assert messages(w, "worker.1") == [
        "Starting process with command `python worker.py`",
        "State changed from starting to up",
        "Process exited with status 1",
        "State changed from up to crashed",
        "State changed from crashed to starting",  # restarted at once (first crash)
        "Starting process with command `python worker.py`",
        "State changed from starting to up"]
    exited = platform(w, "worker.1")[2]
    assert exited == f"{timestamp(w.clock.now - 1.25)} Process exited with status 1"


def test_a_stop_that_needed_sigkill_is_told_as_r12(w):
    deploy_live(w, {"worker": "python worker.py"})
    info = worker(w)
    w.store.set_formation(w.app.id, {"worker": 0})
    w.runtime.stop = lambda dyno_id: setattr(w.runtime.infos[dyno_id], "stopping", True)
    w.tick()
    exit_now(info, 137, w.clock.now + 30, killed_after_timeout=True)
    w.tick(31)
    assert messages(w, "worker.1")[2:] == [
        "Stopping all processes with SIGTERM",
        "Error R12 (Exit timeout) -> At least one process failed to exit within 30 seconds "
        "of SIGTERM",
        "Stopping remaining processes with SIGKILL",
        "Process exited with status 137",
        "State changed from up to down"]


def test_a_dyno_killed_for_memory_is_told_as_r15(w):
    deploy_live(w, {"worker": "python worker.py"})
    exit_now(worker(w), 137, w.clock.now, oom_killed=True)
    w.tick()
    assert messages(w, "worker.1")[2:6] == [
        "Error R14 (Memory quota exceeded)",  # crossed between two looks: told first
        "Error R15 (Memory quota vastly exceeded)", "Stopping process with SIGKILL",
        "Process exited with status 137"]


def test_a_memory_kill_after_r14_says_r14_once_even_if_the_kill_freed_the_memory(w):
    deploy_live(w, {"worker": "python worker.py"})
    info = worker(w)
    used = {"mb": 95}
    w.runtime.memory = lambda dyno_id: MemoryUse(used["mb"] << 20, 100 << 20)
    w.tick(1)  # over the soft threshold: R14
    used["mb"] = 1  # the kernel killed it: its cgroup is empty before its exit is seen
    w.tick(1)
    exit_now(info, 137, w.clock.now, oom_killed=True)
    w.tick(1)
    assert messages(w, "worker.1")[2:6] == [
        "Error R14 (Memory quota exceeded)",
        "Error R15 (Memory quota vastly exceeded)", "Stopping process with SIGKILL",
        "Process exited with status 137"]


def test_why_the_runtime_ended_a_dyno_is_told_before_its_status(w):
    deploy_live(w, {"worker": "python worker.py"})
    exit_now(worker(w), 137, w.clock.now,
             reason="the dyno's network could not be set up: pasta failed")
    w.tick()
    assert messages(w, "worker.1")[2:4] == [
        "Error: the dyno's network could not be set up: pasta failed",
        "Process exited with status 137"]


def test_an_exit_while_the_daemon_was_down_is_told_when_adopted_with_its_time(w):
    deploy_live(w, {"worker": "python worker.py"})
    info = worker(w)
    exit_now(info, 3, w.clock.now + 5)  # the daemon is down meanwhile
    w.clock.advance(60)
    w.sup = w.make()  # the restarted daemon
    w.tick()
    assert f"{timestamp(info.finished_at)} Process exited with status 3" in platform(
        w, "worker.1")
    assert messages(w, "worker.1").count("Process exited with status 3") == 1
    assert messages(w, "worker.1").count("State changed from starting to up") == 2


def test_an_exit_told_just_before_the_daemon_died_is_not_told_again(w):
    deploy_live(w, {"worker": "python worker.py"})
    info = worker(w)
    forget = w.runtime.remove
    w.runtime.remove = lambda dyno_id: None  # killed after the lines, before remove()
    exit_now(info, 1, w.clock.now)
    w.tick()
    assert messages(w, "worker.1").count("Process exited with status 1") == 1
    w.runtime.remove = forget
    w.runtime.infos = {i: d for i, d in w.runtime.infos.items() if d is info}  # pre-restart
    w.sup = w.make()
    w.tick()
    assert messages(w, "worker.1").count("Process exited with status 1") == 1
    assert messages(w, "worker.1").count("State changed from up to crashed") == 1
    assert info.spec.id not in w.runtime.infos  # forgotten now
    assert len(w.runtime.running("worker")) == 1  # and restarted


def test_adopted_dynos_that_were_up_say_nothing_and_one_that_came_up_says_so_once(w):
    deploy_live(w, {"web": "python app.py"})
    before = messages(w, "web.1")
    w.sup = w.make()
    w.tick()
    w.tick(1)
    assert messages(w, "web.1") == before  # up before the restart: nothing new to tell
    w.deploy({"web": "python app2.py"})
    w.tick()  # the new web.1 starts; the daemon dies before it listens
    w.sup = w.make()
    w.bind_all()
    w.tick()
    assert messages(w, "web.1").count("State changed from starting to up") == 2


def test_a_dyno_that_could_not_start_says_why(w):
    w.runtime.full = True
    w.deploy({"web": "python app.py"})
    w.tick()
    assert messages(w, "web.1") == ["Failed to start: No free port left in 20000-29999"]


class OneOffRuntime:
    """Runs a one-off by script: the client leaves, or not; the status it returns."""

    def __init__(self, status: int, leave: bool) -> None:
        self.status, self.leave = status, leave

    def run(self, spec: DynoSpec, io) -> int:
        io.write(b"output\n")
        if self.leave:
            assert io.gone()  # as a runtime polls it
        return self.status


class Client:
    tty, term_size = False, None

    def __init__(self, gone: bool) -> None:
        self.out, self._gone = b"", gone

    def read(self, size: int) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        self.out += data

    def write_err(self, data: bytes) -> None:
        self.out += data

    def gone(self) -> bool:
        return self._gone


def oneoff(w: World) -> DynoSpec:
    return DynoSpec(id="1-run.4321-x", app_id=w.app.id, app="myapp", release=1,
                    process_type="run", index=4321, command="bash", env={}, slug_dir="/slug",
                    uid=40001)


@pytest.mark.parametrize(("status", "leave", "between"), [
    (3, False, []),
    (129, True, ["Client disconnected; stopping all processes with SIGHUP"]),
    (137, True, ["Client disconnected; stopping all processes with SIGHUP",
                 "Stopping remaining processes with SIGKILL"]),
])
def test_one_off_lines_come_from_one_place_whatever_the_runtime(w, status, leave, between):
    client = Client(gone=leave)
    events = EventLog(w.paths, w.settings.log_max_bytes)
    assert run_oneoff(OneOffRuntime(status, leave), oneoff(w), client, events) == status
    assert client.out == b"output\n"
    assert messages(w, "run.4321") == ["Starting process with command `bash`", *between,
                                       f"Process exited with status {status}"]


def test_the_state_a_runtime_reports():
    base = DynoInfo(spec=DynoSpec(id="x", app_id=1, app="a", release=1, process_type="web",
                                  index=1, command="c", env={}, slug_dir="/s", uid=1),
                    pid=None, running=True)
    assert base.state is DynoState.STARTING
    assert dataclasses.replace(base, pid=7).state is DynoState.UP
    assert dataclasses.replace(base, running=False, exit_status=1).state is DynoState.CRASHED
    assert dataclasses.replace(base, running=False, exit_status=143,
                               stopping=True).state is DynoState.EXITED


def web_info(port: int, uid: int, running: bool = True) -> DynoInfo:
    spec = DynoSpec(id=f"d{port}", app_id=1, app="a", release=1, process_type="web", index=1,
                    command="c", env={}, slug_dir="/s", uid=uid, port=5000)
    return DynoInfo(spec=spec, pid=1, running=running, endpoint=Endpoint("127.0.0.1", port))


def test_endpoints_feed_the_firewall_only_when_they_change_and_retry_a_refusal():
    sent: list[frozenset] = []

    def apply(pairs: frozenset) -> None:
        sent.append(pairs)
        if len(sent) == 1:
            raise RuntimeError("nft: resource busy")

    endpoints = HostEndpoints(Settings(), apply=apply)
    dynos = [web_info(31001, 40001), web_info(31002, 40002, running=False)]
    endpoints.guard(dynos)  # refused: tried again on the next call
    endpoints.guard(dynos)
    assert sent == [{(31001, 40001)}] * 2  # exited dynos have no endpoint to keep
    endpoints.guard(dynos)
    assert len(sent) == 2
    endpoints.guard(dynos, frozenset({(31003, 40001)}))  # about to be bound
    assert sent[-1] == {(31001, 40001), (31003, 40001)}
    assert endpoint_pairs(dynos) == {(31001, 40001)}


def test_endpoints_are_allocated_apart_from_known_dynos_and_fail_with_one_line():
    class Allocator(PortAllocator):
        def allocate(self, exclude: set[int]) -> int:
            free = [p for p in (31001, 31002) if p not in exclude]
            if not free:
                raise RuntimeFailure("No free port left in 31001-31002")
            return free[0]

    endpoints = HostEndpoints(Settings(firewall=False), Allocator((31001, 31002)))
    taken = endpoints.allocate([web_info(31001, 40001, running=False)])
    assert taken == Endpoint("127.0.0.1", 31002)
    with pytest.raises(RuntimeFailure, match="No free port left"):
        endpoints.allocate([web_info(31001, 1), web_info(31002, 1)])
