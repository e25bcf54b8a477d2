"""The docker runtime's pure parts: what a container is created with, names, engine
timestamps, the log cursor, the stand-in for a dead one-off owner."""

from __future__ import annotations

from pathlib import Path

from pushd.procs import owner_alive, owner_token
from pushd.runtime.docker.client import container_name, docker_time, instance_id, nanoseconds
from pushd.runtime.docker.container import create_kwargs
from pushd.runtime.docker.logcollect import Cursor
from pushd.runtime.records import DynoSpec

SPEC = DynoSpec(id="7-web.2-v3-a1b2c3", app_id=7, app="shop", release=3, process_type="web",
                index=2, command="gunicorn app:app --secret-flag", port=5000, uid=40007,
                env={"DATABASE_URL": "postgres://user:hunter2@db/shop", "PORT": "5000"},
                slug_dir="/slugs/3", memory_mb=256, pids_max=128, cpu_shares=512)


def test_config_vars_reach_the_container_through_its_environment_only():
    made = create_kwargs(SPEC, "sha256:abc", "inst")
    assert made["environment"]["DATABASE_URL"] == "postgres://user:hunter2@db/shop"
    assert made["environment"]["HOME"] == "/app" and made["environment"]["DYNO"] == "web.2"
    assert not any("hunter2" in arg for arg in made["command"])
    assert made["command"][-1] == SPEC.command  # the Procfile command, as $1 of the script


def test_the_container_is_locked_down_and_limited():
    made = create_kwargs(SPEC, "sha256:abc", "inst")
    assert made["user"] == "40007:40007" and made["init"] is True
    assert made["network_mode"] == "none" and made["read_only"] is True
    assert made["cap_drop"] == ["ALL"] and made["security_opt"] == ["no-new-privileges"]
    assert (made["mem_limit"], made["memswap_limit"], made["pids_limit"],
            made["cpu_shares"]) == ("256m", "256m", 128, 512)
    assert set(made["tmpfs"]) == {"/tmp"} and [m["Target"] for m in made["mounts"]] == ["/app"]
    assert "volumes" not in made and "ports" not in made and "privileged" not in made
    assert made["labels"]["io.pushd.id"] == SPEC.id
    assert made["labels"]["io.pushd.instance"] == "inst"
    assert made["name"] == "pushd.shop.web.2.v3.a1b2c3"


def test_names_and_instances():
    name = container_name("a", "worker", 1, 9, "1-worker.1-v9-ff00aa")
    assert name == "pushd.a.worker.1.v9.ff00aa"
    assert instance_id(Path("/var/lib/pushd")) == instance_id(Path("/var/lib/pushd/"))
    assert instance_id(Path("/var/lib/pushd")) != instance_id(Path("/var/lib/pushd2"))


def test_engine_timestamps_keep_their_nanoseconds():
    assert nanoseconds("2026-11-28T10:17:46.932097451Z") == 1795861066932097451
    assert nanoseconds("2026-11-28T10:17:46Z") == 1795861066000000000
    assert nanoseconds("2026-11-28T10:17:46.5Z") == 1795861066500000000
    assert nanoseconds("2026-11-28T11:17:46.5+01:00") == 1795861066500000000
    assert docker_time("0001-01-01T00:00:00Z") == 0.0
    assert docker_time("2026-11-28T10:17:46.5Z") == 1795861066.5


def test_the_log_cursor_round_trips_in_a_fixed_size():
    cursor = Cursor(1795861066932097451, 2, True)
    assert len(cursor.encode()) == len(Cursor().encode())
    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode(b"garbage") == Cursor()


def test_a_one_off_owner_is_this_very_process():
    assert owner_alive(owner_token())
    pid, _, start = owner_token().partition(":")
    assert not owner_alive(f"{pid}:{int(start) + 1}")  # a recycled pid is not the owner
    assert not owner_alive("nonsense")


def test_a_one_off_is_owned_by_the_same_process_not_by_a_reused_pid():
    from pushd.procs import oneoff_owner_alive

    pid, _, start = owner_token().partition(":")
    assert oneoff_owner_alive({"pid": int(pid), "owner": owner_token()})
    assert not oneoff_owner_alive({"pid": int(pid), "owner": f"{pid}:{int(start) + 1}"})
    assert oneoff_owner_alive({"pid": int(pid)})  # an older record: the pid alone
    assert not oneoff_owner_alive({"pid": "x"})


def test_the_runtime_without_an_engine_fails_in_one_line(monkeypatch, tmp_path: Path) -> None:
    import pytest

    from pushd.runtime.docker.client import DockerFailure, connect

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(DockerFailure) as err:
        connect()
    assert str(err.value).startswith("no Docker engine answers (start dockerd")
    assert "\n" not in str(err.value)
