"""Admin commands through `dispatch`, as SSH and the CLI run them, on a real store in a temp
dir (no daemon: releases are cut, nothing is waited for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushd import deploy
from pushd.commands.registry import Context, dispatch
from pushd.gitserver.receive import deploy_lock
from pushd.models import Key, Slug
from pushd.platform import Platform
from pushd.settings import Settings

ADMIN = Key(name="admin", role="admin", public_key="", fingerprint="SHA256:admin")
ALICE = Key(name="alice", role="user", public_key="", fingerprint="SHA256:alice")
BOB = Key(name="bob", role="user", public_key="", fingerprint="SHA256:bob")


class Harness:
    def __init__(self, root: Path) -> None:
        self.platform = Platform(Settings(state_dir=root / "state"))
        for key in (ADMIN, ALICE, BOB):
            self.platform.store.add_key(key)
        self.app = self.platform.store.create_app("myapp", "alice")
        self.platform.paths.app_dir(self.app.id).mkdir()
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def deployed(self, formation: dict[str, int]) -> Harness:
        """myapp with release v1 (web and worker processes) succeeded, scaled to `formation`."""
        store, app = self.platform.store, self.app
        store.add_slug(Slug("s1", app.id, "/s/s1.tgz", "/s/s1", 10, "abc1234",
                            {"web": "python3 app.py", "worker": "python3 w.py"}, "Python"))
        store.create_release(app.id, description="Deploy", user="alice", slug=store.slug("s1"))
        store.set_release_status(app.id, 1, "succeeded")
        store.set_formation(app.id, formation)
        return self

    def run(self, *argv: str, user: Key = ADMIN) -> int:
        self.stdout.clear()
        self.stderr.clear()
        ctx = Context(self.platform, user, self.stdout.append, self.stderr.append)
        return dispatch(ctx, list(argv))

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return "".join(self.stderr)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_an_options_value_is_not_taken_for_the_app(h: Harness):
    assert h.run("config:set", "myapp", "A=1") == 0
    assert h.run("releases", "-n", "5", "myapp") == 0, h.err
    assert h.out.startswith("=== myapp Releases\nv1  Set A config vars")
    assert h.run("releases", "--num", "1", "-a", "myapp") == 0, h.err
    assert h.run("logs", "-n", "100", "myapp") == 0, h.err
    assert h.run("logs", "-s", "app", "-p", "web", "myapp") == 0, h.err
    assert h.run("buildpacks:add", "-i", "1", "myapp", "heroku/python") == 0, h.err
    assert h.run("buildpacks:set", "--index", "2", "myapp", "heroku/nodejs") == 0, h.err
    assert h.platform.store.app("myapp").buildpacks == ("heroku/python", "heroku/nodejs")


def test_the_app_may_come_before_the_command(h: Harness):
    assert h.run("config:set", "myapp", "A=1") == 0
    assert h.run("-a", "myapp", "config") == 0, h.err
    assert "A: 1" in h.out
    assert h.run("--app=myapp", "config:get", "A") == 0, h.err
    assert h.out == "1\n"
    assert h.run("myapp", "config:get", "A") == 0, h.err  # `ssh platform -a myapp ...`
    assert h.out == "1\n"
    assert h.run("nosuch", "config") != 0 and "nosuch" in h.err
    assert h.run("destory", "logs") == 2 and "Unknown command: 'destory'" in h.err


def test_config_set_no_wait_and_no_restart(h: Harness, monkeypatch):
    waits = []
    real = deploy.release

    def spy(*args, **kwargs):
        waits.append(kwargs["wait"])
        return real(*args, **kwargs)

    monkeypatch.setattr(deploy, "release", spy)
    assert h.run("config:set", "myapp", "B=1", "--no-wait") == 0, h.err
    assert h.run("config:set", "myapp", "C=1") == 0, h.err
    assert waits == [False, True]
    app = h.platform.store.app("myapp")
    before = h.platform.store.releases(app.id, 100)
    assert h.run("config:set", "myapp", "A=1", "--no-restart") == 0, h.err
    assert h.run("config:unset", "myapp", "C", "--no-restart") == 0, h.err
    assert waits == [False, True]  # no release cut: nothing restarts
    assert h.platform.store.releases(app.id, 100) == before
    assert h.platform.store.config(app.id) == {"A": "1", "B": "1"}
    assert "live with the next release" in h.out
    assert h.run("help", "config:set") == 0
    assert "--no-wait" in h.out and "--no-restart" in h.out


def test_a_bad_name_is_one_line_a_usage_error_two(h: Harness):
    assert h.run("apps:create", "../x") == 2
    assert h.err.splitlines() == [" !    Invalid app name '../x': use 1 to 30 characters, "
                                  "lowercase letters, digits and dashes, starting with a "
                                  "letter"]
    assert h.run("config:get", "myapp", "1BAD") == 2
    assert len(h.err.splitlines()) == 1 and "Invalid config var name" in h.err
    assert h.run("config:get", "myapp") == 2
    assert h.err.splitlines()[1] == "Usage: config:get APP KEY"


def test_only_the_owner_or_an_admin_may_destroy(h: Harness):
    assert h.run("access:add", "myapp", "bob", user=ALICE) == 0
    assert h.run("apps:destroy", "myapp", "--confirm", "myapp", user=BOB) == 1
    assert h.err == " !    Only the owner of myapp or an admin can destroy it\n"
    assert h.platform.store.app("myapp")  # still there
    assert h.run("apps:destroy", "--confirm", "myapp", "myapp", user=BOB) == 1
    assert "Only the owner" in h.err


def test_destroy_refuses_while_a_push_holds_the_lock(h: Harness):
    with deploy_lock(h.platform, h.app, lambda _text: None):
        assert h.run("apps:destroy", "myapp", "--confirm", "myapp") == 1
    assert h.err == " !    myapp is being deployed; try again when the push ends\n"
    assert h.platform.store.app("myapp")
    assert h.platform.paths.app_dir(h.app.id).is_dir()


def test_a_key_that_owns_apps_cannot_be_removed(h: Harness):
    h.platform.store.create_app("other", "alice")
    assert h.run("keys:remove", "alice") == 1
    assert h.err == " !    alice still owns myapp, other; destroy them first\n"
    assert "alice" in {k.name for k in h.platform.store.keys()}
    assert h.run("keys:remove", "bob") == 0


def test_config_vars_are_limited_to_32_kb_in_all(h: Harness):
    assert h.run("config:set", "myapp", "A=" + "x" * 20_000) == 0, h.err
    assert h.run("config:set", "myapp", "B=" + "y" * 20_000) == 2
    assert "the limit is 32 KB" in h.err
    assert "B" not in h.platform.store.config(h.app.id)  # nothing stored, no release cut
    assert h.run("config:set", "myapp", "A=small", "B=" + "y" * 20_000) == 0, h.err
