"""The platform's service level indicators against its objectives (`slo`), kept across daemon
restarts: one file (`slo.json`, root's) of daily good/total counts per indicator, appended to
under a lock by whichever process saw the event, read for the last `window_days`.

Indicators: `api` (admin commands that did not fail inside pushd: a user's mistake is a good
answer), `deploy` (releases that went live out of those that finished live or failed),
`cold_start` (dyno starts up within `slo_cold_start_ms`)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pushd.slo")

KINDS = ("api", "deploy", "cold_start")
KEEP_DAYS = 90


@dataclass(frozen=True)
class Objective:
    kind: str
    title: str
    target: float  # percent of events that must be good


@dataclass(frozen=True)
class Row:
    objective: Objective
    good: int
    total: int

    @property
    def actual(self) -> float | None:
        return 100.0 * self.good / self.total if self.total else None

    @property
    def budget_left(self) -> float | None:
        """Percent of the error budget not yet spent (negative: overspent)."""
        if not self.total:
            return None
        allowed = (100.0 - self.objective.target) / 100.0 * self.total
        spent = self.total - self.good
        if allowed <= 0:
            return 100.0 if spent == 0 else -100.0
        return 100.0 * (allowed - spent) / allowed


def objectives(api: float, deploy: float, cold_start_ms: int) -> list[Objective]:
    return [Objective("api", "Platform API availability", api),
            Objective("deploy", "Deploy success", deploy),
            Objective("cold_start", f"Cold starts within {cold_start_ms} ms", 95.0)]


class SLIFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, kind: str, good: bool, now: float | None = None) -> None:
        """Count one event; a failure to write is logged, never raised."""
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            log.warning("SLI not recorded (%s)", err)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            days = _parse(os.pread(fd, 1 << 22, 0))
            counts = days.setdefault(day, {}).setdefault(kind, [0, 0])
            counts[0] += int(good)
            counts[1] += 1
            for old in sorted(days)[:-KEEP_DAYS]:
                del days[old]
            data = json.dumps(days, sort_keys=True).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as err:
            log.warning("SLI not recorded (%s)", err)
        finally:
            os.close(fd)

    def report(self, wanted: list[Objective], window_days: int,
               now: float | None = None) -> list[Row]:
        now = time.time() if now is None else now
        first = time.strftime("%Y-%m-%d", time.gmtime(now - (window_days - 1) * 86400))
        try:
            days = _parse(self.path.read_bytes())
        except OSError:
            days = {}
        rows = []
        for objective in wanted:
            good = total = 0
            for day, kinds in days.items():
                if day >= first and objective.kind in kinds:
                    good += kinds[objective.kind][0]
                    total += kinds[objective.kind][1]
            rows.append(Row(objective, good, total))
        return rows


def _parse(data: bytes) -> dict[str, dict[str, list[int]]]:
    try:
        days = json.loads(data or b"{}")
    except ValueError:
        return {}
    return days if isinstance(days, dict) else {}
