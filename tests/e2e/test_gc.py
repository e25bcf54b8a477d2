"""`gc` over SSH (admins only) and from the local CLI, with the sandbox runtime: slugs
beyond `releases_kept` go, and it says what it did. The docker runtime's part (images,
containers) is in test_docker_builds.py."""

from __future__ import annotations

from .harness import PUSHD, PushdUnderTest, python_app, sh


def test_gc_is_for_admins_and_reports_over_ssh_and_locally(pushd: PushdUnderTest):
    refused = pushd.ssh("gc", user="alice")
    assert refused.returncode != 0 and "gc is for admins only" in refused.stderr
    result = pushd.ssh("gc")
    assert result.returncode == 0, result.stderr
    assert "Removed 0 old slugs" in result.stdout
    assert "Runtime sandbox: no images to collect" in result.stdout
    local = sh([PUSHD, "gc"], env=pushd.env())
    assert local.returncode == 0 and "Removed 0 old slugs" in local.stdout


def test_gc_after_a_deploy_leaves_the_serving_slug(pushd: PushdUnderTest):
    pushd.deploy("dockerbuild-gc", python_app("kept"))
    pushd.wait_for("dockerbuild-gc", "kept")
    result = pushd.ssh("gc")
    assert result.returncode == 0, result.stderr
    assert pushd.wait_for("dockerbuild-gc", "kept").status == 200
