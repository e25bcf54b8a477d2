"""One dyno's folder in the state dir, shared by the sandbox runtime (in the daemon) and the
shim (a detached process per dyno): state files written atomically, the writable /app layer,
its cgroups (memory, pids, cpu), and process-tree helpers for signalling everything inside
a sandbox.

Layout of `dynos/<dyno id>/`:
    spec.json   what to run and where to log (written by the runtime before launching)
    shim.json   {"pid", "start"} of the shim (start = /proc start time, against pid reuse)
    child.json  {"pid", "start", "started_at", "layer", "cgroup"} of the sandbox
    stopping    present once a stop was requested
    exit.json   {"status", "oom", "finished_at"} once the dyno has exited
    layer/ (a size-limited tmpfs), layer/upper, layer/work, app/   overlayfs writable layer
                and the merged /app
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from ..cgroups import counter_seen, memory_use, remove_group
from ..files import replace_file
from ..limits import CFS_PERIOD_US, cfs_quota_us
from ..procs import children_map, live_stat
from .records import MemoryUse

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_PIDS = Path("/sys/fs/cgroup/pids")
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
# Put the process into its cgroups (memory: "$0"; pids and cpu: the same path under pids/
# and cpu/, when there), then become the sandbox: no preexec_fn (unsafe in the threaded
# daemon), and the pid is in the cgroups before anything of the app runs.
CGROUP_ENTER = ('echo $$ > "$0" && base="${0%%/memory/*}" && rel="${0#*/memory/}" && '
                'for twin in "$base/pids/$rel" "$base/cpu/$rel"; do '
                '{ [ ! -e "$twin" ] || echo $$ > "$twin"; } || exit 1; done && exec "$@"')
TWINS = (CGROUP_PIDS, CGROUP_CPU)  # controllers whose group mirrors the memory group's path


def proc_start(pid: int) -> int | None:
    """Start time of a live process in clock ticks since boot (None once it has exited)."""
    stat = live_stat(pid)
    return stat.start if stat else None


def alive(pid: int | None, start: int | None) -> bool:
    return bool(pid) and start is not None and proc_start(pid) == start


def signal_sandbox(monitor_pid: int, sig: int) -> int:
    """Signal every process of the app inside a bwrap sandbox whose outer bwrap is
    `monitor_pid`. bwrap's own monitor and its pid-1 init are skipped for SIGTERM (they would
    die without passing the exit status on; the init stays while anything in the sandbox
    runs, see `sandboxio.SandboxInfo`).
    SIGKILL goes to the init too, which takes the whole pid namespace down. Returns the count."""
    tree = children_map()
    inits = tree.get(monitor_pid, [])
    targets = list(inits) if sig == signal.SIGKILL else []
    todo = [p for init in inits for p in tree.get(init, [])]
    while todo:
        pid = todo.pop()
        targets.append(pid)
        todo.extend(tree.get(pid, []))
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return len(targets)


class DynoDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def app_dir(self) -> Path:
        return self.path / "app"

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        replace_file(self.path / name, json.dumps(data, sort_keys=True), sync=True)

    def read_json(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def write_tail(self, lines: list[str]) -> None:
        """The dyno's last output lines (plain text), for a failed release's report: replaced
        whole (rename), not synced: a hint, rewritten often, must not stall the dyno."""
        replace_file(self.path / "output.tail", "".join(f"{line}\n" for line in lines))

    def read_tail(self, lines: int) -> list[str]:
        try:
            text = (self.path / "output.tail").read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:] if lines > 0 else []

    @property
    def stopping(self) -> bool:
        return (self.path / "stopping").exists()

    def mark_stopping(self) -> None:
        with contextlib.suppress(FileExistsError):
            (self.path / "stopping").touch(exist_ok=False)

    def restrict(self, uid: int) -> None:
        """The folder is root's; only the app's own uid (as its group) may pass through it to
        app/, to bind it in the sandbox. Other apps' uids cannot even enter."""
        if os.geteuid() == 0:
            os.chown(self.path, 0, uid)
            self.path.chmod(0o710)
        else:  # an unprivileged pushd runs every app as itself
            self.path.chmod(0o700)

    # the writable /app layer
    def prepare_layer(self, slug_dir: str, uid: int, disk_mb: int = 0) -> str:
        """Mount slug + a fresh upper layer at app/; copy the slug if overlayfs is refused.
        With `disk_mb`, the upper layer lives on a tmpfs of that size: a dyno that fills it
        gets ENOSPC, and the pages count against the dyno's own memory limit, not the host's
        disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.restrict(uid)
        layer = self.path / "layer"
        layer.mkdir(exist_ok=True)
        if disk_mb > 0 and not layer.is_mount():
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(disk_mb)}m,mode=0700",
                            f"pushd-{self.id}", str(layer)], capture_output=True)
        upper, work = layer / "upper", layer / "work"
        for folder in (upper, work, self.app_dir):
            folder.mkdir(parents=True, exist_ok=True)
        (self.path / "layer").chmod(0o700)
        os.chown(upper, uid, uid)
        upper.chmod(0o700)  # the merged /app takes the upper's owner and mode: the app's alone
        options = f"lowerdir={slug_dir},upperdir={upper},workdir={work}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options,
                                  str(self.app_dir)], capture_output=True).returncode == 0
        if mounted:
            return "overlay"
        self.app_dir.rmdir()
        shutil.copytree(slug_dir, self.app_dir, symlinks=True)
        for root, dirs, files in os.walk(self.app_dir):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                os.lchown(name, uid, uid)
        self.app_dir.chmod(0o700)
        return "copy"

    def release_layer(self) -> None:
        for mount in (self.app_dir, self.path / "layer"):  # the overlay, then its tmpfs
            if mount.is_mount():
                if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        for name in ("app", "layer"):
            target = self.path / name
            if target.exists() and not target.is_mount():
                shutil.rmtree(target, ignore_errors=True)

    # the memory cgroup (v1)
    def cgroup(self) -> Path:
        return CGROUP_MEMORY / "pushd" / self.id

    def prepare_cgroup(self, memory_mb: int, pids_max: int = 256, cpu_shares: int = 1024,
                       cpu_limit: float = 0.0) -> Path | None:
        """A memory cgroup limited to memory_mb, with its twins: pids limited to pids_max,
        cpu weighted by cpu_shares (every dyno its own group, so a dyno's many busy processes
        weigh as one against the others) and capped at cpu_limit cores by the CFS quota
        (0: no cap). None where cgroups are unavailable."""
        group = self.cgroup()
        self._twin(CGROUP_PIDS, [("pids.max", str(pids_max))])
        cap = [("cpu.cfs_period_us", str(CFS_PERIOD_US)),
               ("cpu.cfs_quota_us", str(cfs_quota_us(cpu_limit)))] if cpu_limit > 0 else []
        self._twin(CGROUP_CPU, [("cpu.shares", str(cpu_shares)), *cap])
        try:
            group.mkdir(parents=True, exist_ok=True)
            limit = str(memory_mb * 1024 * 1024)
            (group / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # no swap accounting: fine
                (group / "memory.memsw.limit_in_bytes").write_text(limit)
            return group
        except OSError:
            return None

    def _twin(self, controller: Path, settings: list[tuple[str, str]]) -> None:
        if not (controller / "cgroup.procs").exists():  # a mounted controller, not a folder
            return
        twin = controller / "pushd" / self.id
        try:
            twin.parent.mkdir(exist_ok=True)
            twin.mkdir(exist_ok=True)
            for name, value in settings:
                (twin / name).write_text(value)
        except OSError:  # not here: the memory limit still holds
            with contextlib.suppress(OSError):
                twin.rmdir()

    def memory(self) -> MemoryUse | None:
        """What the dyno's memory cgroup holds against its limit now (None once it is gone)."""
        use = memory_use(self.cgroup())
        return MemoryUse(*use) if use else None

    @staticmethod
    def oom_killed(group: Path | None) -> bool:
        return group is not None and counter_seen(group / "memory.oom_control", "oom_kill")

    @staticmethod
    def release_cgroup(group: Path | None) -> None:
        if group is None:
            return
        with contextlib.suppress(ValueError):
            for controller in TWINS:
                twin = controller / group.relative_to(CGROUP_MEMORY)
                if twin.exists():
                    remove_group(twin, attempts=50)
        if group.exists():
            remove_group(group, attempts=50)
