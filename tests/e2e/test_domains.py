"""`domains:add` and `domains:remove` say done only once the router has switched."""

from __future__ import annotations

from .harness import PushdUnderTest, python_app


def test_done_means_the_next_request_is_routed(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("hosted", python_app("custom host works"))
    assert pushd.push(repo).returncode == 0
    for round_ in range(3):
        host = f"www{round_}.hosted.test"
        added = pushd.ssh("domains:add", "hosted", host)
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == f"Adding {host} to hosted... done"
        assert pushd.http("x", host=host).body.startswith("custom host works")  # no retry
        removed = pushd.ssh("domains:remove", "hosted", host)
        assert removed.returncode == 0, removed.stderr
        assert pushd.http("x", host=host).status == 404


def test_rename_is_done_when_the_new_url_answers(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("before", python_app("renamed app"))
    assert pushd.push(repo).returncode == 0
    renamed = pushd.ssh("apps:rename", "before", "after")
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.startswith("Renaming before to after... done\n"), renamed.stdout
    assert pushd.http("after").body.startswith("renamed app")  # no retry
    assert pushd.http("before").status == 404


def test_platform_hosts_and_addresses_cannot_be_claimed(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("claimer", python_app("claimer"))
    assert pushd.push(repo).returncode == 0
    for host in ("claimer.localhost", "other.localhost", "127.0.0.1"):
        refused = pushd.ssh("domains:add", "claimer", host)
        assert refused.returncode != 0, host
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "Custom Domains" not in pushd.ssh("domains", "claimer").stdout  # nothing was added
