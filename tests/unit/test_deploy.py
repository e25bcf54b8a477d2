"""deploy.release's bookkeeping around the supervisor, with a supervisor that never acts."""

from __future__ import annotations

import pytest

from pushd import deploy
from pushd.errors import ReleaseFailed
from pushd.models import Slug
from pushd.platform import Platform
from pushd.settings import Settings


class IdleSupervisor:
    def wake(self) -> None:
        pass


@pytest.fixture
def platform(tmp_path, monkeypatch) -> Platform:
    platform = Platform(Settings(state_dir=tmp_path / "state"))
    platform.supervisor = IdleSupervisor()  # "running", but no dyno ever comes up
    monkeypatch.setattr(deploy, "rollout_timeout", lambda _: 0.3)
    return platform


def slug(platform: Platform, app_id: int) -> Slug:
    made = Slug(id="s1", app_id=app_id, path="/x.tgz", dir="/x", size=1, commit="abc1234",
                process_types={"web": "x"})
    platform.store.add_slug(made)
    return made


def test_a_release_given_up_on_is_failed_not_left_to_go_live_later(platform):
    app = platform.store.create_app("slowpoke", "alice")
    platform.paths.app_dir(app.id).mkdir(parents=True)
    with pytest.raises(ReleaseFailed, match="still starting after"):
        deploy.release(platform, app, description="Deploy", user="alice",
                       slug=slug(platform, app.id))
    assert platform.store.release(app.id, 1).status == "failed"
    assert platform.store.pending_release(app.id) is None


def test_a_change_waits_for_a_rollout_and_refuses_if_it_never_ends(platform):
    app = platform.store.create_app("busy", "alice")
    platform.store.create_release(app.id, description="Deploy", user="alice",
                                  slug=slug(platform, app.id))  # pending for good
    with pytest.raises(ReleaseFailed, match="still rolling out"):
        deploy.release(platform, app, description="Set A", user="alice",
                       config_set={"A": "1"})
    assert [r.version for r in platform.store.releases(app.id)] == [1]  # nothing cut


def test_a_superseded_config_change_is_live_in_the_release_that_serves(platform):
    import threading

    app = platform.store.create_app("twice", "alice")
    platform.paths.app_dir(app.id).mkdir(parents=True)
    first = platform.store.create_release(app.id, description="Deploy", user="alice",
                                          slug=slug(platform, app.id))
    platform.store.set_release_status(app.id, first.version, "succeeded")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(deploy.release(
        platform, app, description="Set A", user="alice", config_set={"A": "1"})))
    worker.start()
    while platform.store.pending_release(app.id) is None:  # A's release is rolling out
        pass
    mine = platform.store.pending_release(app.id)
    newer = platform.store.create_release(app.id, description="Set B", user="bob",
                                          config_set={"B": "2"})
    platform.store.set_release_status(app.id, mine.version, "superseded")
    platform.store.set_release_status(app.id, newer.version, "succeeded")
    worker.join(5)
    assert [r.version for r in result] == [newer.version]  # A is live, in B's release
