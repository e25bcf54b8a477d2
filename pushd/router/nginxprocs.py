"""Which processes are pushd's own nginx, and who holds a port nginx could not bind.

An orphaned worker (its master killed) keeps the listening sockets, so no new master can
bind them. Its title names no config, but it still holds the log files the master opened in
pushd's nginx folder: that, never the name `nginx`, tells pushd's workers from any other
nginx's on the machine."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from ..procs import cmdline, live_stat, port_holder

_BIND_FAILED = re.compile(r"bind\(\) to (\S+):(\d+) failed \(98")


def _opened_under(pid: int, folder: Path) -> bool:
    prefix = f"{folder}/"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                return True
        except OSError:
            continue
    return False


def orphans(folder: Path, master: int | None) -> dict[int, int]:
    """{pid: start time} of nginx children (workers, cache processes) of pushd's nginx in
    `folder` whose master is gone (their parent is not `master`)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = cmdline(pid)
        if not argv or not argv[0].startswith("nginx: ") or "master process" in argv[0]:
            continue
        stat = live_stat(pid)
        if stat is not None and stat.ppid != master and _opened_under(pid, folder):
            found[pid] = stat.start
    return found


def clear(processes: dict[int, int], grace: float = 0.3) -> None:
    """End orphaned workers: SIGQUIT (each closes its listening sockets at once and finishes
    the requests it has), then SIGKILL whatever still runs after `grace` seconds. Each pid is
    signalled only while it is still the process found (same start time)."""
    def same(pid: int) -> bool:
        stat = live_stat(pid)
        return stat is not None and stat.start == processes[pid]

    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGKILL, 0.0)):
        left = [pid for pid in processes if same(pid)]
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.01)
            left = [pid for pid in left if same(pid)]


def explain_bind(message: str) -> str:
    """nginx's `bind() ... failed (98: Address already in use)`, with who holds the port."""
    found = _BIND_FAILED.search(message)
    if not found:
        return message
    port = int(found.group(2))
    holder = port_holder(port)
    if holder is None:
        return message
    pid, command = holder
    return f"{message}: port {port} is held by pid {pid} ({command[:120]})"
