"""store_builds.py and buildlog.BuildOutput: builds numbered per app, settled, canceled; a
row a dead daemon left running counts as failed; the output copy is bounded."""

from __future__ import annotations

from pushd import buildlog
from pushd.store import Store


def test_builds_are_numbered_settled_and_canceled(tmp_path):
    store = Store(tmp_path / "pushd.db")
    app = store.create_app("histapp", "admin")
    first, _ = store.begin_build(app.id, "a" * 40, "admin", 111, lambda pid: True)
    assert store.finish_build(app.id, first.number, "succeeded") == "succeeded"
    second, _ = store.begin_build(app.id, "b" * 40, "admin", 111, lambda pid: True)
    assert store.cancel_build(app.id, lambda pid: True).number == second.number
    assert store.cancel_build(app.id, lambda pid: True) is None  # one cancel is enough
    assert store.finish_build(app.id, second.number, "failed") == "canceled"
    assert [(r.number, r.status) for r in store.build_records(app.id)] == [
        (2, "canceled"), (1, "succeeded")]


def test_a_build_left_running_by_a_dead_daemon_becomes_failed(tmp_path):
    store = Store(tmp_path / "pushd.db")
    app = store.create_app("histapp", "admin")
    store.begin_build(app.id, "a" * 40, "admin", 111, lambda pid: True)
    assert store.cancel_build(app.id, lambda pid: False) is None  # nothing live to cancel
    store.begin_build(app.id, "b" * 40, "admin", 222, lambda pid: pid == 222)
    assert [(r.number, r.status) for r in store.build_records(app.id)] == [
        (2, "running"), (1, "failed")]


def test_build_output_copy_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(buildlog, "MAX_OUTPUT", 100)
    seen: list[str] = []
    out = buildlog.BuildOutput(tmp_path / "output-1.log", seen.append)
    for i in range(20):
        out(f"line {i:02d} of the build\n")
    out.close()
    assert len(seen) == 20  # the pusher gets everything
    kept = (tmp_path / "output-1.log").read_text()
    assert kept.startswith("line 00") and kept.endswith(buildlog.TRUNCATED)
    assert len(kept) == 100 + len(buildlog.TRUNCATED)
