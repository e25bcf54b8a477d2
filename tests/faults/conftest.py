"""Fault-injection tests (issue 8): real daemons, real nginx, real git pushes, with processes
killed at chosen moments. Each test measures the outage it caused and prints it (`-s`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.harness import PushdUnderTest, new_root

FAST = {"boot_timeout": 30, "stop_timeout": 5, "drain_seconds": 0.5, "crash_backoff_base": 0.5,
        "crash_backoff_max": 4, "build_timeout": 300, "ssh_auth_timeout": 5}


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated live process (the kind a stale pid comes to name) that must survive."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def platform() -> Iterator[PushdUnderTest]:
    """A fresh daemon per test: the faults below kill parts of it."""
    root = new_root("pushd-faults-")
    under_test = PushdUnderTest(root, settings=dict(FAST))
    under_test.start()
    yield under_test
    under_test.stop(everything=True)
    shutil.rmtree(root, ignore_errors=True)


def report(fault: str, outage: float | None, lost: str, seen: str) -> None:
    """One row of the fault table (printed; read with `pytest -s`)."""
    shown = "-" if outage is None else f"{outage:.2f}"
    print(f"\nFAULT | {fault} | outage {shown} s | data lost: {lost} | user saw: {seen}")


def state_of(root: Path) -> Path:
    return root / "state"
