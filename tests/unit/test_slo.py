"""SLIs kept by day, read for the window; error budget arithmetic; router figures by minute."""

from __future__ import annotations

import json
from pathlib import Path

from pushd import slo
from pushd.router.stats import AppStats, summarize

DAY = 86400.0


def test_indicators_are_counted_by_day_and_read_for_the_window(tmp_path: Path):
    sli = slo.SLIFile(tmp_path / "slo.json")
    now = 1_800_000_000.0
    for good in (True,) * 998 + (False,) * 2:
        sli.record("api", good, now)
    sli.record("api", False, now - 40 * DAY)  # outside a 30-day window
    sli.record("deploy", True, now - DAY)
    api, deploy, cold = sli.report(slo.objectives(99.9, 99.0, 500), 30, now)
    assert (api.good, api.total) == (998, 1000) and api.actual == 99.8
    assert round(api.budget_left) == -100  # 1 failure allowed, 2 spent
    assert (deploy.good, deploy.total, deploy.budget_left) == (1, 1, 100.0)
    assert cold.total == 0 and cold.actual is None and cold.budget_left is None
    (tmp_path / "slo.json").write_text("not json")
    sli.record("api", True, now)  # a torn file starts afresh rather than failing
    assert json.loads((tmp_path / "slo.json").read_text())


def test_router_figures_give_percentiles_of_the_last_hour(tmp_path: Path):
    stats = AppStats()
    now = 1_800_000_000.0
    for ms in [3] * 90 + [40] * 9 + [2000]:
        stats.add("200", ms, now)
    stats.add("503", None, now)
    stats.add("200", 3, now - 7200)  # two hours ago: gone
    stats.write(tmp_path / "s.json")
    got = summarize(tmp_path / "s.json", now)
    assert (got.requests, got.errors) == (101, 1)
    assert (got.p50, got.p95, got.p99) == (5, 50, 50)
    assert AppStats.load(tmp_path / "s.json").minutes == stats.minutes
    assert summarize(tmp_path / "missing.json", now).requests == 0


def test_addon_metrics_count_kinds_and_credential_ages():
    from prometheus_client import CollectorRegistry, generate_latest

    from pushd import metrics

    registry = CollectorRegistry()
    registry.register(metrics._Addons(lambda: [("postgres-a", "postgres", 30.0),
                                               ("redis-b", "redis", 5.5),
                                               ("postgres-c", "postgres", 1.0)]))
    text = generate_latest(registry).decode()
    assert 'pushd_addons{kind="postgres"} 2.0' in text
    assert 'pushd_addons{kind="redis"} 1.0' in text
    assert ('pushd_addon_credential_age_seconds{addon="redis-b",kind="redis"} 5.5' in text)

    def broken() -> list:
        raise OSError("database is locked")
    failing = CollectorRegistry()
    failing.register(metrics._Addons(broken))
    assert "pushd_addons" in generate_latest(failing).decode()  # empty, not an error
