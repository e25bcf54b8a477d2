"""Who may start an SSH login: a cap on connections that have not authenticated yet, for the
whole server and per source address, so a flood of idle or stalled connections (which cost a
thread and a paramiko transport each) cannot take the control plane down. Pure logic: the
server asks before it spends anything on a connection and says when its login ended."""

from __future__ import annotations

import threading
from collections import Counter


class PreauthGate:
    def __init__(self, total: int, per_source: int) -> None:
        self.total, self.per_source = total, per_source
        self._lock = threading.Lock()
        self._by_source: Counter[str] = Counter()

    def admit(self, source: str) -> bool:
        """True (and the connection holds a slot until `release`) or False: refuse it."""
        with self._lock:
            if sum(self._by_source.values()) >= self.total:
                return False
            if self._by_source[source] >= self.per_source:
                return False
            self._by_source[source] += 1
            return True

    def release(self, source: str) -> None:
        with self._lock:
            self._by_source[source] -= 1
            if self._by_source[source] <= 0:
                del self._by_source[source]

    def held(self, source: str | None = None) -> int:
        with self._lock:
            return sum(self._by_source.values()) if source is None else self._by_source[source]
