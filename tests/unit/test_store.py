import sqlite3
import time
from pathlib import Path

import pytest

from pushd.errors import Conflict, NotFound
from pushd.models import Key, Slug
from pushd.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "pushd.db")


def slug(app_id: int, name: str) -> Slug:
    return Slug(name, app_id, f"/s/{name}.tgz", f"/s/{name}", 10, "abc1234def",
                {"web": "python3 app.py"}, "Python")


def test_versions_are_never_reused(store: Store):
    app = store.create_app("myapp", "alice")
    first = store.create_release(app.id, description="Set A config vars", user="alice",
                                 config_set={"A": "1"})
    second = store.create_release(app.id, description="Remove A config vars", user="alice",
                                  config_unset=["A"])
    assert (first.version, second.version) == (1, 2)
    assert second.config == {}
    store.delete_app(app.id)
    assert store.releases(app.id) == []  # nothing of the old app survives
    again = store.create_app("myapp", "alice")
    assert store.create_release(again.id, description="x", user="a").version == 1


def test_a_new_app_takes_the_lowest_id_that_is_free_and_usable(store: Store):
    first, second, third = (store.create_app(n, "alice") for n in ("one", "two", "three"))
    assert (first.id, second.id, third.id) == (1, 2, 3)
    store.delete_app(first.id)
    store.delete_app(second.id)
    assert store.create_app("four", "bob").id == 1
    # id 2 is not usable (something of the app that had it remains): the next free one
    assert store.create_app("five", "bob", usable=lambda i: i != 2).id == 4
    assert store.create_app("six", "bob").id == 2
    with pytest.raises(Conflict, match="^No app ids left"):
        store.create_app("seven", "bob", usable=lambda i: False)


def test_deploy_release_is_pending_until_marked(store: Store):
    app = store.create_app("myapp", "alice")
    store.add_slug(slug(app.id, "s1"))
    r1 = store.create_release(app.id, description="Deploy abc1234", user="alice",
                              slug=store.slug("s1"))
    assert r1.status == "pending"
    assert store.current_release(app.id) is None
    assert store.pending_release(app.id).version == 1
    store.set_release_status(app.id, 1, "succeeded")
    assert store.current_release(app.id).version == 1
    assert store.pending_release(app.id) is None
    # a config change carries the current slug and process types along
    r2 = store.create_release(app.id, description="Set B config vars", user="alice",
                              config_set={"B": "x"})
    assert r2.slug_id == "s1" and r2.process_types == {"web": "python3 app.py"}
    store.set_release_status(app.id, 2, "failed")
    assert store.current_release(app.id).version == 1


def test_rollback_restores_config_of_target(store: Store):
    app = store.create_app("myapp", "alice")
    store.add_slug(slug(app.id, "s1"))
    store.create_release(app.id, description="d", user="a", slug=store.slug("s1"),
                         config_set={"A": "old"})
    store.set_release_status(app.id, 1, "succeeded")
    store.create_release(app.id, description="Set A", user="a", config_set={"A": "new",
                                                                            "B": "b"})
    store.set_release_status(app.id, 2, "succeeded")
    target = store.release(app.id, 1)
    r3 = store.create_release(app.id, description="Rollback to v1", user="a", base=target,
                              slug=store.slug("s1"))
    assert r3.config == {"A": "old"}
    assert store.config(app.id) == {"A": "old"}


def test_awkward_values_round_trip(store: Store):
    app = store.create_app("myapp", "alice")
    value = "a b 'c' \"d\" = e\nline2 é ✓ \t$HOME `x`"
    store.create_release(app.id, description="x", user="a", config_set={"K": value})
    assert store.config(app.id)["K"] == value


def test_names_are_unique(store: Store):
    store.create_app("myapp", "alice")
    with pytest.raises(Conflict):
        store.create_app("myapp", "bob")
    with pytest.raises(NotFound):
        store.app("other")


def test_a_failed_transaction_leaves_nothing(store: Store):
    app = store.create_app("myapp", "alice")
    with pytest.raises(sqlite3.Error):  # fails half-way, after the version was taken
        store.create_release(app.id, description="x", user="a", config_set={"A": "1"},
                             config_unset=[object()])
    assert store.releases(app.id) == [] and store.config(app.id) == {}
    assert store.create_release(app.id, description="y", user="a").version == 1


def test_slug_pruning_keeps_recent_and_current(store: Store):
    app = store.create_app("myapp", "alice")
    for i in range(1, 6):
        store.add_slug(slug(app.id, f"s{i}"))
        store.create_release(app.id, description=f"Deploy {i}", user="a",
                             slug=store.slug(f"s{i}"))
        store.set_release_status(app.id, i, "succeeded" if i == 2 else "failed")
    pruned = {s.id for s in store.slugs_to_prune(app.id, keep_releases=2)}
    assert pruned == {"s1", "s3"}  # s2 serves, s4 and s5 are the newest two


def test_a_key_that_owns_apps_is_kept(store: Store):
    for name in ("alice", "bob"):
        store.add_key(Key(name, "user", "ssh-ed25519 AAAA", f"SHA256:{name}"))
    app = store.create_app("myapp", "alice")
    store.grant(app.id, "bob")
    with pytest.raises(Conflict, match=r"^alice still owns myapp; destroy it first$"):
        store.remove_key("alice")
    assert [k.name for k in store.keys()] == ["alice", "bob"]
    store.remove_key("bob")  # a collaborator goes, with its grants
    assert store.collaborators(app.id) == []
    store.delete_app(app.id)
    store.remove_key("alice")
    assert store.keys() == []
    with pytest.raises(NotFound):
        store.remove_key("alice")


def test_database_files_are_private_to_root(tmp_path):
    import os
    import stat

    store = Store(tmp_path / "pushd.db")
    app = store.create_app("secretive", "alice")
    store.create_release(app.id, description="Set", user="alice",
                         config_set={"SECRET": "s3cret"})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["pushd.db", "pushd.db-shm", "pushd.db-wal"]
    for name in files:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def deploy_types(store: Store, app_id: int, name: str, types: dict[str, str],
                 status: str = "succeeded") -> int:
    store.add_slug(Slug(name, app_id, f"/s/{name}.tgz", f"/s/{name}", 10, "abc1234def", types,
                        "Python"))
    release = store.create_release(app_id, description="Deploy", user="alice",
                                   slug=store.slug(name))
    store.set_release_status(app_id, release.version, status)
    return release.version


def test_formation_drops_types_the_releases_no_longer_declare(store: Store):
    app = store.create_app("myapp", "alice")
    store.set_formation(app.id, {"web": 2, "worker": 3})
    assert store.formation(app.id) == {"web": 2, "worker": 3}  # no release: nothing to judge
    deploy_types(store, app.id, "s1", {"web": "a", "worker": "b"})
    # a release dropping worker, still rolling out: the serving one runs worker meanwhile
    v2 = deploy_types(store, app.id, "s2", {"web": "a"}, status="pending")
    assert store.formation(app.id) == {"web": 2, "worker": 3}
    store.set_release_status(app.id, v2, "failed")  # a failed one changes nothing
    assert store.formation(app.id) == {"web": 2, "worker": 3}
    deploy_types(store, app.id, "s3", {"web": "a", "release": "migrate"})
    assert store.formation(app.id) == {"web": 2}
    # as on Heroku, the entry is gone: adding the type back starts it afresh
    deploy_types(store, app.id, "s4", {"web": "a", "worker": "b"}, status="pending")
    assert store.formation(app.id) == {"web": 2}


def test_a_renamed_apps_old_name_is_held_for_its_owner(store: Store):
    app = store.create_app("first", "alice")
    store.rename_app(app.id, "second", by="alice", hold_seconds=3600)
    with pytest.raises(Conflict, match="^Name first was just given up by a rename and is held "
                                       "for its previous owner until 20"):
        store.create_app("first", "bob")
    other = store.create_app("other", "bob")
    with pytest.raises(Conflict, match="^Name first was just given up"):
        store.rename_app(other.id, "first", by="bob", hold_seconds=3600)
    store.rename_app(app.id, "first", by="alice", hold_seconds=3600)  # the owner takes it back
    assert store.app("first").id == app.id
    store.rename_app(app.id, "third", by="alice", hold_seconds=3600)
    assert store.create_app("first", "root", admin=True).owner == "root"  # admins may


def test_a_hold_ends_when_its_time_is_up(store: Store):
    app = store.create_app("first", "alice")
    store.rename_app(app.id, "second", by="alice", hold_seconds=0.01)
    time.sleep(0.05)  # not an assertion on time: the hold is made to have ended
    assert store.create_app("first", "bob").owner == "bob"
