"""ps:restart and ps:scale over real OpenSSH, and ps:restart from the operator's local
CLI."""

from __future__ import annotations

import time

from ..polling import wait_until
from .harness import PUSHD, Poller, PushdUnderTest, python_app, sh
from .test_dynos import deploy


def test_restart_of_an_unknown_type_or_dyno_is_refused(pushd: PushdUnderTest):
    deploy(pushd, "restartee", python_app("r"))
    for target in ("foo", "web.2"):
        result = pushd.ssh("ps:restart", "restartee", target)
        assert result.returncode != 0
        assert result.stderr.strip() == f"!    No such process type or dyno: {target}"
        assert "done" not in result.stdout


def test_restart_from_the_local_cli_replaces_web_without_downtime(pushd: PushdUnderTest):
    deploy(pushd, "localrestart", python_app("steady"))
    boot_before = pushd.http("localrestart", "/boot").body
    with Poller(pushd, "localrestart") as poll:
        result = sh([PUSHD, "ps:restart", "localrestart", "web"], env=pushd.env())
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("done\n")
        deadline = time.monotonic() + 30
        while pushd.http("localrestart", "/boot").body == boot_before:
            assert time.monotonic() < deadline, "web.1 was not replaced"
            time.sleep(0.2)
        time.sleep(1.0)  # the old dyno drains and stops meanwhile
    assert poll.failures == [], poll.failures[:5]
    assert poll.total > 20


def test_a_type_removed_from_the_procfile_leaves_the_formation(pushd: PushdUnderTest):
    files = python_app("w", {"worker.py": "import time\ntime.sleep(100000)\n",
                             "Procfile": "web: python3 app.py\nworker: python3 worker.py\n"})
    repo = deploy(pushd, "dropper", files)
    assert pushd.ssh("ps:scale", "dropper").stdout == "web=1 worker=0\n"  # only web starts
    pushd.commit(repo, {"Procfile": "web: python3 app.py\n"}, "no worker")
    pushed = pushd.push(repo)
    assert pushed.returncode == 0, pushed.stderr
    scaled = pushd.ssh("ps:scale", "dropper", "web=1")
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout == "Scaling dynos... done, now running web at 1\n"
    assert pushd.ssh("ps:scale", "dropper").stdout == "web=1\n"
    for item in ("worker=0", "worker=1"):
        refused = pushd.ssh("ps:scale", "dropper", item)
        assert refused.returncode != 0
        assert "Couldn't find that process type (worker)" in refused.stderr
    info = pushd.ssh("apps:info", "dropper").stdout
    assert [line.split() for line in info.splitlines() if line.startswith("Formation")] == [
        ["Formation:", "web=1"]]
    wait_until(lambda: "worker" not in pushd.ssh("ps", "dropper").stdout)
    # added back, it starts afresh (Heroku dropped the entry too)
    pushd.commit(repo, {"Procfile": "web: python3 app.py\nworker: python3 worker.py\n"}, "back")
    pushed = pushd.push(repo)
    assert pushed.returncode == 0, pushed.stderr
    assert pushd.ssh("ps:scale", "dropper").stdout == "web=1 worker=0\n"
