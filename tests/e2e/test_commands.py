"""Admin commands over real OpenSSH: help, logs -t, interactive run, ps:*, rename, keys."""

from __future__ import annotations

import subprocess
import time

from .harness import PushdUnderTest, python_app


def deploy(pushd: PushdUnderTest, name: str, files: dict[str, str]) -> None:
    result = pushd.push(pushd.new_app_repo(name, files))
    assert result.returncode == 0, result.stderr


def test_bare_ssh_prints_help_and_bad_usage_prints_usage(pushd: PushdUnderTest):
    bare = pushd.ssh()
    assert bare.returncode == 0
    assert "config:set" in bare.stdout and "ps:scale" in bare.stdout
    wrong = pushd.ssh("config:get")
    assert wrong.returncode == 2 and "Usage: config:get" in wrong.stderr
    one = pushd.ssh("help", "rollback")
    assert one.stdout.startswith("Usage: rollback APP [vN]")


def test_logs_tail_streams_new_lines(pushd: PushdUnderTest):
    deploy(pushd, "tailed", python_app("t"))
    argv = ["ssh", "-F", str(pushd.ssh_config), "platform", "logs", "tailed", "-t", "-n", "1"]
    tail = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=pushd.env())
    try:
        tail.stdout.readline()  # the one old line: the stream is open
        assert pushd.ssh("config:set", "tailed", "MARK=1").returncode == 0
        deadline = time.monotonic() + 30
        seen = ""
        while "Set MARK config vars" not in seen and time.monotonic() < deadline:
            seen += tail.stdout.readline()
        assert "pushd[api]: Release v2 created by user admin: Set MARK config vars" in seen
    finally:
        tail.terminate()
        tail.wait(10)


def test_interactive_run_gets_a_terminal(pushd: PushdUnderTest):
    deploy(pushd, "console", python_app("c"))
    script = "echo answer=$((6*7)); [ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 5\n"
    result = pushd.ssh("run", "console", "bash", tty=True, input=script, timeout=60)
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "answer=42" in result.stdout
    assert "\non-a-tty" in result.stdout.replace("\r", "")


def test_ps_restart_stop_start(pushd: PushdUnderTest):
    deploy(pushd, "cycled", python_app("cycled"))
    pid_before = pushd.http("cycled", "/env/PS").body
    assert pid_before == "web.1"
    port_before = pushd.http("cycled", "/env/PORT").body
    assert pushd.ssh("ps:restart", "cycled", "web").returncode == 0
    deadline = time.monotonic() + 30
    while pushd.http("cycled", "/env/PORT").body == port_before:
        assert time.monotonic() < deadline, "web.1 was not replaced"
        time.sleep(0.2)
    assert pushd.ssh("ps:stop", "cycled").returncode == 0
    deadline = time.monotonic() + 30
    while pushd.http("cycled").status != 503:
        assert time.monotonic() < deadline, "ps:stop left the app serving"
        time.sleep(0.2)
    assert "stopped" in pushd.ssh("ps", "cycled").stdout
    assert pushd.ssh("ps:start", "cycled").returncode == 0
    pushd.wait_for("cycled", "cycled", timeout=30)


def test_rename_moves_the_url(pushd: PushdUnderTest):
    deploy(pushd, "oldname", python_app("renamed"))
    result = pushd.ssh("apps:rename", "oldname", "newname")
    assert result.returncode == 0, result.stderr
    pushd.wait_for("newname", "renamed", timeout=30)
    assert "newname" in pushd.ssh("apps").stdout
    assert pushd.ssh("apps:info", "oldname").returncode != 0


def test_keys_can_be_added_and_removed_by_admins(pushd: PushdUnderTest):
    pub = pushd.make_key("carol")
    added = pushd.ssh("keys:add", "carol", input=(pub.parent / "carol.pub").read_text())
    assert added.returncode == 0, added.stderr
    assert "carol  user" in pushd.ssh("keys").stdout
    garbage = pushd.ssh("keys:add", "dave", input="not a key\n")
    assert garbage.returncode != 0 and "public key" in garbage.stderr
    assert pushd.ssh("keys:remove", "carol").returncode == 0
    assert "carol" not in pushd.ssh("keys").stdout
