"""The audit trail: every command through `dispatch` recorded with who, what (values
redacted), app and outcome; `events` shows admins everything and users their apps' entries."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pushd.governance import audit
from tests.unit.test_command_dispatch import ALICE, BOB, Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path).deployed({"web": 1, "worker": 0})


def lines(h: Harness) -> list[dict]:
    path = h.platform.paths.audit_log
    return [json.loads(raw) for raw in path.read_text().splitlines()]


def test_every_command_is_recorded_without_a_value(h: Harness):
    assert h.run("config:set", "myapp", "SECRET=hunter2", "B=two words") == 0, h.err
    assert h.run("config:get", "SECRET", "-a", "myapp", user=BOB) != 0  # bob: no access
    assert h.run("nosuch") == 2
    raw = h.platform.paths.audit_log.read_text()
    assert "hunter2" not in raw and "two words" not in raw
    entries = lines(h)
    assert [e["command"] for e in entries] == [
        "config:set myapp SECRET=[redacted] B=[redacted]", "config:get SECRET -a myapp",
        "nosuch"]
    assert [(e["actor"], e["fingerprint"], e["app"], e["outcome"]) for e in entries] == [
        ("admin", "SHA256:admin", "myapp", "ok"),
        ("bob", "SHA256:bob", "myapp", "failed (status 1)"),
        ("admin", "SHA256:admin", "", "failed (status 2)")]
    assert stat.S_IMODE(os.stat(h.platform.paths.audit_log).st_mode) == 0o600


def test_urls_lose_their_password_and_control_characters_are_shown_escaped():
    assert audit.redact(["providers:add", "postgres://admin:s3cret@db:5432/x"]) == (
        "providers:add postgres://admin:[redacted]@db:5432/x")
    assert audit.redact(["--password=x", "plain"]) == "--password=[redacted] plain"
    entry = audit.Entry(0, "a", "", "ps\x1b[2Jx", "myapp", "ok")
    assert "\x1b" not in entry.line() and "\\x1b[2Jx" in entry.line()


def test_events_shows_users_only_their_apps(h: Harness):
    other = h.platform.store.create_app("bobsapp", "bob")
    h.platform.paths.app_dir(other.id).mkdir()
    assert h.run("config:set", "myapp", "A=1", user=ALICE) == 0, h.err
    assert h.run("config:set", "bobsapp", "B=1", user=BOB) == 0, h.err
    assert h.run("events", user=ALICE) == 0, h.err
    assert "myapp" in h.out and "bobsapp" not in h.out and "A=[redacted]" in h.out
    assert h.run("events", "-a", "bobsapp", user=ALICE) == 1
    assert h.run("events", "-n", "3") == 0, h.err  # admin: everything, newest last
    shown = h.out.splitlines()
    assert len(shown) == 3 and "bob (SHA256:bob)  config:set bobsapp B=[redacted]" in shown[0]
    assert shown[2].endswith("alice (SHA256:alice)  events -a bobsapp  app=bobsapp  "
                             "failed (status 1)")
    assert h.run("events", "-a", "myapp", "-n", "0") == 2


def test_the_file_is_rotated_once_it_is_full(h: Harness, monkeypatch):
    monkeypatch.setattr(audit, "MAX_BYTES", 600)
    for n in range(12):
        assert h.run("config:set", "myapp", f"K{n}=v") == 0
    rotated = h.platform.paths.audit_log.with_name("audit.log.1")
    assert rotated.exists() and h.platform.paths.audit_log.stat().st_size <= 600
    commands = [e.command for e in audit.Trail(h.platform.paths.audit_log).entries()]
    assert commands[-1] == "config:set myapp K11=[redacted]"
