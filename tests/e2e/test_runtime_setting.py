"""An unknown `runtime` (pushd.yaml, --runtime, PUSHD_RUNTIME) through the real `pushd` CLI:
one line on stderr and a non-zero exit for every command, and no daemon starts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import PUSHD, free_port, sh

LINE = (" !    Unknown runtime 'dokker' in pushd.yaml, --runtime or PUSHD_RUNTIME "
        "(known: docker, sandbox)")


@pytest.fixture
def state() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pushd-rt-", dir="/var/tmp"))
    root.chmod(0o711)
    yield root / "state"
    # were a daemon started after all, stop it (with a runtime it knows) before removing
    (root / "state" / "pushd.yaml").unlink(missing_ok=True)
    sh([PUSHD, "--state-dir", str(root / "state"), "down", "--all"], env=clean_env(),
       timeout=120)
    shutil.rmtree(root, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
    return {**env, **extra}


def assert_one_line(result, state: Path) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [LINE], result.stderr
    assert not (state / "pushd.pid").exists()  # the daemon refused to start


@pytest.mark.parametrize("command", [
    ["up", "--ssh-port", "0", "--http-port", "0"],
    ["up", "--detach", "--ssh-port", "0", "--http-port", "0"],
    ["status"], ["apps"]])
def test_an_unknown_runtime_in_pushd_yaml_is_one_line(state: Path, command: list[str]):
    state.mkdir()
    (state / "pushd.yaml").write_text("runtime: dokker\n")
    ports = [str(free_port()) if arg == "0" else arg for arg in command]
    result = sh([PUSHD, "--state-dir", str(state), *ports], env=clean_env(), timeout=60)
    assert_one_line(result, state)


def test_an_unknown_runtime_flag_or_environment_variable_is_one_line(state: Path):
    up = sh([PUSHD, "up", "--state-dir", str(state), "--runtime", "dokker", "--ssh-port",
             str(free_port()), "--http-port", str(free_port())], env=clean_env(), timeout=60)
    assert_one_line(up, state)
    apps = sh([PUSHD, "--state-dir", str(state), "apps"],
              env=clean_env(PUSHD_RUNTIME="dokker"), timeout=60)
    assert_one_line(apps, state)
