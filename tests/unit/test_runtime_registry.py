"""The runtime registry: runtimes register themselves in their own modules, and an unknown
`runtime` setting is one user-facing line (the settings error), never a ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushd.errors import UsageError
from pushd.paths import Paths
from pushd.platform import Platform, load_runtimes
from pushd.runtime.base import RUNTIMES, make_runtime
from pushd.settings import Settings

MESSAGE = ("Unknown runtime 'dokker' in pushd.yaml, --runtime or PUSHD_RUNTIME "
           "(known: docker, sandbox)")


def test_the_sandbox_registers_itself_when_the_wiring_loads_runtimes():
    load_runtimes()
    assert RUNTIMES["sandbox"].__module__ == "pushd.runtime.sandbox"
    assert RUNTIMES["sandbox"].name == "sandbox"


def test_the_docker_runtime_registers_itself_when_the_wiring_loads_runtimes():
    load_runtimes()
    assert RUNTIMES["docker"].__module__ == "pushd.runtime.docker.runtime"
    assert RUNTIMES["docker"].name == "docker"


def test_an_unknown_runtime_is_refused_when_the_platform_is_wired(tmp_path: Path):
    with pytest.raises(UsageError) as raised:
        Platform(Settings(state_dir=tmp_path, runtime="dokker"))
    assert str(raised.value) == MESSAGE
    assert "\n" not in str(raised.value)


def test_make_runtime_gives_the_same_line(tmp_path: Path):
    load_runtimes()
    with pytest.raises(UsageError, match="^Unknown runtime 'dokker' "):
        make_runtime(Settings(state_dir=tmp_path, runtime="dokker"), Paths(tmp_path))


def test_the_default_runtime_is_wired(tmp_path: Path):
    platform = Platform(Settings(state_dir=tmp_path / "state"))
    assert platform.runtime.name == "sandbox"
