"""With `runtime: docker`, end to end through real clients: pushes build in containers of
the stack image (output streamed as `remote:` lines), each release is an image, deploys prune
the images beyond `releases_kept`, `apps:destroy` and `pushd gc` leave nothing behind.

These need the docker runtime itself (container dynos, helper dockerrun's branch): until it
is registered they are skipped with that reason; the build and image parts are proven on
their own in tests/integration/test_docker_build.py."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import docker
import pytest

from pushd.platform import load_runtimes
from pushd.runtime.docker import labels as lbl
from pushd.runtime.docker.gc import EngineGC
from pushd.runtime.docker.images import release_tag

from .harness import PUSHD, free_port, new_root, python_app, running, sh

load_runtimes()

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "apps")
KEPT = 3


@pytest.fixture(scope="module")
def dpushd():
    root = new_root("pushd-e2e-dockerbuild-")
    yield from running(root, {
        "runtime": "docker", "boot_timeout": 20, "stop_timeout": 5, "drain_seconds": 0.5,
        "build_timeout": 300, "releases_kept": KEPT})
    # the apps were never destroyed: their images go with the daemon's state
    EngineGC(docker.from_env(), root / "state").remove_orphans(set())


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    return docker.from_env()


def app_name() -> str:
    return f"dockerbuild-{secrets.token_hex(3)}"


def fixture_files(name: str) -> dict[str, str]:
    root = os.path.join(FIXTURES, name)
    files = {}
    for folder, _, names in os.walk(root):
        for item in names:
            path = os.path.join(folder, item)
            with open(path) as fh:
                files[os.path.relpath(path, root)] = fh.read()
    return files


def labelled(engine, state, app_id: int) -> dict[str, list]:
    filters = lbl.app_filter(state, app_id)
    return {"containers": engine.containers.list(all=True, filters=filters),
            "images": engine.images.list(filters=filters),
            "volumes": engine.volumes.list(filters=filters)}


def app_id_of(engine, state, name: str) -> int:
    image = engine.images.get(release_tag(name, 1))
    assert image.labels[lbl.INSTANCE] == lbl.instance(state)
    return int(image.labels[lbl.APP_ID])


@pytest.mark.parametrize(("fixture", "detected", "answer"), [
    ("python-app", "Python", "python-app hello six=1.17.0"),
    ("node-app", "Node.js", "node-app hello ms=1m")])
def test_an_app_is_built_in_a_container_and_served_from_its_image(dpushd, engine, fixture,
                                                                  detected, answer):
    name = app_name()
    repo = dpushd.new_app_repo(name, fixture_files(fixture))
    result = dpushd.push(repo)
    assert result.returncode == 0, result.stderr
    assert f"remote: -----> {detected} app detected" in result.stderr
    assert "remote: -----> Building on the pushd-22 stack" in result.stderr
    assert dpushd.wait_for(name, answer).status == 200
    assert engine.images.get(release_tag(name, 1))


def test_a_failed_build_leaves_the_running_release_serving(dpushd, engine):
    name = app_name()
    repo = dpushd.deploy(name, python_app("first"))
    dpushd.wait_for(name, "first")
    dpushd.commit(repo, {"requirements.txt": "no-such-package-pushd==0.0.0\n"})
    result = dpushd.push(repo)
    assert result.returncode != 0
    assert "remote:  !     Push rejected, failed to compile Python app." in result.stderr
    assert dpushd.wait_for(name, "first").status == 200
    state = dpushd.state
    builds = [c for c in labelled(engine, state, app_id_of(engine, state, name))["containers"]
              if c.labels.get(lbl.BUILD)]
    assert builds == []


def test_after_15_deploys_only_the_retained_images_remain_and_rollback_builds_nothing(
        dpushd, engine):
    name = app_name()
    repo = dpushd.deploy(name, python_app("v1"))
    for number in range(2, 16):
        dpushd.commit(repo, python_app(f"v{number}"))
        result = dpushd.push(repo)
        assert result.returncode == 0, result.stderr
    dpushd.wait_for(name, "v15")
    app_id = int(engine.images.get(release_tag(name, 15)).labels[lbl.APP_ID])
    tags = sorted(t for image in labelled(engine, dpushd.state, app_id)["images"]
                  for t in image.tags)
    assert tags == sorted(release_tag(name, v) for v in range(16 - KEPT, 16))
    kept = engine.images.get(release_tag(name, 14)).id
    result = dpushd.ssh("rollback", name, "v14")
    assert result.returncode == 0, result.stderr
    assert dpushd.wait_for(name, "v14").status == 200
    assert engine.images.get(release_tag(name, 16)).id == kept  # the same image: no build


def test_apps_destroy_leaves_no_image_container_or_volume(dpushd, engine):
    name = app_name()
    dpushd.deploy(name, python_app("doomed"))
    dpushd.wait_for(name, "doomed")
    app_id = app_id_of(engine, dpushd.state, name)
    result = dpushd.ssh("apps:destroy", name, "--confirm", name)
    assert result.returncode == 0, result.stderr
    assert labelled(engine, dpushd.state, app_id) == {"containers": [], "images": [],
                                                       "volumes": []}


def test_gc_by_hand_reports_what_it_freed_and_is_for_admins(dpushd, engine):
    name = app_name()
    dpushd.deploy(name, python_app("collected"))
    app_id = app_id_of(engine, dpushd.state, name)
    leftover = engine.containers.create(
        release_tag(name, 1), ["true"], network_mode="none",
        labels=lbl.build_labels(dpushd.state, name, app_id))  # as a killed build leaves
    refused = dpushd.ssh("gc", user="alice")
    assert refused.returncode != 0 and "gc is for admins only" in refused.stderr
    result = dpushd.ssh("gc")
    assert result.returncode == 0, result.stderr
    # other tests' apps may have had something to collect too: at least our container
    assert re.search(r"^Freed \d+ images?, [1-9]\d* containers?, \d+ volumes?: \d+\.\d MB$",
                     result.stdout, re.M), result.stdout
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(leftover.id)
    local = sh([PUSHD, "gc"], env=dpushd.env())
    assert local.returncode == 0 and "Freed 0 images, 0 containers, 0 volumes: 0.0 MB" in \
        local.stdout


def test_up_with_the_docker_runtime_and_no_engine_is_one_line(tmp_path):
    root = new_root("pushd-e2e-dockerbuild-noengine-")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")},
           "DOCKER_HOST": f"unix://{root}/no-engine.sock"}
    try:
        result = subprocess.run(
            [PUSHD, "--state-dir", str(root / "state"), "up", "--runtime", "docker",
             "--ssh-port", str(free_port()), "--http-port", str(free_port())],
            capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode != 0
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith(" !    no Docker engine answers")
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_builds_cancel_kills_the_build_container(dpushd, engine):
    """builds:cancel during a buildpack build in its container: the container is killed (its
    step never finishes: the waiting buildpack's `let go` never comes) and the push ends
    with the cancel's message."""
    from ..polling import wait_until
    from .test_builds import WAITING, build_waiting, let_go, start_push

    name = app_name()
    assert dpushd.ssh("apps:create", name).returncode == 0
    assert dpushd.ssh("config:set", name, f"BUILDPACK_URL={WAITING}").returncode == 0
    repo = dpushd.new_app_repo(name, python_app("never built"))
    said = dpushd.root / f"{name}-push.txt"
    push = start_push(dpushd, repo, said)
    mine = lbl.instance_filter(dpushd.state, f"{lbl.APP}={name}", f"{lbl.BUILD}=1")
    try:
        wait_until(lambda: build_waiting(dpushd), timeout=120)
        assert engine.containers.list(filters=mine)  # the build runs in its container
        canceled = dpushd.ssh("builds:cancel", name)
        assert "build 1 canceled" in canceled.stdout, canceled.stdout + canceled.stderr
        assert push.wait(timeout=120) != 0
        output = said.read_text()
        assert "Build 1 canceled (builds:cancel)" in output, output
        assert "let go" not in output  # its step was killed, not left to end by itself
        wait_until(lambda: not engine.containers.list(filters=mine), timeout=60)
    finally:
        let_go(dpushd)
        if push.poll() is None:
            os.killpg(push.pid, 9)
