"""Reading /proc: one parser for process state, parent and start time, used wherever pushd
checks that a pid it recorded (daemon, shim, dyno, nginx) is still that same live process."""

from __future__ import annotations

import os
from collections.abc import Callable
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


def cmdline(pid: int) -> list[str]:
    """A process's argv ([] once it has gone, or for a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def write_pid_file(path: Path, pid: int) -> None:
    """`pid start`: the start time lets a reader tell this process from a later one that got
    the same pid (after a reboot, or pid reuse)."""
    stat = live_stat(pid)
    path.write_text(f"{pid} {stat.start if stat else 0}\n")


def read_pid_file(path: Path, looks_right: Callable[[list[str]], bool]) -> int | None:
    """The pid in `path` if that very process still runs, else None. A file with a start time
    must match it and `looks_right(argv)`; an old plain-pid file must pass `looks_right`."""
    try:
        words = path.read_text().split()
        pid = int(words[0])
        start = int(words[1]) if len(words) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    stat = live_stat(pid) if pid > 0 else None
    if stat is None or (start is not None and stat.start != start):
        return None
    return pid if looks_right(cmdline(pid)) else None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1],
                                                              16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command line) of a process listening on TCP `port`, if one can be seen."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") in wanted:
                    pid = int(entry.name)
                    return pid, " ".join(cmdline(pid)) or "?"
            except OSError:
                continue
    return None
