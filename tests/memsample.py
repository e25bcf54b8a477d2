"""Memory of a real process and everything it started, read from /proc: what the push-memory
benchmark and tests measure the daemon with (never a guess: a sampled peak plus VmHWM)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path


def status_kb(pid: int, key: str) -> int:
    """`VmRSS`, `VmHWM`… of /proc/<pid>/status in kB; 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _parents() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command name) of every process."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        found[int(entry.name)] = (ppid, name)
    return found


def descendants(pid: int) -> dict[int, tuple[str, bool]]:
    """Every live process below `pid` (children, theirs…): pid → (command name, whether it
    is or descends from a direct child of `pid` named git*: the pack work, not a build)."""
    table = _parents()
    below: dict[int, tuple[str, bool]] = {}
    frontier = [(pid, False)]
    while frontier:
        parent, in_git = frontier.pop()
        for child, (ppid, name) in table.items():
            if ppid == parent and child not in below:
                git = in_git or (parent == pid and name.startswith("git"))
                below[child] = (name, git)
                frontier.append((child, git))
    return below


@dataclass
class Peak:
    daemon_kb: int = 0  # the daemon alone: sampled VmRSS, and its VmHWM at the end
    git_kb: int = 0  # the daemon plus its git children and theirs (index-pack, upload-pack)
    tree_kb: int = 0  # the daemon plus every descendant (builds included)
    by_name: dict[str, int] = field(default_factory=dict)  # a descendant's command → its peak


class Sampler:
    """Samples a process tree's resident memory in a thread while the `with` block runs.
    Peaks are sums of VmRSS taken at the same moment (every `interval` seconds); the daemon's
    own peak also takes its VmHWM, which misses nothing between samples."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak = Peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        daemon = status_kb(self.pid, "VmRSS")
        tree = git = daemon
        for child, (name, pack_work) in descendants(self.pid).items():
            rss = status_kb(child, "VmRSS")
            tree += rss
            self.peak.by_name[name] = max(self.peak.by_name.get(name, 0), rss)
            if pack_work:
                git += rss
        peak = self.peak
        peak.daemon_kb, peak.git_kb = max(peak.daemon_kb, daemon), max(peak.git_kb, git)
        peak.tree_kb = max(peak.tree_kb, tree)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        try:  # VmHWM from here on (root may reset another process's peak)
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.peak.daemon_kb = max(self.peak.daemon_kb, status_kb(self.pid, "VmHWM"))
