"""Building the resident shim (shim.c) with the host's compiler."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pushd.errors import RuntimeFailure
from pushd.paths import Paths
from pushd.runtime import shimbin


def test_it_compiles_without_a_single_warning(tmp_path):
    result = subprocess.run(shimbin.compile_argv(shutil.which("cc"), tmp_path / "shim"),
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


def test_built_once_under_a_name_keyed_by_the_source(tmp_path):
    paths = Paths(tmp_path)
    built = shimbin.ensure(paths)
    assert built == shimbin.binary_path(paths) and built.stat().st_mode & 0o111
    stamp = built.stat().st_mtime_ns
    assert shimbin.ensure(paths).stat().st_mtime_ns == stamp  # not built again
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # nothing left beside


def test_without_a_compiler_one_line_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shimbin, "SYSTEM_PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeFailure) as err:
        shimbin.ensure(Paths(tmp_path))
    assert "\n" not in str(err.value) and "install gcc and libc6-dev" in str(err.value)


def test_the_forwarder_compiles_without_a_warning_under_a_name_of_its_own(tmp_path):
    result = subprocess.run(
        shimbin.compile_argv(shutil.which("cc"), tmp_path / "fwd", shimbin.FORWARDER),
        capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    paths = Paths(tmp_path)
    assert shimbin.binary_path(paths, shimbin.FORWARDER).name.startswith("pushd-netfwd-")
    assert shimbin.binary_path(paths, shimbin.FORWARDER) != shimbin.binary_path(paths)
