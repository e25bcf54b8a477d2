"""scripts/lib/docker-engine.sh: the Docker engine is started when none answers, and an
engine that cannot start ends scripts/test with a non-zero status (fake docker/dockerd)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/lib/docker-engine.sh"


def run_engine(tmp_path: Path, docker: str, dockerd: str | None) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"docker": docker, **({"dockerd": dockerd} if dockerd else {})}
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PUSHD_DOCKER_LOG": str(tmp_path / "d.log"),
           "PUSHD_DOCKER_WAIT": "5", "MARK": str(tmp_path / "up")}
    return subprocess.run(["bash", "-c", f". {SCRIPT}; pushd_docker_engine"], env=env,
                          capture_output=True, text=True, timeout=30)


def test_a_running_engine_is_left_alone(tmp_path: Path) -> None:
    done = run_engine(tmp_path, "exit 0", "echo started >> $MARK")
    assert done.returncode == 0 and done.stdout == ""
    assert not (tmp_path / "up").exists()


def test_a_stopped_engine_is_started_and_waited_for(tmp_path: Path) -> None:
    # `docker info` answers once dockerd has been started (the mark file exists)
    done = run_engine(tmp_path, 'test -e "$MARK"', 'touch "$MARK"; sleep 1')
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("-----> Starting the Docker engine (log: ")


def test_an_engine_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    done = run_engine(tmp_path, "exit 1", "echo 'failed to start daemon: no overlay'; exit 1")
    assert done.returncode == 1
    assert "The Docker engine did not start" in done.stderr
    assert "failed to start daemon: no overlay" in done.stderr


def test_no_dockerd_fails(tmp_path: Path) -> None:
    done = run_engine(tmp_path, "exit 1", None)
    assert done.returncode == 1
    assert done.stderr.strip() == "!    dockerd is missing (apt docker.io)"
