"""resource:limit, resource:limit-clear and resource:report through `dispatch` on a real store
in a temp dir (no daemon), and the limits the next dynos' specs carry."""

from __future__ import annotations

import pytest

from pushd.dynospec import dyno_spec
from pushd.limits import APP_WIDE, Limit
from pushd.models import Slug
from tests.unit.test_command_dispatch import ALICE, BOB, Harness
from tests.unit.test_ps_logs_commands import FakeSupervisor


@pytest.fixture
def h(tmp_path) -> Harness:
    return with_supervisor(Harness(tmp_path).deployed({"web": 1, "worker": 1}))


def with_supervisor(h: Harness) -> Harness:
    h.platform.supervisor = FakeSupervisor()  # the daemon's: it takes the restarts
    return h


def restarts(h: Harness) -> list[tuple[int, str | None]]:
    taken, h.platform.supervisor.restarts = h.platform.supervisor.restarts, []
    return taken


def spec_of(h: Harness, kind: str):  # noqa: ANN201
    store = h.platform.store
    return dyno_spec(store, h.platform.settings, h.app, store.current_release(h.app.id), kind,
                     1, "x")


def test_limit_then_report_shows_it_and_the_next_dynos_get_it(h: Harness):
    assert h.run("resource:limit", "myapp", "--memory", "256m", "--cpu", "0.5",
                 "--process-type", "web", user=ALICE) == 0, h.err
    assert h.out.splitlines() == [
        "Setting limits of web dynos of myapp... done, restarting them",
        "Type  Memory      CPU (cores)",
        "web   256m (set)  0.5 (set)"]
    assert restarts(h) == [(h.app.id, "web")]  # for the daemon
    assert h.run("resource:report", "myapp") == 0, h.err
    assert h.out.splitlines() == [
        "=== myapp Resource Limits",
        "Type    Memory          CPU (cores)",
        "web     256m (set)      0.5 (set)",
        "worker  512m (default)  unlimited (default)"]
    web, worker = spec_of(h, "web"), spec_of(h, "worker")
    assert (web.memory_mb, web.cpu_limit) == (256, 0.5)
    assert (worker.memory_mb, worker.cpu_limit) == (512, 0.0)


def test_an_app_wide_limit_applies_to_every_type_without_its_own(h: Harness):
    assert h.run("resource:limit", "--cpu=0.25", "myapp", "--process-type=worker") == 0, h.err
    assert h.run("resource:limit", "myapp", "--memory", "1g") == 0, h.err
    assert restarts(h) == [(h.app.id, "worker"), (h.app.id, None)]
    assert h.run("resource:report", "-a", "myapp") == 0
    assert h.out.splitlines()[1:] == [
        "Type    Memory                   CPU (cores)",
        "web     1g (set for every type)  unlimited (default)",
        "worker  1g (set for every type)  0.25 (set)"]
    assert spec_of(h, "run").memory_mb == 1024  # one-offs too


def test_zero_resets_one_limit_and_clear_removes_them(h: Harness):
    store = h.platform.store
    assert h.run("resource:limit", "myapp", "--memory", "256m", "--cpu", "1",
                 "--process-type", "web") == 0
    assert h.run("resource:limit", "myapp", "--memory", "0", "--process-type", "web") == 0
    assert store.resource_limits(h.app.id) == {"web": Limit(None, 1.0)}
    assert h.run("resource:limit", "myapp", "--memory", "300m") == 0
    assert h.run("resource:limit-clear", "myapp", "--process-type", "web") == 0, h.err
    assert h.out == "Clearing the limits of web dynos of myapp... done, restarting them\n"
    assert store.resource_limits(h.app.id) == {APP_WIDE: Limit(300, None)}
    assert h.run("resource:limit-clear", "myapp") == 0
    assert h.out == "Clearing the limits of myapp... done, restarting them\n"
    assert store.resource_limits(h.app.id) == {}
    assert h.run("resource:limit-clear", "myapp") == 0
    assert h.out == "Clearing the limits of myapp... none were set\n"


@pytest.mark.parametrize("argv, says, status", [
    (["--memory", "12x"], "Invalid memory limit '12x': expected a size like 512m or 1g", 2),
    (["--cpu", "-1"], "Invalid CPU limit '-1': expected a number of cores", 2),
    (["--cpu", "0.5", "--memory", "5m"], "a dyno needs at least 16m", 2),
    (["--cpu", "999"], "CPU limit 999 is above this platform's cores", 1),
    (["--memory", "64m", "--process-type", "clock"],
     "Couldn't find that process type (clock); the current release declares: web, worker", 1),
    (["--memory", "64m", "--process-type", "../x"], "Invalid process type '../x'", 2),
    (["--memory"], "--memory needs a value", 2),
    (["--memory", "64m", "extra"], "Unexpected argument 'extra'", 2)])
def test_a_bad_value_is_one_line_and_changes_nothing(h: Harness, argv, says, status):
    assert h.run("resource:limit", "myapp", *argv) == status
    first, *rest = h.err.splitlines()
    assert first.startswith(" !    ") and says in first, h.err
    assert rest in ([], ["Usage: resource:limit APP [--memory SIZE] [--cpu CORES] "
                         "[--process-type TYPE]"])  # a usage line only for usage mistakes
    if "Invalid" in says:
        assert rest == []  # a bad value says what a good one is, in one line
    assert h.platform.store.resource_limits(h.app.id) == {}
    assert restarts(h) == []


def test_the_operators_maximum_and_the_owners_memory_quota_bound_limits(tmp_path):
    from pushd.platform import Platform
    from pushd.settings import Settings

    h = Harness(tmp_path)
    h.platform = Platform(Settings(state_dir=tmp_path / "state", max_dyno_memory_mb=2048,
                                   max_dyno_cpu=1.0))
    with_supervisor(h)
    store = h.platform.store
    store.add_slug(Slug("s1", h.app.id, "/s", "/s", 1, "abc", {"web": "x"}, "Python"))
    store.create_release(h.app.id, description="Deploy", user="alice", slug=store.slug("s1"))
    store.set_release_status(h.app.id, 1, "succeeded")
    store.set_formation(h.app.id, {"web": 2})
    assert h.run("resource:limit", "myapp", "--memory", "4g") == 1
    assert h.err == " !    Memory limit 4g is above this platform's maximum of 2g per dyno\n"
    assert h.run("resource:limit", "myapp", "--cpu", "1.5") == 1
    assert "above this platform's maximum (1 per dyno)" in h.err
    store.set_quotas("alice", {"memory": 1536})  # two web dynos of 512m use 1g of it
    assert h.run("resource:limit", "myapp", "--memory", "1g", user=ALICE) == 1
    assert h.err == (" !    Quota exceeded: memory 1 GB of 1536 MB in use, 1 GB more asked "
                     "(quotas:set alice memory=N to raise)\n")
    assert h.run("resource:limit", "myapp", "--memory", "768m", user=ALICE) == 0, h.err
    assert h.run("ps:scale", "myapp", "web=3", user=ALICE) == 1  # 3 x 768m > 1536m
    assert "Quota exceeded: memory" in h.err
    assert store.resource_limits(h.app.id) == {APP_WIDE: Limit(768, None)}


def test_only_keys_with_access_may_see_or_set_limits(h: Harness):
    assert h.run("resource:limit", "myapp", "--memory", "64m", user=BOB) == 1
    assert h.err == " !    You do not have access to the app myapp\n"
    assert h.run("resource:report", "myapp", user=BOB) == 1
    assert h.platform.store.resource_limits(h.app.id) == {}
    h.platform.store.grant(h.app.id, "bob")  # a collaborator may, as with ps:scale
    assert h.run("resource:limit", "myapp", "--memory", "64m", user=BOB) == 0, h.err


def test_before_the_first_push_any_type_may_be_limited_and_nothing_restarts(tmp_path):
    h = with_supervisor(Harness(tmp_path))
    assert h.run("resource:limit", "myapp", "--cpu", "0.5", "--process-type", "clock") == 0
    assert h.out.splitlines()[0] == ("Setting limits of clock dynos of myapp... done; dynos "
                                     "get them when they start")
    assert restarts(h) == []
    assert h.run("resource:report", "myapp") == 0
    assert h.out.splitlines()[1:] == ["Type   Memory          CPU (cores)",
                                      "clock  512m (default)  0.5 (set)"]
    h.platform.store.clear_resource_limits(h.app.id)
    assert h.run("resource:report", "myapp") == 0
    assert h.out.splitlines()[2] == "*     512m (default)  unlimited (default)"


def test_limits_go_with_their_app(h: Harness):
    assert h.run("resource:limit", "myapp", "--memory", "64m") == 0
    h.platform.store.delete_app(h.app.id)
    rows = h.platform.store._all("SELECT * FROM resource_limits")
    assert rows == []


def test_help_lists_the_resource_commands(h: Harness):
    assert h.run("help") == 0
    assert "resource:limit APP [--memory SIZE] [--cpu CORES] [--process-type TYPE]" in h.out
    assert "resource:report APP" in h.out and "resource:limit-clear" in h.out
    assert h.run("resource:limit", "--help") == 0
    assert h.out.startswith("Usage: resource:limit APP [--memory SIZE]")
