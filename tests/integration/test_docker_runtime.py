"""The docker runtime's own promises beyond the shared contract, with the real engine: what
happens while no daemon runs (a "daemon" here is a child process holding a runtime, killed
with SIGKILL), release images made once under concurrent starts, OOM reported."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushd.procs import live_stat
from pushd.runtime import egress
from pushd.runtime.docker.client import SLUG
from pushd.runtime.docker.images import ensure_release_image

from ..contract.conftest import DockerHarness, fresh_harness
from ..contract.helpers import exited, listed, log_texts
from ..polling import wait_until

REPO = Path(__file__).resolve().parents[2]
# a stand-in daemon: starts one dyno (or runs a one-off) on the harness's state, says which,
# then waits to be killed
HOLDER = """
import json, sys, time
from pathlib import Path
from tests.contract.conftest import DockerHarness
from tests.contract.helpers import PipeClient
root, app_id, slug, kind, command, then = sys.argv[1:7]
harness = DockerHarness(Path(root))
spec = harness.spec(int(app_id), slug, kind, command, stop_timeout=2.0)
print(json.dumps({"id": spec.id, "dyno": spec.dyno}), flush=True)
if kind == "run":
    harness.runtime.run(spec, PipeClient(b""))
else:
    harness.runtime.start(spec)
    while then != "at-once" and not [i for i in harness.runtime.list()
                                     if i.spec.id == spec.id and i.pid]:
        time.sleep(0.05)  # its container runs, with its network
if then == "stop":
    harness.runtime.stop(spec.id)
print("done", flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def harness() -> Iterator[DockerHarness]:
    with fresh_harness(DockerHarness, "pushd-docker-rt-") as made:
        yield made


def slug_for(harness: DockerHarness, app_id: int) -> str:
    harness.paths.app_dir(app_id).mkdir(parents=True, exist_ok=True)
    return harness.slug(app_id, {"README": "a slug\n"})


def hold(harness: DockerHarness, app_id: int, kind: str, command: str, then: str = ""
         ) -> tuple[subprocess.Popen, dict[str, str]]:
    """A stand-in daemon that started this dyno (and has said so)."""
    daemon = subprocess.Popen([sys.executable, "-c", HOLDER, str(harness.root), str(app_id),
                               slug_for(harness, app_id), kind, command, then],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    said = json.loads(daemon.stdout.readline())
    return daemon, said


def kill(daemon: subprocess.Popen) -> None:
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()


def state_of(harness: DockerHarness, dyno_id: str) -> dict:
    return json.loads((harness.paths.root / "docker" / "dynos" / f"{dyno_id}.json").read_text())


def test_output_printed_while_no_daemon_runs_reaches_the_log_once(harness):
    command = "for i in $(seq 1 60); do echo line-$i; sleep 0.05; done; sleep 300"
    daemon, said = hold(harness, 11, "worker", command)
    try:
        wait_until(lambda: "line-5" in log_texts(harness, 11, said["dyno"]), timeout=30)
    finally:
        kill(daemon)  # the daemon dies mid-stream; the dyno goes on printing
    container = harness.runtime.client.containers.get(state_of(harness, said["id"])["container"])
    wait_until(lambda: b"line-60" in container.logs(), timeout=30)
    assert len(egress.processes(harness.paths.root)) == 2  # its way out outlived the daemon
    runtime = harness.fresh_runtime()  # the restarted daemon
    assert listed(runtime, said["id"]).running
    wait_until(lambda: "line-60" in log_texts(harness, 11, said["dyno"]), timeout=30)
    assert log_texts(harness, 11, said["dyno"]) == [f"line-{i}" for i in range(1, 61)]
    # the container dies while no daemon watches; whoever lists it next sees the exit
    container.kill()
    done = wait_until(lambda: exited(harness.fresh_runtime(), said["id"]), timeout=30)
    assert done.exit_status == 137 and not done.stopping
    runtime.remove(said["id"])
    assert listed(runtime, said["id"]) is None


def test_a_stop_escalates_to_sigkill_even_if_the_daemon_dies_at_once(harness):
    command = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.2; done"
    daemon, said = hold(harness, 12, "worker", command, then="stop")
    try:
        assert daemon.stdout.readline().strip() == "done"
    finally:
        kill(daemon)  # right after asking for the stop
    runtime = harness.fresh_runtime()
    done = wait_until(lambda: exited(runtime, said["id"]), timeout=30)
    assert (done.exit_status, done.stopping, done.killed_after_timeout) == (137, True, True)
    assert done.finished_at > 0
    assert "got TERM" in log_texts(harness, 12, said["dyno"])  # SIGTERM came first
    runtime.remove(said["id"])


def test_one_offs_of_a_dead_process_are_swept(harness):
    daemon, said = hold(harness, 13, "run", "sleep 300")
    engine = harness.runtime.client
    label = {"label": [f"io.pushd.id={said['id']}"]}
    try:
        wait_until(lambda: engine.containers.list(filters=label), timeout=30)
        assert harness.fresh_runtime().sweep() == []  # its owner lives: left alone
    finally:
        kill(daemon)
    assert harness.fresh_runtime().sweep() == [said["id"]]
    assert engine.containers.list(all=True, filters=label) == []


def test_concurrent_starts_make_the_release_image_once(harness):
    slug = slug_for(harness, 14)
    engine = harness.runtime.client
    tags: list[str] = []
    threads = [threading.Thread(target=lambda: tags.append(ensure_release_image(
        engine, "drun-images", 14, 3, slug, lock_dir=harness.paths.root / "docker")))
        for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tags == ["pushd/drun-images:v3"] * 3
    made = engine.images.list(filters={"label": f"{SLUG}={Path(slug).resolve()}"})
    assert len(made) == 1 and made[0].tags == ["pushd/drun-images:v3"]
    assert made[0].labels["io.pushd.app"] == "drun-images"
    engine.images.remove(made[0].id, force=True)


def test_a_dyno_over_its_memory_limit_is_reported_oom_killed(harness):
    spec = harness.spec(15, slug_for(harness, 15), "worker",
                        "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'")
    harness.runtime.start(spec)
    try:
        done = wait_until(lambda: exited(harness.runtime, spec.id), timeout=60)
        assert (done.exit_status, done.oom_killed) == (137, True)
        assert "memory" in done.reason
    finally:
        harness.runtime.remove(spec.id)


def test_a_dyno_stopped_or_removed_while_it_launches_does_not_linger(harness):
    slug = slug_for(harness, 16)
    stopped = harness.spec(16, slug, "worker", "sleep 300")
    removed = harness.spec(16, slug, "worker", "sleep 300")
    for spec in (stopped, removed):
        harness.runtime.start(spec)
    harness.runtime.stop(stopped.id)  # before its container even runs
    harness.runtime.remove(removed.id)
    done = wait_until(lambda: exited(harness.runtime, stopped.id), timeout=60)
    assert done.stopping and done.exit_status in (0, 137, 143)
    harness.runtime.remove(stopped.id)
    engine = harness.runtime.client
    wait_until(lambda: not engine.containers.list(all=True, filters={
        "label": [f"io.pushd.id={removed.id}"]}), timeout=60)
    assert listed(harness.runtime, removed.id) is None


def test_resource_limits_reach_the_container_and_its_memory_is_reported(harness):
    """`resource:limit` in the docker runtime: the CPU cap and the memory limit are the
    container's, and `memory()` (what R14 is judged on) reads its use against that limit."""
    spec = dataclasses.replace(
        harness.spec(18, slug_for(harness, 18), "worker",
                     "python3 -c 'b = bytearray(40 * 1024 * 1024); import time; time.sleep(300)'"),
        cpu_limit=0.5, memory_mb=128)
    harness.runtime.start(spec)
    try:
        info = wait_until(lambda: (i := listed(harness.runtime, spec.id)) and i.pid and i)
        config = harness.runtime.client.api.inspect_container(
            state_of(harness, info.spec.id)["container"])["HostConfig"]
        assert config["NanoCpus"] == 500_000_000 and config["Memory"] == 128 * 1024 * 1024
        use = wait_until(lambda: (m := harness.runtime.memory(spec.id)) and m.usage > 40e6 and m)
        assert use.limit == 128 * 1024 * 1024
    finally:
        harness.runtime.remove(spec.id)


def launchers_of(harness: DockerHarness, parent: int) -> list[int]:
    """The warm launcher (forkserver) a process started on this state dir."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pushd.runtime.docker.forkserver" in argv \
                and str(harness.paths.root).encode() in argv \
                and (stat := live_stat(int(entry.name))) and stat.ppid == parent:
            found.append(int(entry.name))
    return found


def test_a_daemon_killed_mid_launch_leaves_the_launch_done_once_and_no_launcher(harness):
    daemon, said = hold(harness, 18, "worker", "sleep 300", then="at-once")
    assert daemon.stdout.readline().strip() == "done"
    [launcher] = launchers_of(harness, daemon.pid)  # it forked the launch
    kill(daemon)  # while its container is being made
    wait_until(lambda: not live_stat(launcher), timeout=30)  # it ended with its daemon
    runtime = harness.fresh_runtime()
    info = wait_until(lambda: (found := listed(runtime, said["id"])) and found.pid and found,
                      timeout=60)
    assert info.running and not info.reason
    containers = runtime.client.containers.list(all=True, filters={
        "label": [f"io.pushd.id={said['id']}"]})
    assert [c.status for c in containers] == ["running"]  # made once, whole
    runtime.remove(said["id"])
