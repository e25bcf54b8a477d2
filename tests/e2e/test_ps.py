"""ps:restart over real OpenSSH and from the operator's local CLI."""

from __future__ import annotations

import time

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
    port_before = pushd.http("localrestart", "/env/PORT").body
    with Poller(pushd, "localrestart") as poll:
        result = sh([PUSHD, "ps:restart", "localrestart", "web"], env=pushd.env())
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("done\n")
        deadline = time.monotonic() + 30
        while pushd.http("localrestart", "/env/PORT").body == port_before:
            assert time.monotonic() < deadline, "web.1 was not replaced"
            time.sleep(0.2)
        time.sleep(1.0)  # the old dyno drains and stops meanwhile
    assert poll.failures == [], poll.failures[:5]
    assert poll.total > 20
