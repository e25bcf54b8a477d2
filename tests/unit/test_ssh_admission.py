"""The SSH pre-auth caps, as logic: per source address and for the whole server."""

from __future__ import annotations

from pushd.gitserver.admission import PreauthGate


class Conn:
    def __init__(self) -> None:
        self.cut = False

    def cut_off(self) -> None:
        self.cut = True


def test_one_source_cannot_hold_more_than_its_share():
    gate = PreauthGate(total=10, per_source=3)
    slots = [gate.admit("10.0.0.1", Conn().cut_off) for _ in range(5)]
    assert [slot is not None for slot in slots] == [True, True, True, False, False]
    assert gate.admit("10.0.0.2", Conn().cut_off)  # another address still gets in
    gate.release(slots[0])
    assert gate.admit("10.0.0.1", Conn().cut_off)  # a finished login frees its slot
    assert gate.held("10.0.0.1") == 3 and gate.held() == 4


def test_a_full_server_takes_a_slot_from_the_address_holding_most():
    gate = PreauthGate(total=4, per_source=3)
    flood = [Conn() for _ in range(3)]
    for conn in flood:
        assert gate.admit("10.0.0.66", conn.cut_off)
    assert gate.admit("10.0.0.1", Conn().cut_off)  # full now
    newcomer = gate.admit("10.0.0.2", Conn().cut_off)
    assert newcomer is not None
    assert [conn.cut for conn in flood] == [True, False, False]  # its oldest login went
    assert gate.held("10.0.0.66") == 2 and gate.held() == 4
    # equal shares: nobody is cut off for an address that would then hold as many
    assert gate.admit("10.0.0.2", Conn().cut_off) is None
    assert gate.admit("10.0.0.3", Conn().cut_off) is not None
    assert [conn.cut for conn in flood] == [True, True, False]
    assert gate.admit("10.0.0.4", Conn().cut_off) is None  # 1, 1, 1, 1: no one holds more


def test_a_slot_taken_away_is_not_released_twice():
    gate = PreauthGate(total=1, per_source=1)
    first = gate.admit("10.0.0.66", Conn().cut_off)
    second = gate.admit("10.0.0.66", Conn().cut_off)
    assert second is None
    gate2 = PreauthGate(total=2, per_source=2)
    old = gate2.admit("10.0.0.66", Conn().cut_off)
    gate2.admit("10.0.0.66", Conn().cut_off)
    assert gate2.admit("10.0.0.1", Conn().cut_off)  # takes `old`'s slot
    gate2.release(old)  # its thread ends later and releases: nothing happens
    assert gate2.held() == 2
    gate.release(first)
    assert gate.held() == 0


def test_released_sources_are_forgotten():
    gate = PreauthGate(total=4, per_source=1)
    for i in range(100):
        slot = gate.admit(f"10.0.{i}.1", Conn().cut_off)
        assert slot is not None
        gate.release(slot)
    assert gate.held() == 0 and not gate._held
