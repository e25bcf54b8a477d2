"""Issue 10, builds and one-offs, over real OpenSSH and git push through a real daemon:
`builds`, `builds:output`, `builds:cancel` during a slow build, a second push waiting in
line, a daemon `kill -9` mid-build leaving no lock, `run TYPE`, `run app -- --help`,
`run:detached` (its output in `logs`, the dyno in `ps`), `ps:scale` before the first push,
and a cron entry of app.json firing (the daemon's cron clock sped up: `cron_speed`, a
`test_hooks`-only setting)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from ..polling import wait_until
from .harness import PushdUnderTest, new_root, python_app, running

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WAITING = FIXTURES / "buildpacks" / "waiting"


@pytest.fixture(scope="module")
def bp():
    yield from running(new_root("pushd-builds-"), {
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300,
        "ssh_auth_timeout": 5, "dyno_disk_mb": 64, "test_hooks": True, "cron_speed": 60})


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def start_push(platform: PushdUnderTest, repo: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=platform.env(),
                            stdout=out.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def build_waiting(platform: PushdUnderTest) -> list[Path]:
    return list(platform.state.glob("apps/*/builds/build-*/cache/waiting"))


def let_go(platform: PushdUnderTest) -> None:
    for waiting in build_waiting(platform):
        (waiting.parent / "go").touch()


def test_builds_list_output_run_type_and_detached_one_offs(bp: PushdUnderTest):
    files = {**python_app("bld v1"), "Procfile": "web: python3 app.py\nconsole: echo console-ran\n",
             "bin/--help": "#!/bin/sh\necho \"the app's own --help\"\n"}
    repo = bp.new_app_repo("bld-web", files, executable=("bin/--help",))
    pushed = bp.push(repo)
    assert pushed.returncode == 0, pushed.stderr
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True,
                         capture_output=True).stdout.strip()
    assert "remote: -----> Creating app bld-web" in pushed.stderr.splitlines()

    listed = ok(bp.ssh("builds", "bld-web"))
    assert re.search(rf"^1\s+succeeded\s+{sha[:7]}\s+\d+s\s+admin\s", listed, re.M), listed
    output = ok(bp.ssh("builds:output", "bld-web", "1"))
    assert "-----> Python app detected" in output
    assert output == ok(bp.ssh("builds:output", "bld-web"))  # the latest by default
    assert bp.ssh("builds:output", "bld-web", "7").returncode != 0

    assert ok(bp.ssh("run", "bld-web", "console")) == "console-ran\n"  # a Procfile type
    assert ok(bp.ssh("run", "bld-web", "--", "--help")) == "the app's own --help\n"

    started = ok(bp.ssh("run:detached", "bld-web", "echo detached-out; sleep 4"))
    dyno = re.search(r"up, (run\.\d+)", started).group(1)
    ps = ok(bp.ssh("ps", "bld-web"))
    assert re.search(rf"^{re.escape(dyno)}: up .*: echo detached-out; sleep 4$", ps, re.M), ps
    assert re.search(r"^web\.1: up .* at 127\.0\.0\.1:\d+$", ps, re.M), ps  # its endpoint
    wait_until(lambda: f"app[{dyno}]: detached-out" in bp.ssh("logs", "bld-web").stdout,
               timeout=30)
    # it ends with its command: its exit is logged and ps no longer lists it
    wait_until(lambda: f"pushd[{dyno}]: Process exited with status 0"
               in bp.ssh("logs", "bld-web").stdout, timeout=60)
    assert dyno not in ok(bp.ssh("ps", "bld-web"))


def test_ps_scale_before_the_first_push_sets_the_first_formation(bp: PushdUnderTest):
    ok(bp.ssh("apps:create", "bld-scale"))
    # never pushed: there is nothing to restart, and config:set says so
    assert "Setting GREETING on bld-scale... done, v1" in ok(
        bp.ssh("config:set", "bld-scale", "GREETING=hi"))
    assert "now running web at 2, worker at 0" in ok(
        bp.ssh("ps:scale", "bld-scale", "web=2", "worker=0"))
    files = {**python_app("scaled"), "Procfile": "web: python3 app.py\nworker: sleep 600\n"}
    repo = bp.new_app_repo("bld-scale", files)
    assert bp.push(repo).returncode == 0
    ps = wait_until(lambda: (lambda out: "web.2: up" in out and out)(
        bp.ssh("ps", "bld-scale").stdout), timeout=60)
    assert "=== web (2)" in ps and "worker" not in ps, ps
    assert ok(bp.ssh("apps:destroy", "bld-scale", "--confirm", "bld-scale"))


def test_cancel_queue_and_a_daemon_killed_mid_build(bp: PushdUnderTest):
    tmp_path = bp.root
    repo = bp.new_app_repo("bld-slow", python_app("slow v1"))
    assert bp.push(repo).returncode == 0
    ok(bp.ssh("config:set", "bld-slow", f"BUILDPACK_URL={WAITING}"))
    bp.commit(repo, {"change.txt": "2"})
    first = start_push(bp, repo, tmp_path / "first.txt")
    second = None
    try:
        wait_until(lambda: build_waiting(bp), timeout=120)
        # a second push waits in line and says so
        second = start_push(bp, repo, tmp_path / "second.txt")
        wait_until(lambda: "Waiting for the running build of bld-slow (started "
                   in (tmp_path / "second.txt").read_text(), timeout=60)
        assert "build 2 canceled" in ok(bp.ssh("builds:cancel", "bld-slow"))
        assert first.wait(timeout=120) != 0
        said = (tmp_path / "first.txt").read_text()
        assert "Build 2 canceled (builds:cancel); bld-slow still serves its current " \
               "release" in said, said
        assert "[remote rejected] main -> main (build canceled)" in said
        assert bp.http("bld-slow").body.startswith("slow v1")  # the old release serves
        # the waiting push goes on once the canceled one ended
        wait_until(lambda: build_waiting(bp), timeout=120)
        let_go(bp)
        assert second.wait(timeout=300) == 0, (tmp_path / "second.txt").read_text()
    finally:
        let_go(bp)
        for push in (first, second):
            if push is not None and push.poll() is None:
                os.killpg(push.pid, signal.SIGKILL)
    listed = ok(bp.ssh("builds", "bld-slow"))
    assert [line.split()[1] for line in listed.splitlines()[1:]] == [
        "succeeded", "canceled", "succeeded"], listed

    # the daemon killed with SIGKILL mid-build: the next push is not blocked
    bp.commit(repo, {"change.txt": "4"})
    third = start_push(bp, repo, tmp_path / "third.txt")
    try:
        wait_until(lambda: build_waiting(bp), timeout=120)
        daemon = bp.daemon_pid()
        os.kill(daemon, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{daemon}").exists()
                   or " Z " in Path(f"/proc/{daemon}/stat").read_text())
        assert third.wait(timeout=120) != 0
    finally:
        let_go(bp)
        if third.poll() is None:
            os.killpg(third.pid, signal.SIGKILL)
    bp.up()
    ok(bp.ssh("config:unset", "bld-slow", "BUILDPACK_URL"))
    bp.commit(repo, {"app.py": python_app("slow v5")["app.py"]})
    fourth = bp.push(repo)
    assert fourth.returncode == 0, fourth.stderr
    assert "Waiting for the running build" not in fourth.stderr
    bp.wait_for("bld-slow", "slow v5")
    statuses = [line.split()[1] for line in ok(bp.ssh("builds", "bld-slow")).splitlines()[1:]]
    assert statuses[:2] == ["succeeded", "failed"], statuses  # the killed build: failed


def test_a_cron_entry_of_app_json_fires(bp: PushdUnderTest):
    cron = {"cron": [{"command": "echo cron-fired-$DYNO", "schedule": "* * * * *"}]}
    repo = bp.new_app_repo("bld-cron", {**python_app("cron"), "app.json": json.dumps(cron)})
    assert bp.push(repo).returncode == 0
    listed = ok(bp.ssh("cron:list", "bld-cron"))
    assert re.search(r"^\* \* \* \* \*\s+echo cron-fired-\$DYNO$", listed, re.M), listed
    # the daemon's cron clock runs 60 times faster here: a minute a second
    logs = wait_until(lambda: (lambda out: re.search(
        r"app\[(scheduler\.\d+)\]: cron-fired-scheduler\.\d+", out))(
            bp.ssh("logs", "bld-cron").stdout), timeout=60)
    assert logs.group(1).startswith("scheduler.")
    ok(bp.ssh("apps:destroy", "bld-cron", "--confirm", "bld-cron"))
