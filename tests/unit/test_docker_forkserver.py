"""The docker runtime's warm launcher (`runtime/docker/forkserver.py`) with a stand-in launch
(`forkserver_target.act`): launches are forked by one kept server, their end is reported, a
killed server is started again, and a launch under way finishes when the daemon (or the
server) dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushd.errors import RuntimeFailure
from pushd.procs import live_stat
from pushd.runtime.docker.forkserver import ForkServer

from ..polling import wait_until

REPO = Path(__file__).resolve().parents[2]
TARGET = "tests.unit.forkserver_target:act"
# a stand-in daemon: asks its forkserver for one held launch, says the pids, waits to be killed
DAEMON = """
import json, sys, time
from pathlib import Path
from pushd.runtime.docker.forkserver import ForkServer
root = Path(sys.argv[1])
server = ForkServer(root, root / "launch.log", lambda dyno_id: None, target=sys.argv[2])
pid = server.launch("1-web.1-v1-abc")
print(json.dumps({"child": pid, "server": server.pid}), flush=True)
time.sleep(3600)
"""


class Exits:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, dyno_id: str) -> None:
        with self.lock:
            self.seen.append(dyno_id)

    def __contains__(self, dyno_id: str) -> bool:
        with self.lock:
            return dyno_id in self.seen


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ForkServer, Exits]]:
    monkeypatch.chdir(REPO)  # the server imports the stand-in target from tests/
    exits = Exits()
    made = ForkServer(tmp_path, tmp_path / "launch.log", exits, target=TARGET)
    yield made, exits
    made.close()


def alive(pid: int) -> bool:
    return live_stat(pid) is not None  # a zombie is not


def test_launches_are_forked_by_one_kept_server_and_their_end_is_reported(server, tmp_path):
    forks, exits = server
    first = forks.launch("1-web.1-v1-aaa")
    kept = forks.pid
    second = forks.launch("1-web.1-v1-bbb")
    assert forks.pid == kept and first != second != kept
    for dyno_id, pid in (("1-web.1-v1-aaa", first), ("1-web.1-v1-bbb", second)):
        wait_until(lambda d=dyno_id: d in exits)
        assert (tmp_path / f"{dyno_id}.pid").read_text() == str(pid)
        assert (tmp_path / f"{dyno_id}.done").exists()


def test_a_killed_server_is_started_again_and_its_launch_under_way_goes_on(server, tmp_path):
    forks, exits = server
    (tmp_path / "hold").touch()
    held = forks.launch("2-web.1-v1-held")
    old = forks.pid
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: "2-web.1-v1-held" in exits)  # no longer watched: reported at once
    assert alive(held) and not (tmp_path / "2-web.1-v1-held.done").exists()
    (tmp_path / "hold").unlink()
    after = forks.launch("2-web.1-v1-next")
    assert forks.pid not in (None, old)
    wait_until(lambda: "2-web.1-v1-next" in exits)
    assert (tmp_path / "2-web.1-v1-next.pid").read_text() == str(after)
    wait_until(lambda: (tmp_path / "2-web.1-v1-held.done").exists())  # it finished alone


def test_a_killed_daemon_leaves_no_server_and_its_launch_finishes(tmp_path):
    (tmp_path / "hold").touch()
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(tmp_path), TARGET], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(daemon.stdout.readline())
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    wait_until(lambda: not alive(pids["server"]))  # its stdin closed with the daemon
    assert alive(pids["child"]) and not (tmp_path / "1-web.1-v1-abc.done").exists()
    (tmp_path / "go").touch()
    wait_until(lambda: (tmp_path / "1-web.1-v1-abc.done").exists())
    wait_until(lambda: not alive(pids["child"]))


def test_ids_that_could_smuggle_a_command_are_refused(server):
    forks, _ = server
    for bad in ("", "a b", "x\nlaunch y", "../x", "-rf"):
        with pytest.raises(RuntimeFailure):
            forks.launch(bad)
    assert forks.pid is None  # nothing was even started
