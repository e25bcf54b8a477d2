"""R14 from the supervisor, replayed with a fake runtime that reports memory: once per
crossing of the soft threshold, before the dyno is killed at its limit and restarted."""

from __future__ import annotations

import pytest

from pushd.memwatch import R14
from pushd.runtime.records import MemoryUse
from tests.unit.test_supervisor import World, deploy_live

MB = 1024 * 1024


class Measured:
    """Memory the fake runtime reports per dyno id, in MB of a 100 MB limit."""

    def __init__(self) -> None:
        self.usage: dict[str, float] = {}

    def __call__(self, dyno_id: str) -> MemoryUse | None:
        used = self.usage.get(dyno_id)
        return None if used is None else MemoryUse(int(used * MB), 100 * MB)


@pytest.fixture
def w(tmp_path) -> World:
    world = World(tmp_path)
    world.runtime.memory = Measured()
    return world


def r14_lines(w: World) -> list[str]:
    return [line for line in w.log().splitlines() if R14 in line]


def test_r14_once_when_a_dyno_nears_its_limit_then_restarted_after_the_oom_kill(w):
    deploy_live(w, {"web": "python app.py", "worker": "python worker.py"})
    worker = w.runtime.running("worker")[0]
    for used in (40, 60, 89):
        w.runtime.memory.usage[worker.id] = used
        w.tick(0.5)
    assert r14_lines(w) == []
    for used in (91, 95, 99, 85, 98):  # one crossing, however long it stays up there
        w.runtime.memory.usage[worker.id] = used
        w.tick(0.5)
    assert len(r14_lines(w)) == 1 and "pushd[worker.1]: " + R14 in r14_lines(w)[0]
    info = w.runtime.infos[worker.id]
    info.running, info.exit_status, info.oom_killed = False, 137, True  # the kernel's kill
    w.tick()
    assert len(r14_lines(w)) == 1  # said already
    again = w.runtime.running("worker")
    assert len(again) == 1 and again[0].id != worker.id  # restarted
    w.runtime.memory.usage[again[0].id] = 95
    w.tick(0.5)
    assert len(r14_lines(w)) == 2  # the new dyno's own crossing


def test_a_dyno_killed_between_two_looks_still_gets_its_r14(w):
    deploy_live(w, {"worker": "python worker.py"})
    worker = w.runtime.running("worker")[0]
    w.runtime.memory.usage[worker.id] = 30
    w.tick(0.5)
    info = w.runtime.infos[worker.id]
    info.running, info.exit_status, info.oom_killed = False, 137, True
    w.tick()
    assert len(r14_lines(w)) == 1


def test_a_dyno_that_drops_well_below_crosses_again(w):
    deploy_live(w, {"worker": "python worker.py"})
    worker = w.runtime.running("worker")[0]
    for used in (92, 70, 93):
        w.runtime.memory.usage[worker.id] = used
        w.tick(0.5)
    assert len(r14_lines(w)) == 2


def test_a_stopping_dyno_is_not_measured(w):
    deploy_live(w, {"worker": "python worker.py"})
    worker = w.runtime.running("worker")[0]
    w.sup.dynos[worker.id].stopping = True
    w.runtime.memory.usage[worker.id] = 99
    w.tick(0.5)
    assert r14_lines(w) == []
