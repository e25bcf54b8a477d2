"""Add-on logic without servers: names, the provider registry, the forwarder's, pasta's and
the firewall's text for add-on ports, the ports a dyno reaches, and the store's bindings
across a rollback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pushd import firewall
from pushd.addons import base, service
from pushd.addons.postgres import parse_server
from pushd.addons.proc import first_error
from pushd.addons.reach import make_socket_dir
from pushd.dynospec import reachable_ports
from pushd.errors import InvalidName, UsageError
from pushd.runtime.endpoints import endpoint_pairs
from pushd.runtime.netns import forwarder_argv, pasta_argv, reach_arg, reach_fds, reach_of
from pushd.runtime.records import DynoInfo, DynoSpec
from pushd.settings import Settings
from pushd.store import Store


def spec(reach: tuple[int, ...] = (), uid: int = 40003) -> DynoSpec:
    return DynoSpec(id="3-web.1-v2-abc", app_id=3, app="a", release=2, process_type="web",
                    index=1, command="x", env={}, slug_dir="/s", uid=uid, port=5000,
                    reach=reach)


def test_attachment_and_addon_names_are_validated():
    assert service.attachment_name("reports") == "REPORTS"
    assert service.attachment_name("SHARED_URL") == "SHARED"
    for bad in ("bad-name!", "1DB", "", "A" * 40, "DB;rm", "../x"):
        with pytest.raises(InvalidName):
            service.attachment_name(bad)
    assert service.addon_name("postgres-amber-1234") == "postgres-amber-1234"
    for bad in ("postgres", "../etc-x-1234", "Postgres-amber-1234", "postgres-amber-12345x"):
        with pytest.raises(InvalidName):
            service.addon_name(bad)


def test_registry_knows_both_kinds_and_refuses_others(tmp_path: Path):
    assert base.kinds() == ["postgres", "redis"]
    env = base.ProviderEnv(Settings(state_dir=tmp_path), None, {})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Unknown add-on service 'mysql'"):
        base.make_provider("mysql", env)

    @base.register("fake-kind")
    class Fake:  # a new kind is one registered class
        def __init__(self, env: base.ProviderEnv) -> None:
            self.env = env

    try:
        assert isinstance(base.make_provider("fake-kind", env), Fake)
    finally:
        del base.PROVIDERS["fake-kind"]


def test_external_server_urls_are_checked():
    server = parse_server("postgres://admin:s3cret@db.example.com:6543/postgres")
    assert server == {"host": "db.example.com", "port": "6543", "user": "admin",
                      "password": "s3cret", "db": "postgres"}
    for bad in ("mysql://a@b/c", "postgres://db.example.com/x", "postgres://a@h:port/x",
                "not a url"):
        with pytest.raises(base.AddonError):
            parse_server(bad)


def test_tool_errors_never_echo_the_statement():
    stderr = ("ERROR:  syntax error at or near \"PASSWORD\"\n"
              "LINE 1: CREATE ROLE u LOGIN PASSWORD 'hunter2'\n     ^\n")
    assert "hunter2" not in first_error(stderr)


def test_pasta_never_carries_a_namespace_to_the_hosts_loopback():
    assert pasta_argv(40001, "n", "u")[-4:] == ["-T", "none", "-U", "none"]


def test_the_forwarder_is_told_each_addon_socket_and_nothing_else(tmp_path: Path):
    make_socket_dir(tmp_path, 19001, "redis", "redis.sock")
    make_socket_dir(tmp_path, 19004, "postgres", ".s.PGSQL.19004")
    found = reach_of(tmp_path, (19001, 19004, 19007))  # 19007: an external server's
    assert [(r.port, r.name) for r in found] == [(19001, "redis.sock"),
                                                 (19004, ".s.PGSQL.19004")]
    assert found[0].folder == str(tmp_path / "addons" / "sockets" / "19001")
    assert oct((tmp_path / "addons" / "sockets" / "19001").stat().st_mode & 0o777) == "0o711"
    dirs = reach_fds(found)
    try:
        argv = forwarder_argv("/bin/fwd", -1, 5, 0, 40003, reach=reach_arg(dirs))
        assert argv[-1] == f"19001:{dirs[0][1]}:redis.sock;19004:{dirs[1][1]}:.s.PGSQL.19004"
        assert argv[1] == "-1"  # no endpoint: a worker's forwarder serves its add-ons only
    finally:
        for _, fd, _ in dirs:
            os.close(fd)
    assert forwarder_argv("/bin/fwd", 3, 5, 5000, 40003)[-1] == "1"  # no REACH argument


def test_addon_ports_give_the_firewall_no_pairs_and_no_exception(tmp_path: Path):
    info = DynoInfo(spec=spec(reach=(19001,)), pid=7, running=True)
    assert endpoint_pairs([info]) == set()
    settings = Settings(state_dir=tmp_path, addon_port_range=(19000, 19999))
    lines = [line.strip() for line in firewall.ruleset(settings).splitlines()]
    assert ("meta skuid 40000-59999 fib daddr type local "
            "tcp flags & (syn | ack) == syn reject with tcp reset") in lines
    assert not [line for line in lines if "19000" in line or "addon" in line]


def test_rollback_keeps_todays_bindings_and_drops_gone_ones(tmp_path: Path):
    store = Store(tmp_path / "pushd.db")
    app = store.create_app("myapp", "admin")
    store.add_addon("postgres-amber-1234", "postgres", app.id, {"x": 1}, [19001])
    store.attach_addon(app.id, "DATABASE", "postgres-amber-1234")
    first = store.create_release(app.id, description="Attach DATABASE", user="u",
                                 config_set={"DATABASE_URL": "old", "A": "1"}, kind="addon")
    assert first.kind == "addon" and store.release(app.id, first.version).kind == "addon"
    store.create_release(app.id, description="Rotate", user="u",
                         config_set={"DATABASE_URL": "new", "A": "2"}, kind="addon")
    store.add_addon("redis-red-1111", "redis", app.id, {}, [19002])
    store.attach_addon(app.id, "REDIS", "redis-red-1111")
    store.create_release(app.id, description="Attach REDIS", user="u",
                         config_set={"REDIS_URL": "r"})
    rolled = store.create_release(app.id, description="Rollback", user="u", base=first)
    assert rolled.config == {"A": "1", "DATABASE_URL": "new", "REDIS_URL": "r"}
    assert rolled.kind == ""
    assert reachable_ports(store, app.id) == (19001, 19002)
    store.detach_addon(app.id, "REDIS")
    again = store.create_release(app.id, description="Rollback", user="u", base=first)
    assert "REDIS_URL" not in again.config  # a binding that is gone never comes back
    assert store.addon_var_owners(app.id) == {"DATABASE_URL": "postgres-amber-1234"}


def test_external_servers_come_from_pushd_yaml(tmp_path: Path):
    from pushd.settings import load

    (tmp_path / "pushd.yaml").write_text(
        "addon_servers:\n  postgres: postgres://admin:pw@db.example.com/postgres\n"
        "addon_port_range: 19100-19199\n")
    settings = load({"state_dir": str(tmp_path)}, env={})
    assert settings.addon_servers == {"postgres": "postgres://admin:pw@db.example.com/postgres"}
    assert settings.addon_port_range == (19100, 19199)
