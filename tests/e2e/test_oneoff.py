"""One-off dynos over real OpenSSH: the command reaches a shell as typed, and a one-off dies
with its client."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..polling import wait_until
from .harness import PushdUnderTest, python_app, sh
from .test_dynos import deploy


def test_run_command_goes_to_a_shell_as_typed(pushd: PushdUnderTest):
    deploy(pushd, "shelly", python_app("s"))
    piped = pushd.ssh("run", "shelly", "echo $HOME | wc -c")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == "5"  # "/app\n"
    quoted = pushd.ssh("run", "shelly", "python3 -c 'print(6*7)'")
    assert quoted.returncode == 0, quoted.stderr
    assert quoted.stdout == "42\n"


def pids_running(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if fh.read() == wanted:
                    found.append(int(entry))
        except (OSError, ValueError):
            pass
    return found


def test_one_off_dies_with_its_client(pushd: PushdUnderTest):
    deploy(pushd, "hangup", python_app("h"))
    client = subprocess.Popen(["ssh", "-F", str(pushd.ssh_config), "platform", "run", "hangup",
                               "sleep", "3001"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=pushd.env())
    try:
        wait_until(lambda: pids_running(["sleep", "3001"]), timeout=120)
        assert list(pushd.state.glob("dynos/*-run.*"))
    finally:
        client.send_signal(signal.SIGKILL)  # the client vanishes without a word
        client.wait()
    wait_until(lambda: not pids_running(["sleep", "3001"]), timeout=60)
    wait_until(lambda: not list(pushd.state.glob("dynos/*-run.*")), timeout=30)
    assert not [line for line in open("/proc/mounts") if str(pushd.state) in line
                and "-run." in line]
    logs = pushd.ssh("logs", "hangup", "-s", "pushd").stdout
    assert "Client disconnected; stopping all processes with SIGHUP" in logs


def test_one_off_keeps_running_after_its_input_ends(pushd: PushdUnderTest):
    deploy(pushd, "eof", python_app("e"))
    started = time.monotonic()
    result = pushd.ssh("run", "eof", "sleep 2; echo still here")  # stdin is /dev/null
    assert result.returncode == 0, result.stderr
    assert result.stdout == "still here\n" and time.monotonic() - started >= 2


def test_one_off_ends_with_its_main_process(pushd: PushdUnderTest):
    """As on Heroku: `run` returns when its command does; what it left running is killed."""
    deploy(pushd, "forker", python_app("f"))
    result = pushd.ssh("run", "forker", "nohup sleep 3002 >/dev/null 2>&1 & echo forked",
                       timeout=120)  # returns at once: waiting for the sleep would time out
    assert result.returncode == 0, result.stderr
    assert result.stdout == "forked\n"
    wait_until(lambda: not pids_running(["sleep", "3002"]), timeout=10)
    leftover = pushd.ssh("run", "forker", "sleep 3003 & echo one; echo two >&2; exit 7",
                         timeout=60)
    assert leftover.returncode == 7  # the main command's status, not the killed sleep's
    assert leftover.stdout == "one\n" and leftover.stderr.endswith("two\n")
    on_tty = pushd.ssh("run", "forker", "sleep 3004 & echo forked", tty=True, timeout=60)
    assert on_tty.returncode == 0, on_tty.stderr
    assert "forked" in on_tty.stdout
    wait_until(lambda: not pids_running(["sleep", "3003"]) and not pids_running(
        ["sleep", "3004"]), timeout=10)
    wait_until(lambda: not list(pushd.state.glob("dynos/*-run.*")), timeout=10)


def test_one_off_on_a_terminal_gets_the_clients_term_and_a_size(pushd: PushdUnderTest):
    deploy(pushd, "termy", python_app("t"))
    argv = ["ssh", "-F", str(pushd.ssh_config), "-tt", "platform", "run", "termy",
            "echo $TERM; stty size"]
    result = sh(argv, stdin=subprocess.DEVNULL, timeout=60,
                env={**pushd.env(), "TERM": "xterm-256color"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.replace("\r", "").splitlines()
    assert lines[-2:] == ["xterm-256color", "24 80"]  # ssh -tt in a pipe sends no size
