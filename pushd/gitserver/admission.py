"""Who may start an SSH login: a cap on connections that have not authenticated yet, for the
whole server and per source address, so a flood of idle or stalled connections (which cost a
thread and a paramiko transport each) cannot take the control plane down. Pure logic: the
server asks before it spends anything on a connection and says when its login ended.

When the server is full, a newcomer takes the oldest slot of the address holding the most,
if that address holds more than the newcomer would: a flood from many addresses keeps the
server full, but every address still gets its share, and a real client gets in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    source: str
    cut_off: Callable[[], None] = field(repr=False)  # ends the login (closes its socket)


class PreauthGate:
    def __init__(self, total: int, per_source: int) -> None:
        self.total, self.per_source = total, per_source
        self._lock = threading.Lock()
        self._held: dict[str, list[Slot]] = {}
        self._count = 0

    def admit(self, source: str, cut_off: Callable[[], None]) -> Slot | None:
        """A slot the login holds until `release`, or None: refuse the connection."""
        evicted = None
        with self._lock:
            mine = self._held.get(source, [])
            if len(mine) >= self.per_source:
                return None
            if self._count >= self.total:
                biggest = max(self._held.values(), key=len)
                if len(biggest) <= len(mine) + 1:
                    return None
                evicted = biggest.pop(0)
                self._forget_if_empty(evicted.source)
                self._count -= 1
            slot = Slot(source, cut_off)
            self._held.setdefault(source, []).append(slot)
            self._count += 1
        if evicted is not None:
            evicted.cut_off()
        return slot

    def release(self, slot: Slot) -> None:
        """The login ended (or the session opened); a slot taken by a newcomer is gone already."""
        with self._lock:
            held = self._held.get(slot.source, [])
            if slot in held:
                held.remove(slot)
                self._count -= 1
                self._forget_if_empty(slot.source)

    def _forget_if_empty(self, source: str) -> None:
        if not self._held.get(source):
            self._held.pop(source, None)

    def held(self, source: str | None = None) -> int:
        with self._lock:
            return self._count if source is None else len(self._held.get(source, []))
