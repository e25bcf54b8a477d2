"""An app's secrets and source stay with the platform and the app: other local users (and
other apps' uids) read none of it."""

from __future__ import annotations

import os
from pathlib import Path

from .harness import PushdUnderTest, python_app, sh

SECRET = "s3cr3t-value-for-privacy-test"


def as_nobody(*argv: str):
    return sh(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv])


def test_config_and_source_are_private(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("private", python_app("private app"))
    assert pushd.push(repo).returncode == 0
    assert pushd.ssh("config:set", "private", f"TOKEN={SECRET}").returncode == 0
    assert pushd.http("private", "/env/TOKEN").body == SECRET  # the app itself has it
    # no command line on the machine carries it (every user can read those)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert SECRET.encode() not in cmdline, cmdline[:200]
    state = pushd.state
    app_dir = next((state / "apps").iterdir())
    specs = [p for p in (state / "dynos").glob("*/spec.json") if SECRET in p.read_text()]
    assert specs  # root (pushd) keeps it...
    # ...and nobody else reads it, nor the app's repo, slugs, logs or the database
    private = [specs[0], state / "pushd.db", state / "pushd.db-wal", app_dir / "repo.git",
               *app_dir.glob("slugs/*"), app_dir / "logs" / "app.log", state / "pushd.log"]
    for path in private:
        if path.is_dir():
            result = as_nobody("ls", str(path))
        else:
            result = as_nobody("cat", str(path))
        assert result.returncode != 0, f"{path} is readable by nobody"
        assert "Permission denied" in result.stderr, (path, result.stderr)
    assert as_nobody("ls", str(state / "apps")).returncode != 0
    assert as_nobody("ls", str(state / "dynos")).returncode != 0
