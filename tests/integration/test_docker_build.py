"""Builds in containers of the stack image, release images and the engine's cleanup, on the
real engine (the stack image `pushd stack:build` made; built here only if it is missing).

The release images are checked through the image alone: a container of it runs the slug's
web command with `network_mode="none"`, and a request from inside that container reads its
answer. Serving through nginx from container dynos is the e2e suite's (it needs the docker
runtime)."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
import pytest

from pushd import stack
from pushd.build import BuildpackBuilder, default_bundled_dir
from pushd.errors import BuildError
from pushd.models import App
from pushd.runtime.docker import labels as lbl
from pushd.runtime.docker.build import container_steps
from pushd.runtime.docker.gc import EngineGC
from pushd.runtime.docker.images import ensure_release_image, release_tag
from pushd.settings import app_uid
from tests.integration.test_builder import APPS, BUILDPACKS, Env
from tests.loopback import loopback_service
from tests.polling import wait_until

APP_ID = 918  # a uid nothing else on the test machine uses
PROFILE = 'for f in /app/.profile.d/*.sh; do [ -e "$f" ] && . "$f"; done; exec "$@"'


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = stack.engine()
    except stack.StackError as err:  # CI must fail here, never skip
        pytest.fail(f"{err}: scripts/test starts the engine", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="pushd-stack-", dir="/tmp"))
    try:  # present on this machine (session-shared); made once where it is not
        stack.StackBuilder(client, work, lambda line: None).build("pushd-22")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return client


@pytest.fixture
def denv(engine):
    root = Path(tempfile.mkdtemp(prefix="pushd-dockerbuild-", dir="/tmp"))
    os.chmod(root, 0o711)
    from pushd.paths import Paths
    from pushd.settings import load

    settings = load({"state_dir": str(root / "state")}, env={})
    paths = Paths(settings.state_dir)
    paths.ensure()
    name = f"dockerbuild{secrets.token_hex(3)}"
    env = DockerEnv(root, settings, paths, App(id=APP_ID, name=name, owner="alice",
                                                created_at=0.0), engine=engine)
    yield env
    EngineGC(engine, settings.state_dir).remove_app(APP_ID)
    shutil.rmtree(root, ignore_errors=True)


@dataclasses.dataclass
class DockerEnv(Env):
    engine: docker.DockerClient = None

    def builder(self, settings=None) -> BuildpackBuilder:
        settings = settings or self.settings
        return BuildpackBuilder(settings, self.paths, default_bundled_dir(),
                                containers=container_steps(settings, self.engine))

    def build(self, sha, config=None, settings=None, app=None, admin=True, on_line=None):
        lines: list[str] = []

        def out(line: str) -> None:
            lines.append(line)
            if on_line:
                on_line(line)

        slug = self.builder(settings).build(app or self.app, sha, config or {}, out,
                                            admin=admin)
        return slug, lines

    def fail(self, sha, config=None, settings=None, admin=True):
        lines: list[str] = []
        with pytest.raises(BuildError) as err:
            self.builder(settings).build(self.app, sha, config or {}, lines.append,
                                         admin=admin)
        return err.value, lines

    def compiling(self, name: str, script: str) -> dict[str, str]:
        """The config of a build whose buildpack (a copy of `second` in the folder `name`)
        has `script` as its bin/compile."""
        bp = self.root / name
        shutil.copytree(BUILDPACKS / "second", bp)
        (bp / "bin" / "compile").write_text(script)
        return {"BUILDPACK_URL": str(bp)}

    def labelled(self) -> dict[str, list]:
        """Every engine object of this test's app and instance."""
        filters = lbl.app_filter(self.settings.state_dir, APP_ID)
        return {"containers": self.engine.containers.list(all=True, filters=filters),
                "images": self.engine.images.list(filters=filters),
                "volumes": self.engine.volumes.list(filters=filters)}

    def image(self, slug, release: int = 1) -> str:
        return ensure_release_image(self.engine, self.app.name, APP_ID, release, slug.dir,
                                    labels=lbl.app_labels(self.settings.state_dir,
                                                          self.app.name, APP_ID))


def serve_from_image(engine, image: str, command: str, uid: int) -> str:
    """The answer of the slug's web command, run in a container of the release image with
    no network at all, to a request made inside that same container."""
    container = engine.containers.run(
        image, ["bash", "-c", PROFILE, "dyno", "bash", "-c", command],
        environment={"PORT": "5000", "HOME": "/app"}, user=f"{uid}:{uid}",
        network_mode="none", detach=True, labels={"io.pushd.test": "dockerbuild"})
    try:
        def answer() -> str:
            done = container.exec_run(["curl", "-sS", "-m", "2", "http://127.0.0.1:5000/"])
            return done.output.decode() if done.exit_code == 0 else ""
        return wait_until(answer, timeout=30)
    finally:
        container.remove(force=True)


def test_python_app_is_built_in_a_container_and_its_release_image_serves(denv):
    sha = denv.push(APPS / "python-app")
    slug, lines = denv.build(sha, {"GREETING": "hi"})
    assert "-----> Building on the pushd-22 stack\n" in lines
    assert "-----> Python app detected\n" in lines
    assert "       Procfile declares types -> web\n" in lines
    assert slug.process_types == {"web": "python app.py"}
    # the build container is removed (after the build returns: a push need not wait for it)
    wait_until(lambda: denv.labelled()["containers"] == [])
    image = denv.engine.images.get(denv.image(slug))
    assert release_tag(denv.app.name, 1) in image.tags
    assert image.labels[lbl.APP] == denv.app.name
    assert Path(image.labels[lbl.SLUG]).name == slug.id
    uid = app_uid(denv.settings, APP_ID)
    assert serve_from_image(denv.engine, release_tag(denv.app.name, 1), slug.process_types[
        "web"], uid) == "python-app hello six=1.17.0\n"


def test_monorepo_then_python_in_the_container_detects_after_the_move(denv):
    """The same step order as the sandbox (build/compile.py compile_chain): python's
    bin/detect runs after the monorepo buildpack moved APP_BASE to the root."""
    sha = denv.push(APPS / "monorepo", {
        ".buildpacks": f"{BUILDPACKS / 'monorepo'}\npython\n"})
    slug, lines = denv.build(sha, {"APP_BASE": "services/api"})
    said = "".join(lines)
    assert said.index("Monorepo app detected") < said.index("Python app detected")
    assert slug.process_types == {"web": "python app.py"}
    assert (Path(slug.dir) / "app.py").is_file() and not (Path(slug.dir) / "web").exists()


def test_node_app_is_built_in_a_container_and_its_release_image_serves(denv):
    sha = denv.push(APPS / "node-app")
    slug, lines = denv.build(sha)
    assert "-----> Node.js app detected\n" in lines
    image = denv.image(slug)
    answer = serve_from_image(denv.engine, image, slug.process_types["web"],
                              app_uid(denv.settings, APP_ID))
    assert answer == "node-app hello ms=1m\n"


def test_buildpack_steps_run_as_the_app_uid_with_the_stack_and_no_host(denv):
    """In the container: the app's uid, STACK, the classic args; neither the host's loopback
    (a server listens there) nor the Docker socket is reachable."""
    with loopback_service() as (port, accepted):
        probe = (
            "#!/bin/bash\n"
            'echo "uid=$(id -u) stack=$STACK args=$1,$2,$3"\n'
            f"curl -sS -m 3 http://127.0.0.1:{port}/ >/dev/null 2>&1 && echo loopback=open "
            "|| echo loopback=closed\n"
            "for s in /var/run/docker.sock /run/docker.sock; do [ -e $s ] && echo socket=$s; "
            "done; echo socket-check-done\n"
            "curl -sS -m 3 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1 "
            "&& echo api=open || echo api=closed\n")
        config = denv.compiling("probe-bp", probe)
        sha = denv.push(APPS / "procfile-app")
        slug, lines = denv.build(sha, config)
    uid = app_uid(denv.settings, APP_ID)
    assert f"uid={uid} stack=pushd-22 args=/app,/cache,/env\n" in lines
    assert "loopback=closed\n" in lines
    assert not [line for line in lines if line.startswith("socket=")]
    assert "api=closed\n" in lines and accepted == []


def test_output_streams_live_from_the_container(denv):
    """The buildpack waits for the test to see its first line (it ends in error otherwise):
    only output streamed while the step runs lets it go."""
    config = denv.compiling("live-bp", (
        "#!/bin/bash\necho 'waiting for the test'\n: > \"$2/waiting\"\n"
        "for _ in $(seq 300); do [ -e \"$2/go\" ] && { echo 'let go'; exit 0; }; sleep 0.1; "
        "done\necho 'nobody saw me'; exit 1\n"))
    sha = denv.push(APPS / "procfile-app")

    def on_line(line: str) -> None:
        if line == "waiting for the test\n":
            cache = next(denv.paths.builds(APP_ID).glob("build-*/cache"))
            wait_until(lambda: (cache / "waiting").exists(), timeout=10)
            (cache / "go").touch()

    _, lines = denv.build(sha, config, on_line=on_line)
    assert lines.index("waiting for the test\n") < lines.index("let go\n")


def test_a_failed_build_leaves_no_container_nor_image(denv):
    sha = denv.push(APPS / "procfile-app")
    # a build container a killed daemon left running (or one still being removed after its
    # push): the next build removes it before it mounts the app's cache
    denv.engine.containers.run(
        stack.image_name(denv.settings.stack), ["sleep", "infinity"], network_mode="none",
        detach=True, labels=lbl.build_labels(denv.settings.state_dir, denv.app.name, APP_ID))
    err, lines = denv.fail(sha, {"BUILDPACK_URL": str(BUILDPACKS / "failing")})
    assert " !     Something went wrong on purpose\n" in lines
    assert lines[-1].startswith(" !     Push rejected, failed to compile")
    assert denv.labelled() == {"containers": [], "images": [], "volumes": []}
    assert denv.leftovers() == []


def test_build_timeout_stops_the_container(denv):
    config = denv.compiling("slow-bp", "#!/bin/sh\nsleep 60 &\necho sleeping\nsleep 60\n")
    sha = denv.push(APPS / "procfile-app")
    settings = dataclasses.replace(denv.settings, build_timeout=3)
    err, lines = denv.fail(sha, config, settings=settings)
    assert err.phase == "compile" and "sleeping\n" in lines
    assert lines[-1] == " !     Build timed out after 3 seconds and was stopped.\n"
    assert denv.labelled()["containers"] == []
    ps = subprocess.run(["ps", "-o", "stat=", "-u", str(app_uid(denv.settings, APP_ID))],
                        capture_output=True, text=True)
    assert [state for state in ps.stdout.split() if not state.startswith("Z")] == []


def test_the_build_container_has_the_build_limits(denv):
    config = denv.compiling("limits-bp", (
        "#!/bin/bash\necho mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\n"
        "echo pids=$(cat /sys/fs/cgroup/pids/pids.max)\n"
        "echo cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/"
        "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\n"))
    sha = denv.push(APPS / "procfile-app")
    settings = dataclasses.replace(denv.settings, build_memory_mb=300, build_pids_max=77,
                                   build_cpu_percent=50)
    _, lines = denv.build(sha, config, settings=settings)
    assert f"mem={300 * 1024 * 1024}\n" in lines and "pids=77\n" in lines
    assert "cpu=50000/100000\n" in lines


def test_slug_size_limit_holds_in_the_container(denv):
    config = denv.compiling("big-bp", "#!/bin/sh\nhead -c 3000000 /dev/urandom > \"$1/blob\"\n")
    sha = denv.push(APPS / "procfile-app")
    settings = dataclasses.replace(denv.settings, slug_limit_mb=1)
    err, lines = denv.fail(sha, config, settings=settings)
    assert err.phase == "slug" and "too large" in str(err)
    assert denv.labelled()["containers"] == [] and denv.leftovers() == []


def fake_slug(denv, number: int) -> Path:
    """A slug folder and tarball (./app/release) as the builder leaves them."""
    slugs = denv.paths.slugs(APP_ID)
    slugs.mkdir(parents=True, exist_ok=True)
    folder = slugs / f"slug{number:03d}{secrets.token_hex(2)}"
    folder.mkdir()
    (folder / "release").write_text(f"{number}\n")
    with tarfile.open(f"{folder}.tgz", "w:gz") as tar:
        tar.add(folder, arcname="./app")
    return folder


def test_after_15_deploys_only_the_retained_release_images_remain(denv):
    gc = EngineGC(denv.engine, denv.settings.state_dir)
    labels = lbl.app_labels(denv.settings.state_dir, denv.app.name, APP_ID)
    keep = 4
    for version in range(1, 16):
        ensure_release_image(denv.engine, denv.app.name, APP_ID, version,
                             str(fake_slug(denv, version)), labels=labels)
        gc.prune_app(APP_ID, range(1, version + 1), keep, in_play={version})
    tags = sorted(t for image in denv.labelled()["images"] for t in image.tags)
    assert tags == [release_tag(denv.app.name, v) for v in (12, 13, 14, 15)]
    out = denv.engine.containers.run(release_tag(denv.app.name, 14), ["cat", "/app/release"],
                                     network_mode="none", remove=True)
    assert out == b"14\n"
    assert denv.engine.images.get(stack.image_name("pushd-22"))  # never touched


def test_a_rollback_release_reuses_the_slugs_image(denv):
    labels = lbl.app_labels(denv.settings.state_dir, denv.app.name, APP_ID)
    slug = fake_slug(denv, 1)
    ensure_release_image(denv.engine, denv.app.name, APP_ID, 1, str(slug), labels=labels)
    ensure_release_image(denv.engine, denv.app.name, APP_ID, 3, str(slug), labels=labels)
    first = denv.engine.images.get(release_tag(denv.app.name, 1))
    assert denv.engine.images.get(release_tag(denv.app.name, 3)).id == first.id


def test_remove_app_leaves_nothing_labelled_and_spares_other_instances(denv, engine):
    labels = lbl.app_labels(denv.settings.state_dir, denv.app.name, APP_ID)
    ensure_release_image(engine, denv.app.name, APP_ID, 1, str(fake_slug(denv, 1)),
                         labels=labels)
    engine.containers.create(release_tag(denv.app.name, 1), ["true"], network_mode="none",
                             labels={**labels, lbl.RELEASE: "1"})
    engine.volumes.create(name=f"{denv.app.name}-vol", labels=labels)
    other = Path(tempfile.mkdtemp(prefix="pushd-dockerbuild-other-", dir="/tmp"))
    theirs = {**lbl.app_labels(other, denv.app.name, APP_ID)}
    volume = engine.volumes.create(name=f"{denv.app.name}-other", labels=theirs)
    try:
        freed = EngineGC(engine, denv.settings.state_dir).remove_app(APP_ID)
        assert denv.labelled() == {"containers": [], "images": [], "volumes": []}
        assert (freed.images, freed.containers, freed.volumes) == (1, 1, 1)
        assert engine.volumes.get(volume.name)  # another instance's: untouched
    finally:
        volume.remove(force=True)
        shutil.rmtree(other, ignore_errors=True)


def test_gc_reports_what_it_freed(denv):
    labels = lbl.app_labels(denv.settings.state_dir, denv.app.name, APP_ID)
    for version in (1, 2, 3):
        ensure_release_image(denv.engine, denv.app.name, APP_ID, version,
                             str(fake_slug(denv, version)), labels=labels)
    leftover = denv.engine.containers.create(
        release_tag(denv.app.name, 3), ["true"], network_mode="none",
        labels={**lbl.build_labels(denv.settings.state_dir, denv.app.name, APP_ID)})
    freed = EngineGC(denv.engine, denv.settings.state_dir).prune_app(
        APP_ID, [1, 2, 3], keep=1, in_play={3})
    assert (freed.images, freed.containers) == (2, 1)
    assert freed.bytes > 0
    assert freed.describe().startswith("Freed 2 images, 1 container, 0 volumes: ")
    with pytest.raises(docker.errors.NotFound):
        denv.engine.containers.get(leftover.id)


def test_a_build_over_its_memory_limit_is_stopped_and_says_so(denv):
    config = denv.compiling(
        "hungry-bp", "#!/bin/sh\npython3 -c 'x = bytearray(400 * 1024 * 1024); print(len(x))'\n")
    sha = denv.push(APPS / "procfile-app")
    settings = dataclasses.replace(denv.settings, build_memory_mb=100)
    err, lines = denv.fail(sha, config, settings=settings)
    assert str(err) == "Build exceeded its memory limit of 100 MB and was stopped"
    assert denv.labelled()["containers"] == []


def test_exited_containers_go_except_those_of_releases_still_in_play_or_stopping(denv):
    labels = lbl.app_labels(denv.settings.state_dir, denv.app.name, APP_ID)
    for version in (1, 2, 3):
        ensure_release_image(denv.engine, denv.app.name, APP_ID, version,
                             str(fake_slug(denv, version)), labels=labels)
    made = {}
    for version in (1, 2, 3):
        made[version] = denv.engine.containers.create(
            release_tag(denv.app.name, version), ["true"], network_mode="none",
            labels={**labels, lbl.RELEASE: str(version)})
    freed = EngineGC(denv.engine, denv.settings.state_dir).prune_app(
        APP_ID, [1, 2, 3], keep=3, in_play={3}, stopping={2})
    assert freed.containers == 1
    left = {c.labels[lbl.RELEASE] for c in denv.labelled()["containers"]}
    assert left == {"2", "3"}
