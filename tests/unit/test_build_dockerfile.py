"""The Dockerfile builder's decisions, without Docker: which builder a push gets, the exact
`docker build` arguments, process types and the port from an image's config, and the slug
record that carries the image."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pushd.build.dockerfile import (
    SANDBOX_REFUSAL,
    ChoosingBuilder,
    build_kwargs,
    exposed_port,
    image_process_types,
    wants_dockerfile,
)
from pushd.errors import BuildError
from pushd.models import App, Slug
from pushd.settings import load
from pushd.store import Store

APP = App(id=5, name="shop", owner="alice", created_at=0.0)


def tree(**files: str):
    return lambda name: files[name].encode() if name in files else None


@pytest.mark.parametrize("files, config, app_buildpacks, expected", [
    ({"Dockerfile": "FROM x\n"}, {}, (), True),
    ({}, {}, (), False),
    ({"Dockerfile": "FROM x\n"}, {"BUILDPACK_URL": "https://h/bp.git"}, (), False),
    ({"Dockerfile": "FROM x\n"}, {"BUILDPACK_URL": "  "}, (), True),
    ({"Dockerfile": "FROM x\n", ".buildpacks": "python\n"}, {}, (), False),
    ({"Dockerfile": "FROM x\n", ".buildpacks": "# none yet\n\n"}, {}, (), True),
    ({"Dockerfile": "FROM x\n"}, {}, ("python",), False),
])
def test_a_dockerfile_builds_only_when_no_buildpack_is_asked_for(files, config,
                                                                  app_buildpacks, expected):
    assert wants_dockerfile(tree(**files), config, app_buildpacks) is expected


def test_build_arguments_are_bounded_and_carry_no_config():
    settings = load({"state_dir": "/nonexistent", "build_memory_mb": 300,
                     "build_timeout": 120}, env={})
    context = object()
    kwargs = build_kwargs(context, "pushd/shop:v7", APP, 7, "65a1b2c3d4e5f6", settings)
    instance = hashlib.sha256(b"/nonexistent").hexdigest()[:16]
    assert kwargs == {
        "fileobj": context, "custom_context": True, "tag": "pushd/shop:v7", "decode": True,
        "labels": {"io.pushd.app": "shop", "io.pushd.app_id": "5", "io.pushd.release": "7",
                   "io.pushd.instance": instance, "io.pushd.slug": "65a1b2c3d4e5f6"},
        "network_mode": "none", "pull": False, "rm": True, "forcerm": True,
        "container_limits": {"memory": 300 * 1024 * 1024, "memswap": 300 * 1024 * 1024},
        "timeout": 180,
    }
    assert "buildargs" not in kwargs


@pytest.mark.parametrize("config, procfile, expected", [
    ({"Cmd": ["python3", "-m", "http.server"]}, None, {"web": "python3 -m http.server"}),
    ({"Entrypoint": ["/bin/run"], "Cmd": ["--port", "8 0"]}, None,
     {"web": "/bin/run --port '8 0'"}),
    ({"Cmd": ["/bin/sh", "-c", "exec gunicorn app:app"]}, None,
     {"web": "/bin/sh -c 'exec gunicorn app:app'"}),
    ({"Cmd": ["python3", "a.py"]}, "web: gunicorn app\n", {"web": "gunicorn app"}),
    ({"Cmd": ["python3", "a.py"]}, "worker: python3 w.py\n",
     {"web": "python3 a.py", "worker": "python3 w.py"}),
    ({"Cmd": None}, None, {}),
    ({}, "worker: python3 w.py\n", {"worker": "python3 w.py"}),
])
def test_the_image_cmd_is_web_unless_the_procfile_says_otherwise(config, procfile, expected):
    assert image_process_types(config, procfile) == expected


@pytest.mark.parametrize("ports, expected", [
    (None, 0), ({}, 0), ({"8000/tcp": {}}, 8000), ({"9000/tcp": {}, "3000/tcp": {}}, 3000),
    ({"53/udp": {}}, 0), ({"5000": {}}, 5000), ({"0/tcp": {}}, 0),
])
def test_the_lowest_exposed_tcp_port_is_the_dynos_port(ports, expected):
    assert exposed_port({"ExposedPorts": ports}) == expected


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def build(self, app, commit, config, out, *, admin=False) -> Slug:
        self.calls.append(commit)
        return Slug("s1", app.id, "", "", 1, commit)


def choosing(runtime: str, **files: str) -> tuple[ChoosingBuilder, Recorder, Recorder]:
    buildpacks, dockerfile = Recorder(), Recorder()
    return (ChoosingBuilder(buildpacks, dockerfile, runtime == "docker",
                            lambda app_id, commit: tree(**files)), buildpacks, dockerfile)


def test_the_docker_runtime_builds_the_dockerfile():
    builder, buildpacks, dockerfile = choosing("docker", Dockerfile="FROM x\n")
    builder.build(APP, "a" * 40, {}, [].append)
    assert (buildpacks.calls, dockerfile.calls) == ([], ["a" * 40])


def test_other_runtimes_refuse_a_dockerfile_push_in_one_line():
    builder, buildpacks, dockerfile = choosing("sandbox", Dockerfile="FROM x\n")
    lines: list[str] = []
    with pytest.raises(BuildError):
        builder.build(APP, "a" * 40, {}, lines.append)
    assert lines == [f" !     {SANDBOX_REFUSAL}\n"]
    assert SANDBOX_REFUSAL == ("This app has a Dockerfile; Dockerfile deploys need the docker "
                               "runtime (pushd up --runtime docker)")
    assert buildpacks.calls == dockerfile.calls == []


def test_without_a_dockerfile_the_buildpacks_build():
    for runtime in ("sandbox", "docker"):
        builder, buildpacks, dockerfile = choosing(runtime, **{"requirements.txt": ""})
        builder.build(APP, "b" * 40, {}, [].append)
        assert (buildpacks.calls, dockerfile.calls) == (["b" * 40], [])


def test_a_slug_record_carries_its_image_and_port(tmp_path: Path):
    store = Store(tmp_path / "pushd.db")
    app = store.create_app("shop", "alice")
    assert store.next_version(app.id) == 1
    store.add_slug(Slug("img1", app.id, "", "", 5, "c" * 40, {"web": "python3 a.py"},
                        "Dockerfile", 1.0, image="pushd/shop:v1", port=8000))
    assert store.slug("img1").image == "pushd/shop:v1" and store.slug("img1").port == 8000
    store.create_release(app.id, description="Deploy", user="alice", slug=store.slug("img1"))
    assert store.next_version(app.id) == 2


def test_an_older_state_database_gains_the_image_columns(tmp_path: Path):
    db = tmp_path / "pushd.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE slugs (id TEXT PRIMARY KEY, app_id INTEGER NOT NULL, "
                     "path TEXT NOT NULL, dir TEXT NOT NULL, size INTEGER NOT NULL, "
                     "commit_sha TEXT NOT NULL, process_types TEXT NOT NULL, "
                     "buildpack TEXT NOT NULL, created_at REAL NOT NULL)")
        conn.execute("INSERT INTO slugs VALUES ('old', 1, '/s/old.tgz', '/s/old', 1, 'c', "
                     "'{}', 'Python', 1.0)")
    store = Store(db)
    old = store.slug("old")
    assert (old.path, old.image, old.port) == ("/s/old.tgz", "", 0)


def test_the_network_holder_is_nothing_but_a_namespace():
    from pushd.build.dockerfile_network import holder_kwargs

    assert holder_kwargs("pushd/stack:pushd-22", {"io.pushd.app": "shop"}) == {
        "image": "pushd/stack:pushd-22", "command": ["sleep", "infinity"],
        "network_mode": "none", "labels": {"io.pushd.app": "shop", "io.pushd.build": "1"},
        "user": "65534:65534", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "read_only": True, "init": True, "detach": True, "mem_limit": "16m", "pids_limit": 8}
