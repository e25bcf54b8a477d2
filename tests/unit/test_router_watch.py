"""The router watch's logic with a scripted router and clock."""

from __future__ import annotations

import json
from pathlib import Path

from pushd.errors import RouterError
from pushd.router.watch import RouterWatch, describe_watch


class ScriptedRouter:
    def __init__(self, failures: list[str]) -> None:
        self.running, self.failures, self.starts = True, failures, 0

    def alive(self) -> bool:
        return self.running

    def start(self) -> None:
        self.starts += 1
        if self.failures:
            raise RouterError(self.failures.pop(0))
        self.running = True


def test_a_dead_router_is_restarted_at_once_and_the_outage_recorded(tmp_path: Path):
    now = [100.0]
    router = ScriptedRouter([])
    watch = RouterWatch(router, tmp_path / "watch.json", clock=lambda: now[0])
    watch.step()
    assert router.starts == 0 and not (tmp_path / "watch.json").exists()
    router.running = False
    now[0] = 101.0
    watch.step()
    assert router.starts == 1
    state = json.loads((tmp_path / "watch.json").read_text())
    assert state == {"state": "up", "last_outage": {"at": 101.0, "seconds": 0.0}}
    assert describe_watch(tmp_path / "watch.json") == (
        "last outage 1970-01-01 00:01:41 UTC, 0.00 s")


def test_a_failing_restart_is_retried_and_its_reason_shown_until_it_works(tmp_path: Path):
    now = [0.0]
    router = ScriptedRouter(["port 8080 is held by pid 7 (x)", "port 8080 is held by pid 7 (x)"])
    router.running = False
    watch = RouterWatch(router, tmp_path / "watch.json", retry=1.0, clock=lambda: now[0])
    watch.step()
    assert describe_watch(tmp_path / "watch.json") == (
        "restarting since 1970-01-01 00:00:00 UTC: port 8080 is held by pid 7 (x)")
    now[0] = 0.5
    watch.step()  # not yet: one try a second
    assert router.starts == 1
    for t in (1.0, 2.0):
        now[0] = t
        watch.step()
    assert router.starts == 3 and router.running
    assert json.loads((tmp_path / "watch.json").read_text())["last_outage"]["seconds"] == 2.0
