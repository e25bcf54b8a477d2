"""The operator CLI (`pushd up/down/status`) as an admin runs it: its own state dirs, flags
against pushd.yaml, relative paths, a port already taken, a broken settings file."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import PUSHD, free_port, sh


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pushd-op-", dir="/var/tmp"))
    root.chmod(0o711)
    yield root
    sh([PUSHD, "--state-dir", str(root / "state"), "down", "--all"], timeout=120)
    shutil.rmtree(root, ignore_errors=True)


def key_pair(root: Path) -> Path:
    key = root / "admin"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def ssh_apps(key: Path, port: int) -> str:
    result = sh(["ssh", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "git@127.0.0.1", "apps"])
    assert result.returncode == 0, result.stderr
    return result.stdout


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}


def test_up_with_relative_paths_flags_over_file_then_status_and_down(workdir: Path):
    key = key_pair(workdir)
    (workdir / "state").mkdir()
    file_port, flag_port, http_port = free_port(), free_port(), free_port()
    (workdir / "state" / "pushd.yaml").write_text(
        f"ssh_port: {file_port}\nhttp_port: {http_port}\nssh_host: 127.0.0.1\n"
        "http_host: 127.0.0.1\n")
    # relative state dir and key file, as typed in a shell; the daemon runs from /
    up = sh([PUSHD, "up", "--state-dir", "state", "--ssh-port", str(flag_port),
             "--admin-key", "admin.pub", "--detach"], cwd=workdir, env=clean_env(),
            timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"ssh on port {flag_port}" in up.stdout
    pid = int((workdir / "state" / "pushd.pid").read_text().split()[0])
    assert f"(pid {pid})" in up.stdout
    assert ssh_apps(key, flag_port).startswith("=== ")  # the flag won over pushd.yaml

    status = sh([PUSHD, "status", "--state-dir", "state"], cwd=workdir, env=clean_env())
    assert status.returncode == 0, status.stderr
    assert f"running, pid {pid}" in status.stdout
    assert f"SSH:        port {flag_port}\n" in status.stdout  # as started, not pushd.yaml's
    apps = sh([PUSHD, "--state-dir", "state", "apps:create", "here"], cwd=workdir,
              env=clean_env())
    assert f"http://here.localhost:{http_port}/" in apps.stdout, apps.stdout + apps.stderr
    assert "Router:     nginx, pid " in status.stdout

    down = sh([PUSHD, "down", "--state-dir", str(workdir / "state")], env=clean_env(),
              timeout=120)
    assert down.returncode == 0, down.stderr
    assert f"Stopped pushd (pid {pid})" in down.stdout
    after = sh([PUSHD, "status", "--state-dir", str(workdir / "state")], env=clean_env())
    assert "Daemon:     not running" in after.stdout


def test_up_refuses_to_claim_a_port_someone_else_holds(workdir: Path):
    key = key_pair(workdir)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        up = sh([PUSHD, "--state-dir", str(workdir / "state"), "up", "--ssh-port", str(taken),
                 "--http-port", str(free_port()), "--admin-key", f"{key}.pub", "--detach"],
                env=clean_env(), timeout=120)
    assert up.returncode != 0
    assert "pushd is up" not in up.stdout
    assert up.stderr.splitlines()[-1].startswith(" !    pushd did not come up: "), up.stderr
    assert "Address already in use" in up.stderr
    status = sh([PUSHD, "status", "--state-dir", str(workdir / "state")], env=clean_env())
    assert "Daemon:     not running" in status.stdout


@pytest.mark.parametrize("command", [["status"], ["down"], ["apps"], ["config", "myapp"]])
def test_a_broken_settings_file_is_one_clear_line(workdir: Path, command: list[str]):
    (workdir / "state").mkdir()
    (workdir / "state" / "pushd.yaml").write_text("ssh_port: lots\n")
    result = sh([PUSHD, "--state-dir", str(workdir / "state"), *command], env=clean_env())
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ssh_port" in lines[0] and "Traceback" not in result.stderr
