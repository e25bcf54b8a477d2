"""The docker runtime's build container arguments and the gc's choices, as data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pushd.build.sandbox import BuildSandbox
from pushd.runtime.docker import labels as lbl
from pushd.runtime.docker.build import container_kwargs, exec_kwargs
from pushd.runtime.docker.gc import Freed, kept_versions, stale_tags
from pushd.runtime.docker.images import image_config
from pushd.runtime.netns import pasta_argv

SANDBOX = BuildSandbox(40007, Path("/s/build-x/app"), Path("/s/build-x/cache"),
                       Path("/s/build-x/env"), (Path("/s/build-x/buildpacks/0"),),
                       "pushd-22", "a" * 40)


def test_the_build_container_is_unprivileged_offline_and_limited():
    kwargs = container_kwargs("pushd/stack:pushd-22", "myapp", SANDBOX, {"k": "v"},
                              memory_mb=2048, cpu_percent=150, pids_max=512, ca_bundle=None)
    assert kwargs["user"] == "40007:40007" and kwargs["network_mode"] == "none"
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["init"] is True and kwargs["labels"] == {"k": "v"}
    assert (kwargs["mem_limit"], kwargs["memswap_limit"]) == ("2048m", "2048m")
    assert kwargs["pids_limit"] == 512 and kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["volumes"] == {
        "/s/build-x/app": {"bind": "/app", "mode": "rw"},
        "/s/build-x/cache": {"bind": "/cache", "mode": "rw"},
        "/s/build-x/env": {"bind": "/env", "mode": "ro"},
        "/s/build-x/buildpacks/0": {"bind": "/buildpacks/0", "mode": "rw"}}
    assert kwargs["name"].startswith("pushd.myapp.build.")
    assert "privileged" not in kwargs and "docker.sock" not in str(kwargs)


def test_the_build_container_mounts_the_buildpack_copies_folder_whole_when_it_starts_early():
    early = dataclasses.replace(SANDBOX, buildpack_dirs=(),
                                buildpacks_root=Path("/s/build-x/buildpacks"))
    kwargs = container_kwargs("pushd/stack:pushd-22", "myapp", early, {}, memory_mb=2048,
                              cpu_percent=150, pids_max=512, ca_bundle=None)
    assert kwargs["volumes"]["/s/build-x/buildpacks"] == {"bind": "/buildpacks", "mode": "rw"}
    assert len(kwargs["volumes"]) == 4


def test_a_step_runs_as_the_app_uid_with_its_environment_in_the_request():
    kwargs = exec_kwargs(40007, ["bin/compile", "/app"], {"STACK": "pushd-22"})
    assert kwargs["cmd"] == ["bin/compile", "/app"] and kwargs["user"] == "40007:40007"
    assert kwargs["environment"] == {"STACK": "pushd-22"} and kwargs["workdir"] == "/app"


def test_retention_keeps_the_newest_and_whatever_is_in_play():
    assert kept_versions(range(1, 16), 3, in_play={7}) == {13, 14, 15, 7}
    assert kept_versions([], 3, in_play=()) == set()


def test_only_release_tags_of_versions_not_kept_are_stale():
    tags = ["pushd/a:v1", "pushd/a:v12", "pushd/stack:pushd-22", "other/a:v1", "pushd/a:latest"]
    assert stale_tags(tags, kept={12}) == ["pushd/a:v1"]


def test_what_gc_freed_is_one_line():
    freed = Freed(images=2, containers=1, volumes=0, bytes=3 * 1024 * 1024 // 2)
    assert freed.describe() == "Freed 2 images, 1 container, 0 volumes: 1.5 MB"


def test_labels_tell_instances_apart():
    ours = lbl.app_labels(Path("/var/lib/pushd"), "a", 1)
    theirs = lbl.app_labels(Path("/srv/other"), "a", 1)
    assert ours[lbl.INSTANCE] != theirs[lbl.INSTANCE]
    assert lbl.app_filter(Path("/var/lib/pushd"), 1) == {
        "label": [f"{lbl.INSTANCE}={ours[lbl.INSTANCE]}", f"{lbl.APP_ID}=1"]}


def test_pasta_for_a_containers_namespace_keeps_only_the_capabilities_to_join_it():
    argv = pasta_argv(40007, "/proc/self/fd/5", None)
    assert "--userns" not in argv and "--reuid=40007" in argv
    assert "--ambient-caps=+sys_admin,+net_admin" in argv
    assert "--ambient-caps=+sys_admin,+net_admin" not in pasta_argv(40007, "n", "u")


class FakeImages:
    def __init__(self, present: bool) -> None:
        self.present = present

    def get(self, name: str):
        import docker.errors

        if not self.present:
            raise docker.errors.ImageNotFound(name)
        return type("Image", (), {"id": "sha256:" + "ab" * 32})()


class FakeEngine:
    def __init__(self, present: bool) -> None:
        self.images = FakeImages(present)


def test_up_with_the_docker_runtime_builds_the_stack_only_when_missing(monkeypatch, tmp_path):
    from pushd import stack
    from pushd.runtime.docker.hooks import ensure_stack
    from pushd.settings import load

    built: list[str] = []
    monkeypatch.setattr(stack.StackBuilder, "build",
                        lambda self, name, force=False: built.append(name) or "id")
    settings = load({"state_dir": str(tmp_path)}, env={})
    monkeypatch.setattr(stack, "engine", lambda: FakeEngine(present=True))
    ensure_stack(settings, print)
    assert built == []
    monkeypatch.setattr(stack, "engine", lambda: FakeEngine(present=False))
    ensure_stack(settings, print)
    assert built == ["pushd-22"]


def test_up_with_the_docker_runtime_and_no_engine_is_one_line(monkeypatch, tmp_path):
    import pytest

    from pushd.runtime.docker.hooks import ensure_stack
    from pushd.settings import load
    from pushd.stack import StackError

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(StackError) as err:
        ensure_stack(load({"state_dir": str(tmp_path)}, env={}), print)
    assert str(err.value).startswith("no Docker engine answers") and "\n" not in str(err.value)


def test_a_release_image_is_the_stacks_layers_and_config_plus_the_slug_layer():
    stack = {"Architecture": "amd64", "Os": "linux",
             "Config": {"Env": ["PATH=/usr/bin"], "Labels": {"io.pushd.stack": "pushd-22"}},
             "RootFS": {"Layers": ["sha256:aaa"]}}
    config = image_config(stack, "sha256:bbb", {lbl.APP: "myapp"}, "2026-11-28T00:00:00Z")
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:aaa", "sha256:bbb"]}
    assert config["config"]["Env"] == ["PATH=/usr/bin"]
    assert config["config"]["Labels"] == {"io.pushd.stack": "pushd-22", lbl.APP: "myapp"}
    assert config["config"]["WorkingDir"] == "/app" and len(config["history"]) == 2
    assert stack["Config"]["Labels"] == {"io.pushd.stack": "pushd-22"}  # not changed
