"""Per-dyno resource limits (`resource:limit`): the sizes users type, the bounds they must
stay within, and which limit a dyno of a process type gets. Pure: what is stored, the
settings and the host's size come in as values.

A limit is stored for one app either for every process type (the app-wide scope, `APP_WIDE`)
or for one type; a type's own limit wins over the app-wide one, which wins over the
platform's default (`memory_mb`, `memory_by_type`, `cpu_limit` in pushd.yaml).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidValue, Refused

APP_WIDE = ""  # the scope of a limit set without --process-type
MEMORY_RE = re.compile(r"([0-9]{1,12})([kmg]?)b?", re.IGNORECASE)
CPU_RE = re.compile(r"(?:[0-9]{1,4}(?:\.[0-9]{0,3})?|\.[0-9]{1,3})")
MIN_MEMORY_MB = 16  # bash, bwrap's init and a small interpreter still fit
MIN_CPU = 0.01  # the kernel's CFS quota is at least 1 ms per period
CFS_PERIOD_US = 100_000  # 100 ms: the kernel's default period
UNITS_MB = {"k": 1 / 1024, "m": 1, "": 1, "g": 1024}


@dataclass(frozen=True)
class Limit:
    """What is stored for one scope: None where the scope sets nothing."""

    memory_mb: int | None = None
    cpu: float | None = None

    @property
    def empty(self) -> bool:
        return self.memory_mb is None and self.cpu is None


@dataclass(frozen=True)
class Effective:
    """The limits a dyno gets, and where each comes from: "type", "app" or "default"."""

    memory_mb: int
    cpu: float  # cores; 0 = no CPU cap (cpu.shares still weighs it against the others)
    memory_from: str = "default"
    cpu_from: str = "default"


def parse_memory(text: str) -> int:
    """`512m`, `1g`, `65536k`, `512` (megabytes) -> MB; 0 resets to the default."""
    match = MEMORY_RE.fullmatch(text.strip())
    if not match:
        raise InvalidValue(f"Invalid memory limit {text!r}: expected a size like 512m or 1g "
                           "(units k, m, g; 0 resets it)")
    number, unit = int(match.group(1)), match.group(2).lower()
    if unit == "k" and number % 1024:
        raise InvalidValue(f"Invalid memory limit {text!r}: use whole megabytes "
                           f"(e.g. {max(1, number // 1024)}m)")
    megabytes = int(number * UNITS_MB[unit])
    if 0 < megabytes < MIN_MEMORY_MB:
        raise InvalidValue(f"Invalid memory limit {text!r}: a dyno needs at least "
                           f"{MIN_MEMORY_MB}m")
    return megabytes


def parse_cpu(text: str) -> float:
    """`0.5`, `.25`, `2` -> cores (a fraction of one core is a share of its time); 0 resets
    to the default."""
    value = text.strip()
    if not CPU_RE.fullmatch(value):
        raise InvalidValue(f"Invalid CPU limit {text!r}: expected a number of cores like 0.5 "
                           "or 2 (0 resets it)")
    cores = float(value)
    if 0 < cores < MIN_CPU:
        raise InvalidValue(f"Invalid CPU limit {text!r}: at least {MIN_CPU:g} of a core")
    return cores


def host_cores() -> int:
    """Cores this host lets pushd use (its CPU affinity, not only the count of CPUs)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def host_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def check_bounds(memory_mb: int | None, cpu: float | None, max_memory_mb: int,
                 max_cpu: float) -> None:
    """Refused when a limit passes the operator's maximum per dyno (the host's size where
    the operator set none: 0)."""
    if memory_mb:
        most = max_memory_mb or host_memory_mb()
        if memory_mb > most:
            raise Refused(f"Memory limit {memory_text(memory_mb)} is above this platform's "
                          f"maximum of {memory_text(most)} per dyno")
    if cpu:
        most_cpu = max_cpu or float(host_cores())
        if cpu > most_cpu:
            what = "maximum" if max_cpu else "cores"
            raise Refused(f"CPU limit {cpu_text(cpu)} is above this platform's {what} "
                          f"({cpu_text(most_cpu)} per dyno)")


def effective(stored: Mapping[str, Limit], process_type: str, default_memory_mb: int,
              default_cpu: float) -> Effective:
    """The limits of a dyno of `process_type`, from the app's stored limits by scope."""
    own = stored.get(process_type, Limit())
    app = stored.get(APP_WIDE, Limit())
    memory, memory_from = default_memory_mb, "default"
    cpu, cpu_from = default_cpu, "default"
    for limit, source in ((app, "app"), (own, "type")):
        if limit.memory_mb is not None:
            memory, memory_from = limit.memory_mb, source
        if limit.cpu is not None:
            cpu, cpu_from = limit.cpu, source
    return Effective(memory, cpu, memory_from, cpu_from)


def for_dyno(store, settings, app_id: int, process_type: str) -> Effective:  # noqa: ANN001
    """The limits the dyno gets (Store, Settings)."""
    return effective(store.resource_limits(app_id), process_type,
                     settings.memory_for(process_type), settings.cpu_limit)


def memory_text(megabytes: int) -> str:
    if megabytes and megabytes % 1024 == 0:
        return f"{megabytes // 1024}g"
    return f"{megabytes}m"


def cpu_text(cores: float) -> str:
    return "unlimited" if not cores else f"{cores:g}"


def cfs_quota_us(cores: float, period_us: int = CFS_PERIOD_US) -> int:
    """cgroup v1 `cpu.cfs_quota_us` for `cores` per period; -1 (no cap) for 0."""
    if cores <= 0:
        return -1
    return max(1000, round(cores * period_us))
