"""`logs`, `ps`, `ps:restart` and `run` argument handling, on a real store in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushd.commands.logs import logs
from pushd.commands.registry import Context
from pushd.errors import UsageError
from pushd.logs import AppLog
from pushd.models import Key
from pushd.platform import Platform
from pushd.settings import Settings

ADMIN = Key(name="admin", role="admin", public_key="", fingerprint="")


class Harness:
    def __init__(self, root: Path) -> None:
        self.platform = Platform(Settings(state_dir=root / "state"))
        self.app = self.platform.store.create_app("myapp", "admin")
        self.platform.paths.app_dir(self.app.id).mkdir(parents=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ctx = Context(self.platform, ADMIN, self.stdout.append, self.stderr.append)

    @property
    def log(self) -> AppLog:
        return AppLog(self.platform.paths.log_file(self.app.id))


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_logs_n_zero_prints_nothing_and_negative_is_refused(h: Harness):
    for i in range(3):
        h.log.write("app", "web.1", f"line {i}")
    logs(h.ctx, h.app, ["-n", "0"])
    assert h.stdout == []
    logs(h.ctx, h.app, ["-n", "2"])
    assert [line.rsplit(": ", 1)[1] for line in h.stdout] == ["line 1\n", "line 2\n"]
    with pytest.raises(UsageError):
        logs(h.ctx, h.app, ["-n", "-1"])
