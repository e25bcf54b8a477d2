"""The cgroup one build runs in (cgroup v1: memory, pids, cpu), and the argv prefix that puts
each build step in it before the sandbox starts.

Every process of the build (checkout, buildpack copy and fetch, detect, compile, release,
slug) enters the same groups, so the limits hold for the build as a whole: memory (swap
included where accounted), processes + threads, and a CPU quota. The build's deadline is
`process.run_streaming`'s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..cgroups import counter_seen, kill_members, remove_group

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000

# As root, before setpriv: write our pid into each cgroup.procs given (up to `--`), then
# become the command. No preexec_fn (unsafe in the threaded daemon).
ENTER_SCRIPT = ('while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
                'exec "$@"')


def group_prefix(state_dir: Path, app_id: int) -> str:
    """`build-<state dir hash>-<app id>-`: the groups of one app's builds on one pushd (other
    pushd instances on the host have their own app ids)."""
    token = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    return f"build-{token}-{app_id}-"


def remove_stale(prefix: str, root: Path = CGROUP_ROOT) -> None:
    """Groups a crashed daemon left (the caller holds the app's deploy lock: no build of
    this app runs), with whatever still runs in them."""
    for ctrl in ("memory", "pids", "cpu"):
        for group in (root / ctrl / "pushd").glob(f"{prefix}*"):
            remove_group(group)


@dataclass(frozen=True)
class BuildLimits:
    memory_mb: int
    pids_max: int
    cpu_percent: int


class BuildCgroup:
    """`pushd/<name>` under each controller; made by `create`, gone after `remove`."""

    def __init__(self, name: str, limits: BuildLimits, root: Path = CGROUP_ROOT) -> None:
        self.limits = limits
        self.groups = {ctrl: root / ctrl / "pushd" / name for ctrl in ("memory", "pids", "cpu")}
        self.made: dict[str, Path] = {}

    def create(self) -> list[str]:
        """Make the groups with their limits; the controllers that could not be used."""
        settings = {
            "memory": [("memory.limit_in_bytes", str(self.limits.memory_mb * 1024 * 1024)),
                       ("memory.memsw.limit_in_bytes?",
                        str(self.limits.memory_mb * 1024 * 1024))],
            "pids": [("pids.max", str(self.limits.pids_max))],
            "cpu": [("cpu.cfs_period_us", str(CPU_PERIOD_US)),
                    ("cpu.cfs_quota_us", str(self.limits.cpu_percent * CPU_PERIOD_US // 100))],
        }
        missing = []
        for ctrl, group in self.groups.items():
            if not (group.parent.parent / "cgroup.procs").exists():
                missing.append(ctrl)
                continue
            try:
                group.mkdir(parents=True, exist_ok=True)
                self.made[ctrl] = group
                for name, value in settings[ctrl]:
                    optional = name.endswith("?")
                    try:
                        (group / name.rstrip("?")).write_text(value)
                    except OSError:
                        if not optional:
                            raise
            except OSError:
                missing.append(ctrl)
                remove_group(group)
                self.made.pop(ctrl, None)
        return missing

    def enter_argv(self) -> list[str]:
        """argv prefix that runs the rest of the argv inside every group made."""
        if not self.made:
            return []
        procs = [str(group / "cgroup.procs") for group in self.made.values()]
        return ["/bin/sh", "-c", ENTER_SCRIPT, "pushd-cgroup", *procs, "--"]

    def oom_killed(self) -> bool:
        group = self.made.get("memory")
        return group is not None and counter_seen(group / "memory.oom_control", "oom_kill")

    def pids_exhausted(self) -> bool:
        """A fork or clone was refused at pids.max."""
        group = self.made.get("pids")
        return group is not None and counter_seen(group / "pids.events", "max")

    def kill_all(self) -> None:
        for group in self.made.values():
            kill_members(group)

    def remove(self) -> None:
        for group in self.made.values():
            remove_group(group)
        self.made.clear()
