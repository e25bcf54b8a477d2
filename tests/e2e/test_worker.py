"""A worker dyno's lifecycle reads in order in `logs`, as on Heroku."""

from __future__ import annotations

import time

from .harness import PushdUnderTest, python_app
from .test_dynos import _app_mount_from


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def test_worker_lines_come_in_lifecycle_order(pushd: PushdUnderTest):
    worker = {"worker.py": "import time\nprint('working', flush=True)\ntime.sleep(600)\n",
              "Procfile": "web: python3 app.py\nworker: python3 worker.py\n",
              "app.json": '{"formation": {"worker": {"quantity": 1}}, '  # only web by default
                          '"healthchecks": {"worker": [{"uptime": 1}]}}'}
    repo = pushd.new_app_repo("orderly", python_app("orderly", worker))
    assert pushd.push(repo).returncode == 0
    deadline = time.monotonic() + 30
    while True:
        lines = pushd.ssh("logs", "orderly", "-d", "worker.1", "-n", "50").stdout.splitlines()
        if any("app[worker.1]: working" in line for line in lines):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
    starting = next(i for i, line in enumerate(lines) if "Starting process with command" in line)
    up = next(i for i, line in enumerate(lines) if "State changed from starting to up" in line)
    assert starting < up, lines


def test_a_dyno_ends_with_its_main_process_even_if_it_left_one_running(pushd: PushdUnderTest):
    worker = {"Procfile": "web: python3 app.py\n"
                          "worker: nohup sleep 600 >/dev/null 2>&1 & echo started; exit 3\n",
              "app.json": '{"formation": {"worker": {"quantity": 1}}, '
                          '"healthchecks": {"worker": []}}'}  # no uptime check: it exits
    repo = pushd.new_app_repo("leaver", python_app("leaver", worker))
    assert pushd.push(repo).returncode == 0
    deadline = time.monotonic() + 30
    while True:  # seen to exit (and restarted), not "up" forever with nothing of it running
        logs = pushd.ssh("logs", "leaver", "-d", "worker.1", "-n", "100").stdout
        if "Process exited with status 3" in logs and logs.count("app[worker.1]: started") > 1:
            break
        assert time.monotonic() < deadline, logs
        time.sleep(0.3)


def test_one_offs_of_a_killed_daemon_are_cleaned_up_at_the_next_start(pushd: PushdUnderTest):
    import os
    import signal
    import subprocess

    repo = pushd.new_app_repo("orphans", python_app("orphans"))
    assert pushd.push(repo).returncode == 0
    client = subprocess.Popen(["ssh", "-F", str(pushd.ssh_config), "platform", "run",
                               "orphans", "echo running; sleep 300"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert client.stdout.readline().strip() == "running"
    folders = [p for p in (pushd.state / "dynos").glob("*-run.*")]
    assert len(folders) == 1
    os.kill(pushd.daemon_pid(), signal.SIGKILL)
    client.wait(30)
    pushd.up()
    assert not folders[0].exists()  # swept: processes, overlay mount and folder
    left = [pid for pid in os.listdir("/proc") if pid.isdigit()
            and _app_mount_from(pid, pushd.state) and b"sleep\x00300" in _cmdline(pid)]
    assert left == []
    mounts = open("/proc/self/mountinfo").read()
    assert str(folders[0]) not in mounts
    assert pushd.http("orphans").body.startswith("orphans")  # the app itself kept serving
