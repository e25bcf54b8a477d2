"""Stale pid files (issue 8): after a reboot or pid reuse the pid pushd recorded names some
other live process. pushd must never signal or believe it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.harness import PUSHD, new_root, sh
from ..e2e.test_faults import write_settings
from ..e2e.test_operator import clean_env, key_pair
from ..polling import wait_until
from .conftest import report


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = new_root("pushd-stalepid-")
    yield root
    sh([PUSHD, "--state-dir", str(root / "state"), "down", "--all"], env=clean_env(),
       timeout=120)
    shutil.rmtree(root, ignore_errors=True)


def start_of(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2:].split()[19])


def alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


@pytest.mark.parametrize("recorded", ["plain", "other-start"])
def test_a_stale_daemon_pid_file_never_signals_the_process_now_holding_that_pid(
        workdir: Path, bystander: subprocess.Popen, recorded: str):
    key = key_pair(workdir)
    state, ssh_port = write_settings(workdir)
    # as after a reboot: the pid file names a pid that now belongs to someone else's process
    pid = bystander.pid
    text = f"{pid}\n" if recorded == "plain" else f"{pid} {start_of(pid) + 12345}\n"
    (state / "pushd.pid").write_text(text)
    (state / "nginx").mkdir()
    (state / "nginx" / "nginx.pid").write_text(f"{pid}\n")

    down = sh([PUSHD, "--state-dir", str(state), "down", "--all"], env=clean_env(), timeout=120)
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("pushd is not running"), down.stdout
    assert alive(bystander)
    status = sh([PUSHD, "--state-dir", str(state), "status"], env=clean_env())
    assert "Daemon:     not running" in status.stdout
    assert "Router:     nginx, not running" in status.stdout

    up = sh([PUSHD, "--state-dir", str(state), "up", "--admin-key", f"{key}.pub", "--detach"],
            env=clean_env(), timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    assert alive(bystander)
    words = (state / "pushd.pid").read_text().split()
    daemon = int(words[0])
    assert daemon != pid and int(words[1]) == start_of(daemon)  # recorded with its start time
    status = sh([PUSHD, "--state-dir", str(state), "status"], env=clean_env())
    assert f"Daemon:     running, pid {daemon}" in status.stdout
    assert "Router:     nginx, pid" in status.stdout

    down = sh([PUSHD, "--state-dir", str(state), "down"], env=clean_env(), timeout=120)
    assert down.stdout.strip() == f"Stopped pushd (pid {daemon})", down.stdout + down.stderr
    wait_until(lambda: not os.path.exists(f"/proc/{daemon}"), timeout=30)
    assert alive(bystander)
    report(f"stale pushd.pid ({recorded}) naming a live unrelated sleep", None, "none",
           "`pushd down --all`: 'pushd is not running' (sleep left alive); `pushd up` started")


def test_an_old_plain_pid_file_of_a_running_daemon_is_still_believed(workdir: Path):
    """Files written before start times were recorded name the daemon by pid alone: a live
    `pushd up` process behind it is recognised by its command line, and stopped."""
    key = key_pair(workdir)
    state, _ = write_settings(workdir)
    up = sh([PUSHD, "--state-dir", str(state), "up", "--admin-key", f"{key}.pub", "--detach"],
            env=clean_env(), timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    daemon = int((state / "pushd.pid").read_text().split()[0])
    (state / "pushd.pid").write_text(f"{daemon}\n")  # as an older pushd wrote it
    status = sh([PUSHD, "--state-dir", str(state), "status"], env=clean_env())
    assert f"Daemon:     running, pid {daemon}" in status.stdout
    down = sh([PUSHD, "--state-dir", str(state), "down"], env=clean_env(), timeout=120)
    assert down.stdout.strip() == f"Stopped pushd (pid {daemon})", down.stdout + down.stderr
