"""What the supervisor counts about dynos (`metrics.py`): starts, crashes and restarts by
reason, cold starts (start → up), dynos running, and how long a scale took (the formation
changing → every desired dyno of the app up). Pure bookkeeping the supervisor calls."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from . import metrics
from .slo import SLIFile


def crash_reason(text: str) -> str:
    """A fixed label for why a dyno crashed: R10 (boot timeout), R15 (memory), or exit."""
    if "R10" in text:
        return "R10"
    if "R15" in text or "memory" in text.lower():
        return "R15"
    return "exit"


class DynoMetrics:
    def __init__(self, sli: SLIFile | None = None, cold_start_ms: int = 500) -> None:
        self.sli, self.cold_start_ms = sli, cold_start_ms
        self.last_reason: dict[Any, str] = {}  # slot → why it last crashed
        self._formation: dict[int, Tally[str]] = {}
        self._scaled_at: dict[int, float] = {}

    def started(self, app: str, slot: Any, kind: str, restart: bool) -> None:
        metrics.dyno_starts.labels(app, kind).inc()
        if restart:
            metrics.dyno_restarts.labels(app, kind, self.last_reason.get(slot, "exit")).inc()

    def crashed(self, app: str, slot: Any, kind: str, reason: str) -> None:
        label = crash_reason(reason)
        self.last_reason[slot] = label
        metrics.dyno_crashes.labels(app, kind, label).inc()

    def up(self, app: str, kind: str, seconds: float) -> None:
        metrics.cold_start.labels(app, kind).observe(max(0.0, seconds))
        if self.sli is not None:
            self.sli.record("cold_start", seconds * 1000 <= self.cold_start_ms)

    def pass_done(self, names: Mapping[int, str], desired: Iterable[tuple[int, int, str, int]],
                  up: Iterable[tuple[int, int, str, int]], running: Iterable[tuple[int, str]],
                  now: float) -> None:
        """After a supervisor pass: the running gauge, and scale latency for apps whose
        desired formation changed and is now all up."""
        metrics.dynos_running.clear()
        for (app_id, kind), count in Tally(running).items():
            if app_id in names:
                metrics.dynos_running.labels(names[app_id], kind).set(count)
        wanted: dict[int, Tally[str]] = {}
        for app_id, _, kind, _ in desired:
            wanted.setdefault(app_id, Tally())[kind] += 1
        for app_id, formation in wanted.items():
            before = self._formation.get(app_id)
            if before is not None and before != formation:
                self._scaled_at[app_id] = now
            self._formation[app_id] = formation
        for app_id in [a for a in self._formation if a not in wanted]:
            self._formation.pop(app_id)
            self._scaled_at.pop(app_id, None)
        up_slots = set(up)
        for app_id, since in list(self._scaled_at.items()):
            slots = [s for s in desired if s[0] == app_id]
            if slots and all(s in up_slots for s in slots) and app_id in names:
                metrics.scale_seconds.labels(names[app_id]).observe(now - since)
                del self._scaled_at[app_id]
