"""Faults an operator meets at `pushd up` (issue 8): the daemon log stays free of tracebacks
from connections that close before their SSH banner, and a port_range inside the kernel's
ephemeral ports is refused."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .harness import PUSHD, free_port, sh
from .test_operator import clean_env, key_pair, ssh_apps


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pushd-faults-", dir="/var/tmp"))
    root.chmod(0o711)
    yield root
    sh([PUSHD, "--state-dir", str(root / "state"), "down", "--all"], env=clean_env(),
       timeout=120)
    shutil.rmtree(root, ignore_errors=True)


def write_settings(root: Path, **extra: object) -> tuple[Path, int]:
    state = root / "state"
    state.mkdir()
    ssh_port = free_port()
    settings = {"ssh_port": ssh_port, "http_port": free_port(), "ssh_host": "127.0.0.1",
                "http_host": "127.0.0.1", **extra}
    (state / "pushd.yaml").write_text(yaml.safe_dump(settings))
    return state, ssh_port


def test_up_detach_and_port_scans_leave_no_traceback_in_the_daemon_log(workdir: Path):
    key = key_pair(workdir)
    state, ssh_port = write_settings(workdir)
    up = sh([PUSHD, "--state-dir", str(state), "up", "--admin-key", f"{key}.pub", "--detach"],
            env=clean_env(), timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    with socket.create_connection(("127.0.0.1", ssh_port)):  # a port scanner: connect, close
        pass
    assert ssh_apps(key, ssh_port).startswith("=== ")  # real sessions still work after it
    down = sh([PUSHD, "--state-dir", str(state), "down"], env=clean_env(), timeout=120)
    assert down.returncode == 0, down.stderr
    log = (state / "pushd.log").read_text()
    assert "Traceback" not in log, log
    assert "Error reading SSH protocol banner" not in log, log


def test_up_refuses_a_port_range_inside_the_kernels_ephemeral_ports(workdir: Path):
    key = key_pair(workdir)
    first, last = (int(word) for word in
                   Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    low, high = first + 100, min(first + 199, last)  # wholly inside, as free ports often are
    state, _ = write_settings(workdir, port_range=[low, high])
    up = sh([PUSHD, "--state-dir", str(state), "up", "--admin-key", f"{key}.pub", "--detach"],
            env=clean_env(), timeout=120)
    assert up.returncode != 0
    assert "pushd is up" not in up.stdout
    assert up.stderr == (f" !    port_range {low}-{high} overlaps the kernel's ephemeral ports "
                         f"{first}-{last} (net.ipv4.ip_local_port_range): set port_range in "
                         f"pushd.yaml outside {first}-{last}, or narrow that sysctl\n")
    assert not (state / "pushd.pid").exists()
    status = sh([PUSHD, "status", "--state-dir", str(state)], env=clean_env())
    assert "Daemon:     not running" in status.stdout
