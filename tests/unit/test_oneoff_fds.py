"""A tty one-off (`ssh -t platform run app bash`) leaves no descriptor open in the daemon,
however it ends: Popen failing after the pty is made, or the wait for it raising."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pushd.paths import Paths
from pushd.runtime import sandbox, sandboxio
from pushd.runtime.dynodir import DynoDir
from pushd.runtime.records import DynoSpec
from pushd.runtime.sandbox import SandboxRuntime
from pushd.runtime.sandboxio import ClientEnd, start_tty
from pushd.settings import Settings


class TerminalClient:
    """`ssh -t`: a terminal whose input never ends (the user is still typing)."""

    tty = True
    term_size = (80, 24)

    def __init__(self) -> None:
        self.hangup = threading.Event()
        self.output: list[bytes] = []

    def read(self, size: int) -> bytes:
        self.hangup.wait(10)
        return b""

    def write(self, data: bytes) -> None:
        self.output.append(data)

    def write_err(self, data: bytes) -> None:
        self.output.append(data)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def settle(before: set[str], timeout: float = 5.0) -> set[str]:
    """The descriptors opened since `before` still open once the threads had time to end."""
    deadline = time.monotonic() + timeout
    while (extra := open_fds() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    return extra


def test_a_failing_popen_closes_the_pty(monkeypatch):
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(sandboxio.subprocess, "Popen", refuse)
    before = open_fds()
    with pytest.raises(OSError):
        start_tty(["true"], ClientEnd(TerminalClient()), {})
    assert open_fds() - before == set()


def test_a_one_off_whose_wait_raises_leaves_no_pty_open(tmp_path: Path, monkeypatch):
    settings = Settings(state_dir=tmp_path / "state")
    paths = Paths(settings.state_dir)
    paths.ensure()
    runtime = SandboxRuntime(settings, paths)
    monkeypatch.setattr(DynoDir, "prepare_layer", lambda self, slug_dir, uid, disk_mb=0: "")
    monkeypatch.setattr(DynoDir, "prepare_cgroup", lambda self, *limits: None)
    monkeypatch.setattr(DynoDir, "release_layer", lambda self: None)
    monkeypatch.setattr(sandbox, "dyno_argv", lambda *_args, **_kw: ["sleep", "30"])
    # no bwrap, so no sandbox info to wait for: no network either
    monkeypatch.setattr(SandboxRuntime, "_attach_network", lambda *_args: [])

    def broken_wait(*_args: object) -> int:
        raise RuntimeError("the wait broke")

    monkeypatch.setattr(SandboxRuntime, "_wait", staticmethod(broken_wait))
    spec = DynoSpec(id="1-run.1234-v1-abcdef", app_id=1, app="myapp", release=1,
                    process_type="run", index=1234, command="bash", env={},
                    slug_dir=str(tmp_path), uid=os.getuid())
    client = TerminalClient()
    before = open_fds()
    with pytest.raises(RuntimeError, match="the wait broke"):
        runtime.run(spec, client)
    client.hangup.set()  # the SSH session ends: the input side closes its descriptor too
    assert settle(before) == set()
    assert not (paths.dynos_dir / spec.id).exists()
