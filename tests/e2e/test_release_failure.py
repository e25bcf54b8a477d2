"""A release whose web dynos never come up: the push says why, and shows the dyno's output."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..polling import wait_until
from .harness import Poller, PushdUnderTest, python_app, sh


def test_crashing_release_tells_the_pusher_why(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("crashy", python_app("good build"))
    assert pushd.push(repo).returncode == 0
    pushd.commit(repo, {"boot.py": "import sys\nprint('connecting to the database')\n"
                                   "sys.exit('boom: DATABASE_URL is not set')\n",
                        "Procfile": "web: python3 boot.py\n"})
    with Poller(pushd, "crashy"):  # the old web.1 logs requests meanwhile, as web.1 too
        result = pushd.push(repo)
    assert result.returncode != 0
    remote = [line.removeprefix("remote: ").rstrip() for line in result.stderr.splitlines()]
    assert not [line for line in remote if "GET / HTTP" in line]  # only the new dyno's lines
    failed = [line for line in remote if "Release v2 failed:" in line]
    assert failed and "web.1 exited with status 1" in failed[0], result.stderr
    assert "the previous release keeps serving" in failed[0]
    assert any(line.endswith("app[web.1]: boom: DATABASE_URL is not set") for line in remote)
    assert any(line.endswith("app[web.1]: connecting to the database") for line in remote)
    assert pushd.http("crashy").body.startswith("good build")


def test_a_release_that_never_binds_reports_r10(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("sleeper", python_app("awake"))
    assert pushd.push(repo).returncode == 0
    pushd.commit(repo, {"Procfile": "web: sleep 1000\n"})
    result = pushd.push(repo)
    assert result.returncode != 0
    assert "Release v2 failed: web.1 did not bind $PORT" in result.stderr
    assert "R10 Boot timeout" in result.stderr
    assert pushd.http("sleeper").body.startswith("awake")


def test_config_change_during_a_rollout_lands_on_the_new_code(pushd: PushdUnderTest):
    slow = {"Procfile": "web: sleep 3 && python3 app.py\n"}
    repo = pushd.new_app_repo("racy", python_app("old code", slow))
    assert pushd.push(repo).returncode == 0
    pushd.commit(repo, python_app("new code", slow))
    push = subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=pushd.env(),
                            stderr=subprocess.PIPE, text=True)
    for line in push.stderr:  # the new release is rolling out: its dyno is still booting
        if "Launching" in line:
            break
    setting = pushd.ssh("config:set", "racy", "MOOD=calm")
    rest = push.stderr.read()
    assert push.wait(120) == 0, rest
    assert setting.returncode == 0, setting.stderr
    assert pushd.http("racy").body.startswith("new code")
    assert pushd.http("racy", "/env/MOOD").body == "calm"


def test_a_rollout_cut_short_by_a_daemon_crash_fails_and_git_agrees(pushd: PushdUnderTest):
    slow = {"Procfile": "web: sleep 4 && python3 app.py\n"}
    repo = pushd.new_app_repo("crashmid", python_app("v1 body", slow))
    assert pushd.push(repo).returncode == 0
    first = sh(["git", "ls-remote", "platform", "main"], cwd=repo, env=pushd.env()).stdout
    pushd.commit(repo, python_app("v2 body", slow))
    push = subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=pushd.env(),
                            stderr=subprocess.PIPE, text=True)
    # v2 is cut (its dyno boots for 4 s): kill the daemon mid-rollout
    wait_until(lambda: "v2  Deploy" in pushd.ssh("releases", "crashmid").stdout, interval=0.05)
    os.kill(pushd.daemon_pid(), signal.SIGKILL)
    push.stderr.read()
    assert push.wait(60) != 0
    pushd.up()
    assert "v2  Deploy" in pushd.ssh("releases", "crashmid").stdout
    assert "(failed)" in pushd.ssh("releases", "crashmid").stdout.splitlines()[1]
    time.sleep(5)  # v2's dyno would be up by now, had it been kept
    assert pushd.http("crashmid").body.startswith("v1 body")
    assert sh(["git", "ls-remote", "platform", "main"], cwd=repo, env=pushd.env()).stdout == first
