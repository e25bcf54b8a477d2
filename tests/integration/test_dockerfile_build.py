"""DockerfileBuilder against the real Docker engine: real commits in a bare repo, a real
`docker build` FROM the local stack image with no network. Every image made here carries
`io.pushd.app=<this run's app>` and is removed by that label at the end (only ours)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pushd import stack
from pushd.build.dockerfile import DockerfileBuilder, docker_client, repo_files
from pushd.errors import BuildError
from pushd.models import App
from pushd.paths import Paths
from pushd.runtime.docker import labels as lbl
from pushd.settings import load
from pushd.store import Store
from tests.loopback import loopback_service
from tests.polling import wait_until
from tests.repos import commit_and_push

APP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "dockerfile-app"
APP = App(id=4711, name=f"dockerfile-it-{os.getpid()}", owner="alice", created_at=0.0)
STACK_IMAGE = stack.image_name(load({}).stack)


@pytest.fixture(scope="module")
def engine():
    try:
        client = stack.engine()  # CI must fail here, never skip
    except stack.StackError as err:
        pytest.fail(str(err), pytrace=False)
    if not client.images.list(name=STACK_IMAGE):
        pytest.fail(f"no {STACK_IMAGE}: run `pushd stack:build`", pytrace=False)
    yield client
    for image in client.images.list(filters={"label": f"io.pushd.app={APP.name}"}):
        client.images.remove(image.id, force=True)
    client.close()


class Env:
    def __init__(self, root: Path, **settings: object) -> None:
        self.root = root
        self.settings = load({"state_dir": str(root / "state"), **settings}, env={})
        self.paths = Paths(self.settings.state_dir)
        self.paths.ensure()
        self.store = Store(self.paths.db)
        self.version = 3

    def push(self, files: dict[str, str], source: Path | None = None) -> str:
        return commit_and_push(self.paths.repo(APP.id), self.root, source, files)

    def builder(self) -> DockerfileBuilder:
        return DockerfileBuilder(self.settings, self.paths, docker_client,
                                 repo_files(self.paths.repo), lambda app_id: self.version)


@pytest.fixture
def env():
    root = Path(tempfile.mkdtemp(prefix="pushd-dockerfile-test-", dir="/tmp"))
    yield Env(root)
    shutil.rmtree(root, ignore_errors=True)


def warning(line: str) -> bool:
    """The build's one warning when pasta cannot join a container's namespace (this engine
    and netns.py before the docker runtime's attach lands): the build then runs offline."""
    return line.startswith(" !     Warning: this build has no network access (")


def build(env: Env, sha: str, config: dict[str, str] | None = None):
    lines: list[str] = []
    slug = env.builder().build(APP, sha, config or {}, lines.append)
    return slug, lines


def fail(env: Env, sha: str) -> tuple[BuildError, list[str]]:
    lines: list[str] = []
    with pytest.raises(BuildError) as err:
        env.builder().build(APP, sha, {}, lines.append)
    return err.value, lines


def test_image_is_tagged_labelled_and_its_cmd_is_web(engine, env):
    sha = env.push({}, APP_DIR)
    slug, lines = build(env, sha, {"SECRET_TOKEN": "s3cr3t-value"})
    tag = f"pushd/{APP.name}:v3"
    assert slug.image == engine.images.get(tag).id  # the image itself, not a tag that moves
    assert slug.port == 8000 and slug.commit == sha
    assert slug.process_types == {"web": "python3 /app/server.py"}
    assert slug.buildpack == "Dockerfile" and slug.path == "" and slug.dir == ""
    image = engine.images.get(tag)
    assert image.labels["io.pushd.app"] == APP.name
    assert image.labels["io.pushd.app_id"] == str(APP.id)
    assert image.labels["io.pushd.release"] == "3"
    assert image.labels["io.pushd.slug"] == slug.id
    assert image.labels["io.pushd.instance"] == lbl.instance(env.settings.state_dir)
    assert "-----> Building from Dockerfile\n" in lines
    assert any(line.startswith("       Step 1/") for line in lines)  # docker's own output, live
    assert "       Default types for Dockerfile -> web (python3 /app/server.py)\n" in lines
    # config vars are never in the image (no build args, no ENV)
    history = engine.api.history(image.id)
    assert "s3cr3t-value" not in repr(history) and "s3cr3t-value" not in repr(image.attrs)
    # no step containers left behind, nor the holder of the build's network namespace
    assert not engine.containers.list(all=True, filters={"ancestor": image.id})
    assert not engine.containers.list(all=True, filters={
        "label": [f"io.pushd.app={APP.name}", "io.pushd.build=1"]})


def test_procfile_overrides_the_cmd(engine, env):
    sha = env.push({"Procfile": "web: python3 -m http.server $PORT\nworker: sleep 1000\n"},
                   APP_DIR)
    slug, lines = build(env, sha)
    assert slug.process_types == {"web": "python3 -m http.server $PORT",
                                  "worker": "sleep 1000"}
    assert "       Procfile declares types -> web, worker\n" in lines


def test_entrypoint_and_cmd_make_web_and_no_expose_means_port_zero(engine, env):
    sha = env.push({"Dockerfile": "FROM " + STACK_IMAGE + "\n"
                    'ENTRYPOINT ["python3", "-m"]\nCMD ["http.server"]\n'})
    slug, _ = build(env, sha)
    assert slug.process_types == {"web": "python3 -m http.server"}
    assert slug.port == 0  # the dyno gets the platform's $PORT


def test_failing_run_is_one_line_and_leaves_no_image(engine, env):
    env.version = 4
    sha = env.push({"Dockerfile": f"FROM {STACK_IMAGE}\nRUN echo building && exit 7\n"})
    err, lines = fail(env, sha)
    assert "       building\n" in lines  # the step's output was streamed
    rejected = [line for line in lines if line.startswith(" !     ") and not warning(line)]
    assert rejected == [" !     Push rejected, docker build failed: The command "
                        "'/bin/sh -c echo building && exit 7' returned a non-zero code: 7\n"]
    assert not engine.images.list(name=f"pushd/{APP.name}:v4")


def test_the_build_cannot_reach_the_host_loopback(engine, env):
    """A server on the host's 127.0.0.1: a RUN step that calls it fails, the server sees
    nothing (the build has no network, not the host's)."""
    with loopback_service() as (port, accepted):
        sha = env.push({"Dockerfile": f"FROM {STACK_IMAGE}\n"
                        f"RUN curl -sS --max-time 5 http://127.0.0.1:{port}/leak\n"})
        err, lines = fail(env, sha)
    assert accepted == []
    said = [line for line in lines if f"Failed to connect to 127.0.0.1 port {port}" in line]
    assert said and said[0].startswith("       curl: (7) "), lines  # shown plain, not red
    assert not [line for line in lines if "\x1b" in line]
    assert "returned a non-zero code" in str(err)


def test_timeout_stops_a_quiet_step(engine, tmp_path):
    env = Env(tmp_path, build_timeout=3)
    marker = f"dockerfile-it-{os.getpid()}"
    sha = env.push({"Dockerfile": f"FROM {STACK_IMAGE}\nRUN sleep 600 || echo {marker}\n"})
    err, lines = fail(env, sha)
    assert lines[-1] == " !     Build timed out after 3 seconds and was stopped.\n"
    assert "timed out" in str(err)

    def step_gone() -> bool:
        return not [c for c in engine.containers.list(all=True)
                    if marker in " ".join(c.attrs["Config"].get("Cmd") or [])]
    wait_until(step_gone, timeout=30)


def test_build_context_over_the_limit_is_refused(engine, tmp_path):
    env = Env(tmp_path, slug_limit_mb=1)
    sha = env.push({"Dockerfile": f"FROM {STACK_IMAGE}\n",
                    "big.bin": os.urandom(1536 * 1024).hex()})
    err, lines = fail(env, sha)
    assert [line for line in lines if not warning(line)] == [
        "-----> Building from Dockerfile\n",
        " !     Push rejected, the build context is larger than 1M (max is 1M)\n"]


def test_no_cmd_and_no_procfile_is_refused(engine, env):
    sha = env.push({"Dockerfile": f"FROM {STACK_IMAGE}\nCMD []\n"})
    err, lines = fail(env, sha)
    assert lines[-1] == (" !     Push rejected, the Dockerfile has no CMD and there is no "
                         "Procfile: nothing to run\n")
