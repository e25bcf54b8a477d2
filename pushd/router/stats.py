"""Per-app request figures by minute, for `metrics myapp`: count, 5xx answers and service
times in fixed buckets (for percentiles), the last hour kept. The router-log receiver adds to
them and writes each app's `logs/router-stats.json` every few seconds."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..files import replace_file

EDGES_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, math.inf)
KEEP_MINUTES = 60


def bucket_of(ms: float) -> int:
    return next(i for i, edge in enumerate(EDGES_MS) if ms <= edge)


class AppStats:
    def __init__(self) -> None:
        self.minutes: dict[int, list] = {}  # minute -> [count, errors, [per bucket]]

    def add(self, status: str, service_ms: float | None, now: float | None = None,
            n: int = 1) -> None:
        """`n` requests alike (the receiver adds each kind once per batch)."""
        minute = int((time.time() if now is None else now) // 60)
        row = self.minutes.setdefault(minute, [0, 0, [0] * len(EDGES_MS)])
        row[0] += n
        row[1] += n * int(status.startswith("5"))
        if service_ms is not None:
            row[2][bucket_of(service_ms)] += n
        for old in [m for m in self.minutes if m <= minute - KEEP_MINUTES]:
            del self.minutes[old]

    @classmethod
    def load(cls, path: Path) -> AppStats:
        """What an earlier daemon wrote (nothing readable: empty)."""
        stats = cls()
        try:
            raw = json.loads(path.read_text())
            stats.minutes = {int(m): [int(r[0]), int(r[1]), [int(n) for n in r[2]]]
                             for m, r in raw.items() if len(r[2]) == len(EDGES_MS)}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            pass
        return stats

    def write(self, path: Path) -> None:
        replace_file(path, json.dumps({str(m): row for m, row in self.minutes.items()}))


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    minutes: int
    p50: float | None
    p95: float | None
    p99: float | None


def summarize(path: Path, now: float | None = None) -> Summary:
    """The last hour of `path` (nothing yet: zeros)."""
    try:
        raw: Mapping[str, list] = json.loads(path.read_text())
    except (OSError, ValueError):
        raw = {}
    minute = int((time.time() if now is None else now) // 60)
    rows = [row for m, row in raw.items() if minute - KEEP_MINUTES < int(m) <= minute]
    buckets = [sum(row[2][i] for row in rows) for i in range(len(EDGES_MS))]

    def percentile(p: float) -> float | None:
        total = sum(buckets)
        if not total:
            return None
        seen = 0
        for i, n in enumerate(buckets):
            seen += n
            if seen >= p / 100 * total:
                return EDGES_MS[i]
        return EDGES_MS[-1]
    return Summary(sum(r[0] for r in rows), sum(r[1] for r in rows), KEEP_MINUTES,
                   percentile(50), percentile(95), percentile(99))
