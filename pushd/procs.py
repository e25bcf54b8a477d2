"""Reading /proc: one parser for process state, parent and start time, used wherever pushd
checks that a pid it recorded (daemon, shim, dyno, nginx) is still that same live process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie: exited, not yet reaped), ...
    ppid: int
    start: int  # clock ticks since boot: with the pid, identifies one process

    @property
    def exited(self) -> bool:
        return self.state in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the name in (...) may contain spaces
    return ProcStat(fields[0], int(fields[1]), int(fields[19]))


def live_stat(pid: int | None) -> ProcStat | None:
    """The process's stat if it runs (a zombie does not)."""
    stat = proc_stat(pid) if pid else None
    return None if stat is None or stat.exited else stat


def children_map(include_exited: bool = True) -> dict[int, list[int]]:
    """parent pid -> child pids, for every process on the machine."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and (include_exited or not stat.exited):
                tree.setdefault(stat.ppid, []).append(int(entry.name))
    return tree
