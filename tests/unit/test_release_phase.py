"""The release phase's pieces alone: what runs in which order, its client end (lines to the
push, kept output, the deadline), and the checks:set values."""

from __future__ import annotations

import pytest

from pushd import maintenance
from pushd.appjson import AppJson
from pushd.errors import InvalidValue
from pushd.models import Release
from pushd.releasephase import KEPT_OUTPUT, PhaseIO, commands


def release(types: dict[str, str]) -> Release:
    return Release(1, 3, "s1", {}, types, "Deploy", "alice", 0.0, "releasing", "abc")


def test_predeploy_then_release_command():
    manifest = AppJson(predeploy="./pre", postdeploy="./post")
    assert commands(release({"web": "x", "release": "./migrate"}), manifest) == [
        ("predeploy script", "./pre"), ("release command", "./migrate")]
    assert commands(release({"web": "x"}), None) == []


def test_phase_io_streams_lines_keeps_output_and_ends_at_its_deadline():
    said, logged = [], []
    io = PhaseIO(said.append, deadline=float("inf"), log=logged.append)
    io.write(b"migrating\nhalf")
    io.write_err(b" a line\x1b[31m\n")
    io.flush()
    assert said == ["       migrating\n", "       half a line?[31m\n"]
    assert logged == ["migrating", "half a line\x1b[31m"]  # the app log escapes its own way
    assert bytes(io.kept) == b"migrating\nhalf a line\x1b[31m\n"
    assert io.read(10) == b"" and not io.gone()
    big = PhaseIO(None, deadline=0.0)
    big.write(b"x" * (KEPT_OUTPUT + 10))
    assert len(big.kept) == KEPT_OUTPUT and big.gone() and big.timed_out


def test_checks_set_values_are_checked():
    assert maintenance.parse_setting("wait-to-retire", "10") == 10.0
    assert maintenance.parse_setting("attempts", "3") == 3
    assert maintenance.parse_setting("worker-overlap", "false") is False
    for key, value in (("attempts", "0"), ("attempts", "x"), ("wait-to-retire", "1e9"),
                       ("worker-overlap", "maybe"), ("colour", "1")):
        with pytest.raises(InvalidValue):
            maintenance.parse_setting(key, value)
