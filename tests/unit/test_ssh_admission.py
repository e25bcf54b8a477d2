"""The SSH pre-auth caps, as logic: per source address and for the whole server."""

from __future__ import annotations

from pushd.gitserver.admission import PreauthGate


def test_one_source_cannot_hold_more_than_its_share():
    gate = PreauthGate(total=10, per_source=3)
    assert [gate.admit("10.0.0.1") for _ in range(5)] == [True, True, True, False, False]
    assert gate.admit("10.0.0.2")  # another address still gets in
    gate.release("10.0.0.1")
    assert gate.admit("10.0.0.1")  # a finished login frees its slot
    assert gate.held("10.0.0.1") == 3 and gate.held() == 4


def test_the_whole_server_has_a_cap():
    gate = PreauthGate(total=4, per_source=3)
    admitted = [gate.admit(f"10.0.0.{i}") for i in range(6)]
    assert admitted == [True, True, True, True, False, False]
    gate.release("10.0.0.0")
    assert gate.admit("10.0.0.9")
    assert gate.held() == 4


def test_released_sources_are_forgotten():
    gate = PreauthGate(total=4, per_source=1)
    for i in range(100):
        assert gate.admit(f"10.0.{i}.1")
        gate.release(f"10.0.{i}.1")
    assert gate.held() == 0 and not gate._by_source
