"""An app's folder and bare repo: made on demand after a crash, never brought back once the
app is destroyed (deploy lock, repo creation, build folders)."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from dulwich.repo import Repo

from pushd import appfiles
from pushd.build.builder import BuildpackBuilder
from pushd.build.slug import make_slug
from pushd.commands.apps import create_app
from pushd.commands.registry import Context, dispatch
from pushd.errors import BuildError, NotFound, RuntimeFailure
from pushd.gitserver import receive
from pushd.models import Key
from pushd.platform import BUNDLED_BUILDPACKS, Platform
from pushd.settings import Settings

ADMIN = Key(name="admin", role="admin", public_key="", fingerprint="SHA256:admin")
FLUSH = b"0000"  # what git sends when it has nothing to push or fetch


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return Platform(Settings(state_dir=tmp_path / "state"))


def _ignore(_text: str) -> None:
    pass


def test_a_push_or_clone_makes_the_repo_a_crash_left_out(platform: Platform):
    app = platform.store.create_app("myapp", "admin")  # crashed right after the row
    folder = platform.paths.app_dir(app.id)
    assert not folder.exists()
    written: list[bytes] = []
    receive.receive_pack(platform, app, ADMIN, io.BytesIO(FLUSH), written.append, _ignore)
    assert b"report-status" in b"".join(written)  # the ref advertisement went out
    Repo(str(platform.paths.repo(app.id))).close()
    assert oct(folder.stat().st_mode & 0o777) == "0o711"
    other = platform.store.create_app("other", "admin")
    receive.upload_pack(platform, other, io.BytesIO(FLUSH).read, written.append, _ignore)
    Repo(str(platform.paths.repo(other.id))).close()


def test_a_crash_while_making_the_repo_leaves_no_half_repo(platform: Platform, monkeypatch):
    def crash(*_args: object) -> None:
        raise KeyboardInterrupt  # the process dies between init and rename

    monkeypatch.setattr(appfiles.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        create_app(platform, "myapp", ADMIN)
    app = platform.store.app("myapp")
    assert not platform.paths.repo(app.id).exists()
    monkeypatch.undo()
    receive.receive_pack(platform, app, ADMIN, io.BytesIO(FLUSH), [].append, _ignore)
    Repo(str(platform.paths.repo(app.id))).close()
    assert [p.name for p in platform.paths.app_dir(app.id).iterdir()
            if p.name.startswith(".repo-")] == []


def test_a_destroyed_app_gets_no_folder_back(platform: Platform):
    app = platform.store.create_app("myapp", "admin")
    platform.store.delete_app(app.id)
    with pytest.raises(NotFound):
        with appfiles.deploy_lock(platform, app, _ignore):
            pass
    with pytest.raises(NotFound):
        receive.upload_pack(platform, app, io.BytesIO(FLUSH), [].append, _ignore)
    assert not platform.paths.app_dir(app.id).exists()


def test_a_push_waiting_on_a_destroy_fails_and_cleans_up(platform: Platform):
    app = create_app(platform, "myapp", ADMIN)
    folder = platform.paths.app_dir(app.id)
    said: list[str] = []
    errors: list[Exception] = []

    def push() -> None:
        try:
            with appfiles.deploy_lock(platform, app, said.append):
                pass
        except NotFound as err:
            errors.append(err)

    with appfiles.deploy_lock(platform, app, _ignore, wait=False):  # the destroy
        waiter = threading.Thread(target=push)
        waiter.start()
        while not said:
            time.sleep(0.01)
        platform.store.delete_app(app.id)  # its folder stays: the waiter must remove it
    waiter.join(10)
    assert [str(e) for e in errors] == ["myapp was destroyed"]
    assert not folder.exists()


def test_a_build_of_a_destroyed_app_fails_without_making_its_folder(platform: Platform):
    app = platform.store.create_app("myapp", "admin")
    lines: list[str] = []
    builder = BuildpackBuilder(platform.settings, platform.paths, BUNDLED_BUILDPACKS)
    with pytest.raises(BuildError, match="destroyed during the build"):
        builder.build(app, "0" * 40, {}, lines.append)
    assert " !     The app was destroyed during the build\n" in lines
    assert not platform.paths.app_dir(app.id).exists()


def test_a_slug_is_not_written_into_a_destroyed_app(tmp_path: Path):
    app_dir = tmp_path / "build" / "app"
    app_dir.mkdir(parents=True)
    (app_dir / "x").write_text("x")
    with pytest.raises(BuildError) as err:
        make_slug(app_dir, tmp_path / "apps" / "7" / "slugs", "abc", 500)
    assert err.value.phase == "slug"
    assert not (tmp_path / "apps").exists()
    assert os.listdir(app_dir) == ["x"]


class StubbornSupervisor:
    """The daemon's supervisor, whose dynos take too long to stop the first time."""

    def __init__(self) -> None:
        self.stops = 0

    def stop_all(self, app_id: int, timeout: float | None = None) -> None:
        self.stops += 1
        if self.stops == 1:
            raise RuntimeFailure("Timed out waiting for the dynos to stop")

    def wake(self) -> None:
        pass


def _destroy(platform: Platform, name: str) -> tuple[int, list[str]]:
    said: list[str] = []
    ctx = Context(platform, ADMIN, said.append, said.append)
    return dispatch(ctx, ["apps:destroy", name, "--confirm", name]), said


def test_a_destroy_whose_dynos_do_not_stop_deletes_nothing_and_can_be_run_again(
        platform: Platform):
    app = create_app(platform, "myapp", ADMIN)
    platform.supervisor = StubbornSupervisor()
    status, said = _destroy(platform, "myapp")
    assert status == 1
    assert said[-1] == (" !    Timed out stopping the dynos of myapp; nothing was deleted: "
                        "run apps:destroy myapp again\n")
    assert platform.store.app_by_id(app.id) is not None
    assert platform.paths.repo(app.id).is_dir()
    status, said = _destroy(platform, "myapp")
    assert status == 0 and said[-1] == "done\n"
    assert platform.store.app_by_id(app.id) is None
    assert not platform.paths.app_dir(app.id).exists()


def test_a_destroyed_apps_folder_goes_even_if_waking_the_supervisor_fails(
        platform: Platform, monkeypatch):
    app = create_app(platform, "myapp", ADMIN)
    platform.supervisor = StubbornSupervisor()
    platform.supervisor.stops = 1  # they stop at once

    def broken_notify() -> None:
        raise OSError("the supervisor could not be woken")

    monkeypatch.setattr(platform, "notify", broken_notify)
    with pytest.raises(OSError):
        _destroy(platform, "myapp")
    assert platform.store.app_by_id(app.id) is None
    assert not platform.paths.app_dir(app.id).exists()


def test_destroy_says_done_once_the_router_no_longer_serves_the_app(platform: Platform):
    from pushd.dynostatus import write_status

    create_app(platform, "myapp", ADMIN)
    platform.supervisor = StubbornSupervisor()
    platform.supervisor.stops = 1  # they stop at once
    host = f"myapp.{platform.settings.domain}"
    write_status(platform.paths, {}, {"hosts": [host, "other.example"], "error": None})
    dropped = threading.Timer(0.3, write_status, (platform.paths, {},
                                                  {"hosts": ["other.example"], "error": None}))
    began = time.monotonic()
    dropped.start()
    status, said = _destroy(platform, "myapp")
    assert status == 0 and said[-1] == "done\n"
    assert time.monotonic() - began >= 0.3
