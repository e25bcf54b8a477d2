"""cgroup v1 file operations shared by the dyno runtime (`runtime/dynodir.py`, the shim) and
the build sandbox (`build/cgroup.py`): one way to kill a group's members, read its event
counters and its memory use, and remove it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def kill_members(group: Path) -> None:
    """SIGKILL every process in the group (none, if the group is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def counter_seen(path: Path, key: str) -> bool:
    """`key` counted above zero in a `key value` file (memory.oom_control, pids.events)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and int(value) > 0:
                return True
    except (OSError, ValueError):
        pass
    return False


def memory_use(group: Path) -> tuple[int, int] | None:
    """(usage, limit) in bytes of a v1 memory group: its charge less the file pages it could
    drop (`total_inactive_file`, as `docker stats` counts), so a dyno that reads many files
    is not taken for one that is running out. None if the group is gone."""
    try:
        usage = int((group / "memory.usage_in_bytes").read_text())
        limit = int((group / "memory.limit_in_bytes").read_text())
        stat = (group / "memory.stat").read_text()
    except (OSError, ValueError):
        return None
    inactive = 0
    for line in stat.splitlines():
        name, _, value = line.partition(" ")
        if name == "total_inactive_file":
            inactive = int(value)
    return max(0, usage - inactive), limit


def remove_group(group: Path, attempts: int = 100) -> None:
    """rmdir the group, killing what still runs in it while it is busy."""
    for _ in range(attempts):  # the last processes may still be leaving
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            kill_members(group)
            time.sleep(0.05)
