"""The runtime contract where the behaviour is the supervisor's: a real Supervisor, with a
real store and release, driving the runtime under test (see conftest.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushd.dynostatus import wait_release
from pushd.events import STOPPING as STOPPING_LINE
from pushd.logs import format_line
from pushd.models import App, Release, Slug
from pushd.store import Store
from pushd.supervisor import Supervisor

from ..polling import wait_until
from .conftest import Harness
from .daemon import Router
from .helpers import SERVER, get, log_entries, log_texts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(harness: Harness) -> Store:
    return Store(harness.paths.db)


def deploy(harness: Harness, store: Store, name: str, process_types: dict[str, str],
           files: dict[str, str]) -> tuple[App, Release]:
    """A new app with one pending release of these files, as a push leaves it."""
    app = store.create_app(name, "contract")
    harness.paths.app_dir(app.id).mkdir(parents=True, exist_ok=True)
    slug = Slug(f"slug-{name}", app.id, "/dev/null", harness.slug(app.id, files), 1, "c0ffee",
                process_types)
    store.add_slug(slug)
    # as ps:scale would: by Heroku's rule only web starts by itself
    store.set_formation(app.id, {t: 1 for t in process_types if t != "web"})
    return app, store.create_release(app.id, description="Deploy", user="contract", slug=slug)


@contextlib.contextmanager
def supervising(harness: Harness, store: Store, app: App) -> Iterator[Supervisor]:
    """A supervisor loop on its own thread; the app's dynos are stopped after."""
    supervisor = Supervisor(store, harness.runtime, Router(), harness.settings, harness.paths)
    stop = threading.Event()
    loop = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    loop.start()
    try:
        yield supervisor
    finally:
        try:
            supervisor.stop_all(app.id, timeout=15)
        finally:
            stop.set()
            supervisor.wake()
            loop.join(10)


def seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def test_crashed_dyno_is_restarted_with_backoff(harness, store):
    app, release = deploy(harness, store, "crashy", {"worker": "echo boot; sleep 0.3; exit 1"},
                          {"README": "a worker that crashes\n"})
    with supervising(harness, store, app):
        assert wait_release(store, app.id, release.version, 30).status == "succeeded"

        def restarts() -> list[tuple[str, str]]:
            return [(stamp, text) for stamp, text in log_entries(harness, app.id, "worker.1")
                    if re.fullmatch(r"State changed from \w+ to crashed", text)
                    or text == "State changed from crashed to starting"]

        wait_until(lambda: sum(t.endswith("to starting") for _, t in restarts()) >= 3
                   and log_texts(harness, app.id, "worker.1").count("boot") >= 4, timeout=30)
        events = restarts()
        platform = log_texts(harness, app.id, "worker.1", source="pushd")
    crashed = [seconds(s) for s, t in events if t.endswith("to crashed")]
    started = [seconds(s) for s, t in events if t.endswith("to starting")]
    # each restart follows its crash, after a delay that doubles from the second crash on
    # (lower bounds only: the supervisor never restarts before the delay is over)
    base = harness.settings.crash_backoff_base
    gaps = [start - crash for crash, start in zip(crashed, started, strict=False)]
    print("restart delays", [f"{gap:.2f}" for gap in gaps])
    assert len(gaps) >= 3 and all(gap >= 0 for gap in gaps), events
    assert gaps[1] >= base - 0.05 and gaps[2] >= 2 * base - 0.05, gaps
    # each start and each exit is told once, with its status, whoever writes the line (one
    # more of each may be under way as the snapshot is taken)
    starts = sum(t.startswith("Starting process with command") for t in platform)
    exits = platform.count("Process exited with status 1")
    assert len(started) <= starts <= len(started) + 1, platform
    assert 3 <= len(crashed) <= exits <= len(crashed) + 1, platform


def test_dynos_outlive_a_killed_daemon_and_are_adopted_without_a_restart(harness, store):
    app, release = deploy(harness, store, "adopted", {"web": "python3 server.py"},
                          {"server.py": SERVER})
    daemon = subprocess.Popen([sys.executable, "-m", "tests.contract.daemon", harness.name,
                               str(harness.root)], cwd=REPO)
    try:
        wait_until(lambda: daemon.poll() is not None
                   or store.release(app.id, release.version).status != "pending", timeout=30)
        assert daemon.poll() is None, "the stand-in daemon died"
        assert store.release(app.id, release.version).status == "succeeded"
        (before,) = [i for i in harness.fresh_runtime().list() if i.spec.app_id == app.id]
        token = wait_until(lambda: get(before.endpoint), timeout=10).split()[0]
    finally:
        daemon.send_signal(signal.SIGKILL)  # the daemon dies hard
        daemon.wait()
    runtime = harness.fresh_runtime()  # as the restarted daemon makes it
    (after,) = [i for i in runtime.list() if i.spec.app_id == app.id]
    assert (after.spec.id, after.endpoint, after.running) == (before.spec.id, before.endpoint,
                                                              True)
    assert get(after.endpoint).split()[0] == token  # the same process still serves
    router = Router()
    supervisor = Supervisor(store, runtime, router, harness.settings, harness.paths)
    try:
        for _ in range(5):  # passes of the new daemon's loop: any restart would start here
            supervisor.reconcile()
        assert [i.spec.id for i in runtime.list() if i.spec.app_id == app.id] == [
            before.spec.id]
        assert get(after.endpoint).split()[0] == token
        (route,) = [r for r in router.routes if r.app == app.name]
        assert route.upstreams == ((after.endpoint.host, after.endpoint.port, "web.1"),)
        assert [(s.dyno, s.state) for s in supervisor.status()[app.id]] == [("web.1", "up")]
        platform = log_texts(harness, app.id, "web.1", source="pushd")
        assert sum(t.startswith("Starting process with command") for t in platform) == 1
        assert platform.count("State changed from starting to up") == 1
    finally:
        supervisor.stop_all(app.id, timeout=15)


def stand_in_daemon(harness: Harness) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.contract.daemon", harness.name,
                             str(harness.root)], cwd=REPO)


def killed(daemon: subprocess.Popen) -> None:
    assert daemon.poll() is None, "the stand-in daemon died"
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()


def test_event_lines_are_written_once_even_when_the_daemon_is_killed(harness, store):
    """Each event of a dyno is told once, by the supervisor, from what the runtime reports:
    also an exit that happened while the daemon was down (told when a new daemon adopts the
    dyno, with the exit's own time), and again by none of the daemons after it."""
    app, release = deploy(harness, store, "onceonly",
                          {"worker": "echo booted; sleep 5; echo leaving; exit 3"},
                          {"README": "a worker that exits while the daemon is down\n"})

    def lines() -> list[tuple[str, str]]:
        return log_entries(harness, app.id, "worker.1")

    def texts(prefix: str) -> list[tuple[str, str]]:
        return [(stamp, text) for stamp, text in lines() if text.startswith(prefix)]

    first = stand_in_daemon(harness)
    try:
        wait_until(lambda: store.release(app.id, release.version).status != "pending"
                   and "booted" in log_texts(harness, app.id, "worker.1"), timeout=30)
    finally:
        killed(first)  # before its dyno exits
    assert texts("Process exited") == []
    (gone,) = [i for i in harness.fresh_runtime().list() if i.spec.app_id == app.id]
    gone = wait_until(lambda: next((i for i in harness.fresh_runtime().list()
                                    if i.spec.id == gone.spec.id and not i.running), None),
                      timeout=30)
    assert texts("Process exited") == []  # nobody watched it exit
    second = stand_in_daemon(harness)
    try:  # adopts the exited dyno: its exit is told, the worker restarted
        wait_until(lambda: texts("Process exited") and len(texts("Starting process")) >= 2,
                   timeout=30)
    finally:
        killed(second)
    exits = texts("Process exited")
    assert exits[0] == (format_line("pushd", "worker.1", "", gone.finished_at).split(" ")[0],
                        "Process exited with status 3")  # the exit's own time
    with supervising(harness, store, app) as third:  # a third daemon, then a stop
        wait_until(lambda: [(d.dyno, d.state) for d in third.status().get(app.id, [])]
                   in ([("worker.1", "up")], [("worker.1", "crashed")]), timeout=30)
    seen = lines()
    print("\n".join(f"{stamp} {text}" for stamp, text in seen))
    platform = [entry for entry in seen if entry[1] != "booted" and entry[1] != "leaving"]
    assert len(platform) == len(set(platform)), platform  # no event told twice
    assert texts("Process exited with status 3")[0] == exits[0]
    # every exit is told as a crash from the state last told: up, or starting when the
    # daemon that started it was killed before it looked again (then never said up)
    crashes = [text for _, text in seen if text.endswith(" to crashed")]
    assert len(crashes) == len(texts("Process exited with status 3"))
    never_up = crashes.count("State changed from starting to crashed")
    assert crashes.count("State changed from up to crashed") + never_up == len(crashes)
    starts = len(texts("Starting process with command"))
    assert starts == len(texts("State changed from starting to up")) + never_up >= 2
    assert [text for _, text in seen].count(STOPPING_LINE) == 1
    assert len(texts("Process exited")) == len(texts("Process exited with status 3")) + 1
