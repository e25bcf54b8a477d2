"""Resource limits: what `resource:limit` accepts, which limit a dyno gets, the CFS quota it
becomes, and when the supervisor logs R14 (all pure, no cgroups)."""

from __future__ import annotations

import pytest

from pushd import limits
from pushd.errors import InvalidValue, Refused
from pushd.limits import APP_WIDE, Effective, Limit, effective
from pushd.memwatch import MemoryWatch
from pushd.runtime.records import MemoryUse


@pytest.mark.parametrize("text, megabytes", [
    ("512m", 512), ("512M", 512), ("512mb", 512), ("512", 512), ("1g", 1024), ("2G", 2048),
    ("65536k", 64), ("16m", 16), ("0", 0), ("0m", 0), (" 64m ", 64)])
def test_memory_sizes_in_k_m_g(text: str, megabytes: int):
    assert limits.parse_memory(text) == megabytes


@pytest.mark.parametrize("text, says", [
    ("12x", "expected a size like 512m or 1g"), ("", "expected a size"),
    ("-5m", "expected a size"), ("1.5g", "expected a size"), ("m", "expected a size"),
    ("1000k", "use whole megabytes (e.g. 1m)"), ("8m", "at least 16m"),
    ("1t", "expected a size"), ("9" * 13, "expected a size")])
def test_bad_memory_sizes_say_what_a_good_one_is(text: str, says: str):
    with pytest.raises(InvalidValue) as err:
        limits.parse_memory(text)
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, cores", [
    ("0.5", 0.5), (".25", 0.25), ("1", 1.0), ("2.0", 2.0), ("0.01", 0.01), ("0", 0.0)])
def test_cpu_as_a_fraction_of_one_core(text: str, cores: float):
    assert limits.parse_cpu(text) == cores


@pytest.mark.parametrize("text, says", [
    ("half", "expected a number of cores"), ("-1", "expected a number of cores"),
    ("1e-3", "expected a number of cores"), ("nan", "expected a number of cores"),
    ("inf", "expected a number of cores"), ("50%", "expected a number of cores"),
    ("0.001", "at least 0.01 of a core"), ("", "expected a number of cores")])
def test_bad_cpu_values_say_what_a_good_one_is(text: str, says: str):
    with pytest.raises(InvalidValue) as err:
        limits.parse_cpu(text)
    assert says in str(err.value)


def test_limits_stay_within_the_operators_maximums_or_the_hosts_size(monkeypatch):
    limits.check_bounds(1024, 1.0, max_memory_mb=1024, max_cpu=1.0)
    with pytest.raises(Refused, match=r"Memory limit 2g is above this platform's maximum of "
                                      r"1g per dyno"):
        limits.check_bounds(2048, None, max_memory_mb=1024, max_cpu=0)
    with pytest.raises(Refused, match=r"CPU limit 1.5 is above this platform's maximum "
                                      r"\(1 per dyno\)"):
        limits.check_bounds(None, 1.5, max_memory_mb=0, max_cpu=1.0)
    monkeypatch.setattr(limits, "host_cores", lambda: 2)
    monkeypatch.setattr(limits, "host_memory_mb", lambda: 4096)
    limits.check_bounds(4096, 2.0, max_memory_mb=0, max_cpu=0)  # the host's size
    with pytest.raises(Refused, match=r"CPU limit 3 is above this platform's cores"):
        limits.check_bounds(None, 3.0, max_memory_mb=0, max_cpu=0)
    with pytest.raises(Refused, match="maximum of 4g per dyno"):
        limits.check_bounds(8192, None, max_memory_mb=0, max_cpu=0)
    limits.check_bounds(0, 0, max_memory_mb=1, max_cpu=0.1)  # a reset is always allowed


def test_a_types_own_limit_wins_over_the_apps_which_wins_over_the_default():
    stored = {APP_WIDE: Limit(memory_mb=1024), "web": Limit(cpu=0.5),
              "worker": Limit(memory_mb=256, cpu=2.0)}
    assert effective(stored, "web", 512, 0.0) == Effective(1024, 0.5, "app", "type")
    assert effective(stored, "worker", 512, 0.0) == Effective(256, 2.0, "type", "type")
    assert effective(stored, "clock", 512, 0.25) == Effective(1024, 0.25, "app", "default")
    assert effective({}, "web", 512, 0.0) == Effective(512, 0.0, "default", "default")


def test_cpu_limits_become_a_cfs_quota_per_100ms_period():
    assert limits.cfs_quota_us(0.25) == 25_000
    assert limits.cfs_quota_us(0.5) == 50_000
    assert limits.cfs_quota_us(2) == 200_000
    assert limits.cfs_quota_us(0.01) == 1_000
    assert limits.cfs_quota_us(0) == -1  # no cap


def test_sizes_are_shown_as_typed():
    assert [limits.memory_text(m) for m in (64, 512, 1024, 1536)] == ["64m", "512m", "1g",
                                                                      "1536m"]
    assert [limits.cpu_text(c) for c in (0, 0.5, 2.0)] == ["unlimited", "0.5", "2"]


MB = 1024 * 1024


def use(megabytes: float, limit: int = 100) -> MemoryUse:
    return MemoryUse(int(megabytes * MB), limit * MB)


def test_r14_once_per_crossing_of_the_soft_threshold():
    watch = MemoryWatch(percent=90)
    history = [50, 89, 90, 95, 99, 85, 92, 79, 91, 100]
    crossed = [watch.crossed("d1", use(m)) for m in history]
    # 90 crosses; above or dipping only a little below it is the same crossing; under 80
    # re-arms, so 91 is a new one
    assert crossed == [False, False, True, False, False, False, False, False, True, False]
    assert watch.warned("d1")
    watch.forget("d1")
    assert not watch.warned("d1")


def test_r14_is_per_dyno_and_needs_a_measure():
    watch = MemoryWatch(percent=80)
    assert watch.crossed("a", use(85)) and not watch.crossed("b", use(70))
    assert watch.crossed("b", use(81))
    assert not watch.crossed("c", None)  # gone, or a runtime that cannot tell
    assert not watch.crossed("c", MemoryUse(10 * MB, 0))


def test_r14_through_a_runtime_that_measures_or_not():
    class Measures:
        def memory(self, dyno_id: str) -> MemoryUse:
            return use(95)

    class CannotMeasure:
        def memory(self, dyno_id: str) -> None:
            return None

    watch = MemoryWatch()
    assert watch.look(Measures(), "x", 10.0) and not watch.look(Measures(), "x", 11.0)
    assert not watch.look(CannotMeasure(), "y", 10.0)  # nothing measured: never an R14


def test_each_dyno_is_measured_at_most_every_half_second():
    seen: list[str] = []

    class Counts:
        def memory(self, dyno_id: str) -> MemoryUse:
            seen.append(dyno_id)
            return use(10)

    watch = MemoryWatch(every=0.5)
    for now in (0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 1.0):
        watch.look(Counts(), "a", now)
    assert len(seen) == 3  # at 0.0, 0.5 and 1.0: a pass every 0.1 s costs no more
    watch.forget("a")
    watch.look(Counts(), "a", 1.1)
    assert len(seen) == 4
