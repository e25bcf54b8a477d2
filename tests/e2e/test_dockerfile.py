"""Dockerfile deploys through real clients: `git push` over OpenSSH, HTTP through nginx, the
real Docker engine.

With the sandbox runtime (the session daemon) a Dockerfile push is refused in one line and
nothing changes. With the docker runtime (a daemon of its own) the image is built, labelled,
its CMD becomes `web`, and it serves. Images made here carry `io.pushd.app=dockerfile-...`
and are removed by that label (only ours)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushd.build.dockerfile import SANDBOX_REFUSAL
from pushd.runtime.base import RUNTIMES

from ..loopback import loopback_service
from .harness import PushdUnderTest, new_root, python_app, running

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "dockerfile-app"
STACK_IMAGE = "pushd/stack:pushd-22"
RUN = os.getpid() % 100000


def fixture_files(**extra: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in FIXTURE.iterdir() if p.is_file()}
    return {**files, **extra}


def remote_lines(stderr: str) -> list[str]:
    return [line.removeprefix("remote: ").rstrip() for line in stderr.splitlines()
            if line.startswith("remote: ")]


def releases(pushd: PushdUnderTest, app: str) -> str:
    result = pushd.ssh("releases", app)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- the sandbox runtime: refused in one line, nothing changes ------------------------------

def test_sandbox_refuses_a_dockerfile_push_in_one_line(pushd: PushdUnderTest):
    app = f"dockerfile-sbx-{RUN}"
    repo = pushd.deploy(app, python_app("buildpack release"))
    before = releases(pushd, app)
    pushd.commit(repo, {"Dockerfile": f"FROM {STACK_IMAGE}\nCMD [\"python3\", \"app.py\"]\n"})
    result = pushd.push(repo)
    assert result.returncode != 0
    said = [line for line in remote_lines(result.stderr) if line.strip()]
    assert said == [f" !     {SANDBOX_REFUSAL}"], result.stderr
    assert "pushd up --runtime docker" in said[0]
    assert "[remote rejected] main -> main (build failed)" in result.stderr
    assert releases(pushd, app) == before
    assert pushd.http(app).body.startswith("buildpack release")


def test_a_buildpack_asked_for_wins_over_the_dockerfile(pushd: PushdUnderTest):
    """`.buildpacks` (like BUILDPACK_URL and buildpacks:set) means the buildpack builds it,
    Dockerfile or not: no refusal with the sandbox runtime."""
    app = f"dockerfile-bp-{RUN}"
    files = python_app("built by the buildpack", {
        "Dockerfile": f"FROM {STACK_IMAGE}\n", ".buildpacks": "python\n"})
    repo = pushd.deploy(app, files)
    assert repo.exists()
    assert pushd.http(app).body.startswith("built by the buildpack")


# --- the docker runtime --------------------------------------------------------------------

def docker_runtime_known() -> bool:
    from pushd.platform import load_runtimes

    load_runtimes()
    return "docker" in RUNTIMES



@pytest.fixture(scope="module")
def docker_pushd() -> Iterator[PushdUnderTest]:
    import docker

    yield from running(new_root("pushd-e2e-dockerfile-"), {
        "runtime": "docker", "boot_timeout": 20, "stop_timeout": 5, "drain_seconds": 0.5,
        "build_timeout": 300, "ssh_auth_timeout": 5, "router_header_timeout": 5})
    client = docker.from_env()
    try:
        for image in client.images.list(filters={"label": "io.pushd.app"}):
            if image.labels.get("io.pushd.app", "").startswith("dockerfile-"):
                client.images.remove(image.id, force=True)
    finally:
        client.close()


def image_labels(tag: str) -> dict[str, str]:
    import docker

    client = docker.from_env()
    try:
        image = client.images.get(tag)
        return dict(image.labels or {}) | {"cmd": " ".join(image.attrs["Config"]["Cmd"] or [])}
    finally:
        client.close()


def image_tags(app: str) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        return [tag for image in client.images.list(name=f"pushd/{app}") for tag in image.tags]
    finally:
        client.close()


def test_dockerfile_app_is_built_labelled_and_served(docker_pushd: PushdUnderTest):
    app = f"dockerfile-web-{RUN}"
    repo = docker_pushd.new_app_repo(app, fixture_files())
    assert docker_pushd.ssh("apps:create", app).returncode == 0
    assert docker_pushd.ssh("config:set", app, "GREETING=from-the-env").returncode == 0  # v1
    result = docker_pushd.push(repo)
    assert result.returncode == 0, result.stderr
    said = remote_lines(result.stderr)
    assert "-----> Building from Dockerfile" in said
    assert any(line.startswith("       Step 1/") for line in said)  # streamed live
    assert "       Default types for Dockerfile -> web (python3 /app/server.py)" in said
    labels = image_labels(f"pushd/{app}:v2")
    assert labels["io.pushd.app"] == app and labels["io.pushd.release"] == "2"
    assert labels["cmd"] == "python3 /app/server.py"
    assert "from-the-env" not in repr(labels)  # config reaches the container, not the image
    body = docker_pushd.wait_for(app, "Hello from a Dockerfile").body
    assert body == "Hello from a Dockerfile; GREETING=from-the-env; PORT=8000\n"  # EXPOSE 8000


def test_without_expose_the_dyno_gets_the_platforms_port(docker_pushd: PushdUnderTest):
    app = f"dockerfile-port-{RUN}"
    files = {k: v for k, v in python_app("no EXPOSE").items() if k != "Procfile"}
    files["Dockerfile"] = (f"FROM {STACK_IMAGE}\nWORKDIR /app\nCOPY app.py /app/app.py\n"
                           'CMD ["python3", "/app/app.py"]\n')
    docker_pushd.deploy(app, files)
    assert docker_pushd.wait_for(app, "no EXPOSE").body.startswith("no EXPOSE dyno=web.1")


def test_failed_docker_build_keeps_the_release_serving(docker_pushd: PushdUnderTest):
    app = f"dockerfile-bad-{RUN}"
    repo = docker_pushd.deploy(app, fixture_files())
    docker_pushd.wait_for(app, "Hello from a Dockerfile")
    before = releases(docker_pushd, app)
    docker_pushd.commit(repo, {"Dockerfile": f"FROM {STACK_IMAGE}\nRUN exit 3\n"})
    result = docker_pushd.push(repo)
    assert result.returncode != 0
    rejected = [line for line in remote_lines(result.stderr) if line.startswith(" !     ")
                and "Warning: this build has no network access" not in line]
    assert rejected == [" !     Push rejected, docker build failed: The command "
                        "'/bin/sh -c exit 3' returned a non-zero code: 3"], result.stderr
    assert releases(docker_pushd, app) == before
    assert docker_pushd.http(app).body.startswith("Hello from a Dockerfile")


def test_the_build_cannot_reach_the_host_loopback(docker_pushd: PushdUnderTest):
    with loopback_service() as (port, accepted):
        app = f"dockerfile-net-{RUN}"
        repo = docker_pushd.new_app_repo(app, fixture_files(Dockerfile=(
            f"FROM {STACK_IMAGE}\n"
            f"RUN curl -sS --max-time 5 http://127.0.0.1:{port}/leak\n"
            "CMD [\"sleep\", \"1000\"]\n")))
        result = docker_pushd.push(repo)
    assert result.returncode != 0
    assert accepted == []
    assert any("Failed to connect to 127.0.0.1" in line for line in remote_lines(
        result.stderr)), result.stderr
    assert not image_tags(app)  # nothing half-built is kept
