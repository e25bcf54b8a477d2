"""The SSH front door and git behaviour users rely on."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import paramiko

from .harness import PUSHD, PushdUnderTest, python_app, sh

SLOW_COMPILE = """#!/bin/sh
echo "-----> step one"
sleep 3
echo "-----> step two"
"""


def slow_buildpack(pushd: PushdUnderTest) -> Path:
    """A buildpack whose compile says `step one`, sleeps 3 s, then says `step two`."""
    bp = pushd.root / "slowpack"
    if bp.exists():
        return bp
    (bp / "bin").mkdir(parents=True)
    for name, text in (("detect", "#!/bin/sh\necho Slow\n"), ("compile", SLOW_COMPILE),
                       ("release", "#!/bin/sh\necho '--- {}'\n")):
        (bp / "bin" / name).write_text(text)
        (bp / "bin" / name).chmod(0o755)
    bp.chmod(0o755)
    (bp / "bin").chmod(0o755)
    return bp


def paramiko_exec(pushd: PushdUnderTest, command: bytes) -> tuple[int, bytes, bytes]:
    """One exec request sent byte for byte (OpenSSH cannot send a NUL), as the admin key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=pushd.ssh_port, username="git",
                   key_filename=str(pushd.keys / "admin"), look_for_keys=False,
                   allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session(timeout=30)
        channel.settimeout(60)
        channel.exec_command(command)
        channel.shutdown_write()
        out, err = channel.makefile("rb").read(), channel.makefile_stderr("rb").read()
        return channel.recv_exit_status(), out, err
    finally:
        client.close()


def slow_push(pushd: PushdUnderTest, app: str) -> subprocess.Popen:
    """A `git push` of a new app whose build takes a few seconds, stderr readable live."""
    bp = slow_buildpack(pushd)
    repo = pushd.new_app_repo(app, python_app(app, {".buildpacks": f"{bp}\n"}))
    return subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=pushd.env(),
                            stderr=subprocess.PIPE, text=True)


def test_build_output_streams_live(pushd: PushdUnderTest):
    push = slow_push(pushd, "streamer")
    seen_one = None
    for line in push.stderr:
        if "step one" in line:
            seen_one = time.monotonic()
            assert push.poll() is None  # the line arrived while the build was still going
        if "step two" in line:
            assert seen_one is not None and time.monotonic() - seen_one > 2
    assert push.wait(120) == 0
    assert seen_one is not None


def test_other_branches_are_stored_not_built(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("branchy", python_app("main body"))
    assert pushd.push(repo).returncode == 0
    sh(["git", "checkout", "-q", "-b", "feature"], cwd=repo, check=True)
    pushd.commit(repo, python_app("feature body"))
    result = pushd.push(repo, branch="feature")
    assert result.returncode == 0, result.stderr
    assert "Building" not in result.stderr
    assert ("remote: -----> Stored feature; only main deploys "
            "(git push platform feature:main to deploy it)") in result.stderr
    assert "v2" not in pushd.ssh("releases", "branchy").stdout
    remote = sh(["git", "ls-remote", "platform"], cwd=repo, env=pushd.env()).stdout
    assert "refs/heads/feature" in remote
    assert pushd.http("branchy").body.startswith("main body")


def test_destroy_is_refused_while_a_push_runs(pushd: PushdUnderTest):
    push = slow_push(pushd, "busy")
    refused = None
    for line in push.stderr:
        if "step one" in line and refused is None:
            refused = pushd.ssh("apps:destroy", "busy", "--confirm", "busy")
    assert push.wait(120) == 0
    assert refused is not None and refused.returncode == 1
    assert refused.stderr == " !    busy is being deployed; try again when the push ends\n"
    pushd.wait_for("busy", "busy", timeout=30)
    done = pushd.ssh("apps:destroy", "busy", "--confirm", "busy")
    assert done.returncode == 0, done.stderr


def test_a_nul_byte_in_an_exec_request_is_an_invalid_name(pushd: PushdUnderTest):
    apps_dir = pushd.state / "apps"
    before = sorted(os.listdir(apps_dir))
    for command in (b"apps:create a\x00b", b"git-receive-pack '/a\x00b.git'"):
        status, out, err = paramiko_exec(pushd, command)
        assert status != 0, command
        assert err.startswith(b" !    Invalid app name 'a\\x00b'"), (command, err)
        assert len(err.splitlines()) == 1 and out == b"", (command, out, err)
    assert sorted(os.listdir(apps_dir)) == before
    listed = pushd.ssh("apps").stdout.splitlines()
    assert not [name for name in listed if name.startswith("a") and "b" in name]


def ssh_to_platform(pushd: PushdUnderTest, *args: str,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return sh(["ssh", "-F", str(pushd.ssh_config), *args], stdin=subprocess.DEVNULL,
              env=env or pushd.env(), timeout=30)


def test_any_user_name_is_accepted_and_forwarding_refused(pushd: PushdUnderTest):
    named = ssh_to_platform(pushd, "-l", "whoever", "platform", "apps")
    assert named.returncode == 0 and "=== Apps" in named.stdout
    jump = ssh_to_platform(pushd, "-W", "127.0.0.1:22", "platform")
    assert jump.returncode != 0
    remote = ssh_to_platform(pushd, "-o", "ExitOnForwardFailure=yes", "-R",
                             "0:127.0.0.1:22", "platform", "apps")
    assert remote.returncode == 255
    assert "remote port forwarding failed" in remote.stderr, remote.stderr
    sftp = ssh_to_platform(pushd, "-s", "platform", "sftp")
    assert sftp.returncode != 0 and sftp.stdout == ""
    assert "subsystem request failed" in sftp.stderr, sftp.stderr


def test_agent_forwarding_gives_no_agent(pushd: PushdUnderTest):
    deploy = pushd.push(pushd.new_app_repo("agentless", python_app("a")))
    assert deploy.returncode == 0, deploy.stderr
    sock = pushd.root / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        env = dict(pushd.env(), SSH_AUTH_SOCK=str(sock))
        assert sh(["ssh-add", str(pushd.keys / "admin")], env=env).returncode == 0
        result = ssh_to_platform(pushd, "-v", "-A", "-o", "ForwardAgent=yes", "platform",
                                 "run", "agentless", "env", env=env)
        assert "Requesting authentication agent forwarding" in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        assert "DYNO=run." in result.stdout and "SSH_AUTH_SOCK" not in result.stdout
    finally:
        agent.terminate()
        agent.wait(10)


def test_info_commands_and_the_local_cli(pushd: PushdUnderTest):
    result = pushd.push(pushd.new_app_repo("informed", python_app("i")))
    assert result.returncode == 0
    info = pushd.ssh("apps:info", "informed").stdout
    assert f"http://informed.localhost:{pushd.http_port}/" in info
    assert "web.1: up" in info
    assert re.search(r"^Slug size:\s+[1-9][0-9]*K$", info, re.M), info  # tiny app: K, not 0.0M
    release = pushd.ssh("releases:info", "informed", "v1").stdout
    assert "=== Release v1" in release and "Deploy" in release
    local = sh([PUSHD, "config:set", "informed", "FROM_LOCAL=yes"], env=pushd.env())
    assert local.returncode == 0, local.stderr
    assert pushd.ssh("config:get", "informed", "FROM_LOCAL").stdout == "yes\n"
    status = sh([PUSHD, "status"], env=pushd.env()).stdout
    assert f"running, pid {pushd.daemon_pid()}" in status


def test_host_key_is_kept_across_restarts(pushd: PushdUnderTest):
    key = (pushd.state / "ssh_host_ed25519_key.pub").read_text()
    pushd.stop(everything=False)
    pushd.up()
    assert (pushd.state / "ssh_host_ed25519_key.pub").read_text() == key
    assert pushd.ssh("apps").returncode == 0
