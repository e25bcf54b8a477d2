"""The SSH front door and git behaviour users rely on."""

from __future__ import annotations

import subprocess
import time

from .harness import PUSHD, PushdUnderTest, python_app, sh

SLOW_COMPILE = """#!/bin/sh
echo "-----> step one"
sleep 3
echo "-----> step two"
"""


def test_build_output_streams_live(pushd: PushdUnderTest):
    bp = pushd.root / "slowpack"
    (bp / "bin").mkdir(parents=True)
    for name, text in (("detect", "#!/bin/sh\necho Slow\n"), ("compile", SLOW_COMPILE),
                       ("release", "#!/bin/sh\necho '--- {}'\n")):
        (bp / "bin" / name).write_text(text)
        (bp / "bin" / name).chmod(0o755)
    bp.chmod(0o755)
    (bp / "bin").chmod(0o755)
    repo = pushd.new_app_repo("streamer", python_app("s", {".buildpacks": f"{bp}\n"}))
    push = subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=pushd.env(),
                            stderr=subprocess.PIPE, text=True)
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
    assert "v2" not in pushd.ssh("releases", "branchy").stdout
    remote = sh(["git", "ls-remote", "platform"], cwd=repo, env=pushd.env()).stdout
    assert "refs/heads/feature" in remote
    assert pushd.http("branchy").body.startswith("main body")


def test_any_user_name_is_accepted_and_forwarding_refused(pushd: PushdUnderTest):
    named = sh(["ssh", "-F", str(pushd.ssh_config), "-l", "whoever", "platform", "apps"],
               stdin=subprocess.DEVNULL, env=pushd.env())
    assert named.returncode == 0 and "=== Apps" in named.stdout
    jump = sh(["ssh", "-F", str(pushd.ssh_config), "-W", "127.0.0.1:22", "platform"],
              stdin=subprocess.DEVNULL, env=pushd.env(), timeout=30)
    assert jump.returncode != 0


def test_info_commands_and_the_local_cli(pushd: PushdUnderTest):
    result = pushd.push(pushd.new_app_repo("informed", python_app("i")))
    assert result.returncode == 0
    info = pushd.ssh("apps:info", "informed").stdout
    assert f"http://informed.localhost:{pushd.http_port}/" in info
    assert "web.1: up" in info
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
