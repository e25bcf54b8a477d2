"""scheduler.py: due entries start one scheduler.N one-off per minute; missed minutes (a
daemon that was down) are not replayed; a malformed app.json is told once per release."""

from __future__ import annotations

from types import SimpleNamespace

from pushd import scheduler
from pushd.cron import CronEntry, parse_schedule
from pushd.errors import InvalidValue
from pushd.models import App, Release


class FakeStore:
    def __init__(self) -> None:
        self.app = App(1, "cronapp", "admin", 0.0)
        self.release = Release(1, 3, "slug", {}, {"web": "x"}, "d", "admin", 0.0, "succeeded",
                               "abc")

    def apps(self) -> list[App]:
        return [self.app]

    def current_release(self, app_id: int) -> Release:
        return self.release


def make(monkeypatch, entries, start: float = 600.0):
    now = [start]
    started: list[tuple[str, str]] = []
    written: list[str] = []
    platform = SimpleNamespace(store=FakeStore())
    monkeypatch.setattr(scheduler, "release_entries", lambda p, a, r: entries())
    monkeypatch.setattr(scheduler.detached, "start", lambda p, app, command, kind: (
        started.append((command, kind)) or SimpleNamespace(dyno=f"{kind}.{len(started)}")))
    monkeypatch.setattr(scheduler.detached, "events", lambda p: SimpleNamespace(
        write=lambda app_id, dyno, message: written.append(message)))
    return scheduler.Scheduler(platform, clock=lambda: now[0]), now, started, written


def test_fires_once_per_due_minute_and_never_replays_missed_ones(monkeypatch):
    every = CronEntry("echo tick", parse_schedule("* * * * *"))
    never = CronEntry("echo never", parse_schedule("0 0 1 1 *"))
    loop, now, started, _ = make(monkeypatch, lambda: [every, never])
    assert loop.step() == []  # the minute it started in is not run
    now[0] += 30
    assert loop.step() == []  # still that minute
    now[0] += 30
    assert loop.step() == ["scheduler.1"]
    assert loop.step() == []
    now[0] += 10 * 60  # ten minutes without a look (a daemon that was down)
    assert loop.step() == ["scheduler.2"]
    assert started == [("echo tick", "scheduler")] * 2


def test_malformed_cron_is_logged_once_per_release(monkeypatch):
    def bad():
        raise InvalidValue("app.json cron entry 1: minute 61 is out of range (0-59)")

    loop, now, started, written = make(monkeypatch, bad)
    for _ in range(3):
        now[0] += 60
        loop.step()
    assert started == []
    assert written == ["Error: app.json cron entry 1: minute 61 is out of range (0-59)"]
