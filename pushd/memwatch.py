"""Memory warnings like Heroku's R14: which dynos crossed the soft threshold of their memory
limit since the last look. Pure: the supervisor passes what its runtime measured
(`Runtime.memory`) and writes the line.

Heroku logs R14 when a dyno passes its quota and swaps, and R15 when it is killed far above
it. A pushd dyno has no swap and its hard limit is its quota (the kernel kills it there, R15),
so R14 is logged at a soft threshold below it (`memory_warn_percent`, 90 by default): once
per crossing, counted again only after the dyno has dropped well below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .runtime.records import MemoryUse

if TYPE_CHECKING:
    from .runtime.base import Runtime

R14 = "Error R14 (Memory quota exceeded)"
REARM_GAP = 10  # percentage points under the threshold before another crossing counts
EVERY = 0.5  # seconds between two measures of one dyno (the supervisor may pass more often)


class MemoryWatch:
    def __init__(self, percent: int = 90, rearm_gap: int = REARM_GAP,
                 every: float = EVERY) -> None:
        self.percent = percent
        self.rearm_below = max(0, percent - rearm_gap)
        self.every = every
        self._over: set[str] = set()  # dyno ids above the threshold since they crossed it
        self._measured: dict[str, float] = {}  # dyno id -> when it was last measured

    def crossed(self, dyno_id: str, use: MemoryUse | None) -> bool:
        """True when this measure takes the dyno across the threshold (log R14 now)."""
        if use is None or use.limit <= 0:
            return False
        share = use.usage * 100 / use.limit
        if dyno_id in self._over:
            if share < self.rearm_below:
                self._over.discard(dyno_id)
            return False
        if share >= self.percent:
            self._over.add(dyno_id)
            return True
        return False

    def look(self, runtime: Runtime, dyno_id: str, now: float) -> bool:
        """Measure the dyno through its runtime (`Runtime.memory`, None when it cannot)
        unless it was measured less than `every` seconds ago; True as for `crossed`."""
        if now - self._measured.get(dyno_id, float("-inf")) < self.every:
            return False
        self._measured[dyno_id] = now
        return self.crossed(dyno_id, runtime.memory(dyno_id))

    def warned(self, dyno_id: str) -> bool:
        """Whether R14 was logged for the dyno's current crossing."""
        return dyno_id in self._over

    def forget(self, dyno_id: str) -> None:
        self._over.discard(dyno_id)
        self._measured.pop(dyno_id, None)
