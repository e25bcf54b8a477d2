"""cgroup v1 file operations shared by the dyno runtime (`runtime/dynodir.py`, the shim) and
the build sandbox (`build/cgroup.py`): one way to kill a group's members, read its event
counters and remove it."""

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
