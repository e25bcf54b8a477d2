"""A build's record and output: the row in `build_history` (store_builds.py) for as long as
the build runs, its output teed to `apps/<id>/builds/output-<N>.log` (bounded: past
`MAX_OUTPUT` bytes one marker line, then nothing), and `builds:cancel`, which stops the
processes of the app's running build through its cgroups (and, with the docker runtime, its
containers: `build/cancel.py`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .build import cancel as outside
from .build.cgroup import CGROUP_ROOT, group_prefix
from .cgroups import kill_members
from .models import App
from .platform import Platform
from .procs import live_stat
from .store_builds import BuildRecord

MAX_OUTPUT = 1024 * 1024
TRUNCATED = "\n-----> (build output truncated: over 1 MB)\n"
CANCEL_WAIT = 30.0  # seconds builds:cancel waits for the build to end


def alive(pid: int) -> bool:
    return live_stat(pid) is not None


def output_file(platform: Platform, app_id: int, number: int) -> Path:
    return platform.paths.builds(app_id) / f"output-{number}.log"


class BuildOutput:
    """The build's output on its way to the pusher, kept in its file too."""

    def __init__(self, path: Path, out: Callable[[str], None]) -> None:
        self.path, self._out, self._size = path, out, 0
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def __call__(self, text: str) -> None:
        self._out(text)
        if self._fd is None:
            return
        data = text.encode("utf-8", "replace")
        room = MAX_OUTPUT - self._size
        try:
            if len(data) > room:
                os.write(self._fd, data[:room] + TRUNCATED.encode())
                self.close()
                return
            os.write(self._fd, data)
            self._size += len(data)
        except OSError:  # a full disk loses the copy, never the build
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def recorded(platform: Platform, app: App, commit: str, user: str,
             out: Callable[[str], None]) -> Iterator[tuple[BuildRecord, BuildOutput]]:
    """Record a build while the block runs: `succeeded` if it returns, else `failed` (or
    `canceled` when builds:cancel stopped it: `ended` tells). The output callable it yields
    tees to the build's file."""
    record, dropped = platform.store.begin_build(app.id, commit, user, os.getpid(), alive)
    folder = platform.paths.builds(app.id)
    folder.mkdir(exist_ok=True)
    folder.chmod(0o711)  # as the builder keeps it: traversable, never listable
    for number in dropped:
        output_file(platform, app.id, number).unlink(missing_ok=True)
    output = BuildOutput(output_file(platform, app.id, record.number), out)
    status = "failed"
    try:
        yield record, output
        status = "succeeded"
    finally:
        output.close()
        platform.store.finish_build(app.id, record.number, status)


def was_canceled(platform: Platform, record: BuildRecord) -> bool:
    now = platform.store.build_record(record.app_id, record.number)
    return now is not None and now.status in ("canceling", "canceled")


def cancel(platform: Platform, app: App, say: Callable[[str], None]) -> BuildRecord | None:
    """Stop the app's running build: marked `canceling`, then every process in its cgroups
    (and its docker containers) killed until the build has ended (a step starting meanwhile
    is killed too). None if no build runs."""
    record = platform.store.cancel_build(app.id, alive)
    if record is None:
        return None
    prefix = group_prefix(platform.paths.root, app.id)
    deadline = time.monotonic() + CANCEL_WAIT
    while time.monotonic() < deadline:
        # asked first: once it has ended, the next push's build may already use these groups
        now = platform.store.build_record(app.id, record.number)
        if now is None or now.status not in ("running", "canceling") or not alive(now.pid):
            break
        for group in (CGROUP_ROOT / "pids" / "pushd").glob(f"{prefix}*"):
            kill_members(group)
        outside.stop_all(app.id)
        platform.support.cancel_builds(app.id)
        time.sleep(0.2)
    else:
        say(f"Build {record.number} of {app.name} is still stopping\n")
    return record
