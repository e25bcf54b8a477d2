"""`logs`, `ps`, `ps:restart` and `run` argument handling, on a real store in a temp dir."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pushd.commands.logs import logs
from pushd.commands.ps import oneoff_command, procfile_command, ps_lines, ps_restart
from pushd.commands.registry import Context
from pushd.dynostatus import DynoStatus
from pushd.errors import NotFound, PushdError, UsageError
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


def test_ps_counts_and_lists_the_serving_release_like_heroku():
    since = time.time() - 3700
    rows = [DynoStatus("web.1", "web", "up", since, "gunicorn app:app", 2, port=20001),
            DynoStatus("web.1", "web", "starting", since, "gunicorn new:app", 3),  # rolling out
            DynoStatus("web.1", "web", "up", since, "gunicorn old:app", 1),  # draining
            DynoStatus("worker.1", "worker", "crashed", since, "python3 worker.py", 2)]
    lines = ps_lines(rows, serving=2)
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(since))
    assert lines == ["=== web (1): gunicorn app:app",
                     f"web.1: up {stamp} (~ 1h ago) at 127.0.0.1:20001",
                     f"web.1: draining {stamp} (~ 1h ago)",
                     "",
                     "=== worker (1): python3 worker.py",
                     f"worker.1: crashed {stamp} (~ 1h ago)"]


@pytest.mark.parametrize("line, args, expected", [
    # over SSH: the text after the app, as the user wrote it for a shell
    ("run myapp echo $HOME | wc -c", ["echo", "$HOME", "|", "wc", "-c"], "echo $HOME | wc -c"),
    ("run myapp python3 -c 'print(6*7)'", ["python3", "-c", "print(6*7)"],
     "python3 -c 'print(6*7)'"),
    ("run -a myapp  ls  -l", ["ls", "-l"], "ls  -l"),
    ("run --app=myapp echo \"a  b\"", ["echo", "a  b"], 'echo "a  b"'),
    # local CLI (argv only): words joined, those with whitespace or empty quoted
    (None, ["echo $HOME | wc -c"], "echo $HOME | wc -c"),
    (None, ["echo", "$HOME"], "echo $HOME"),
    (None, ["python3", "-c", "print(1, 2)", ""], "python3 -c 'print(1, 2)' ''"),
])
def test_run_command_text(line, args, expected):
    assert oneoff_command(args, line) == expected


class FakeSupervisor:
    def __init__(self) -> None:
        self.restarts: list[tuple[int, str | None]] = []

    def restart(self, app_id: int, target: str | None = None) -> None:
        self.restarts.append((app_id, target))


def test_restart_refuses_unknown_types_and_dynos(h: Harness):
    h.platform.store.set_formation(h.app.id, {"web": 2, "worker": 0})
    h.platform.supervisor = FakeSupervisor()
    for target in ("foo", "web.3", "worker.1"):
        with pytest.raises(NotFound, match=f"^No such process type or dyno: {target}$"):
            ps_restart(h.ctx, h.app, [target])
    assert h.platform.supervisor.restarts == []
    for target in ("web", "web.2", "worker"):
        ps_restart(h.ctx, h.app, [target])
    ps_restart(h.ctx, h.app, [])
    assert h.platform.supervisor.restarts == [(h.app.id, "web"), (h.app.id, "web.2"),
                                              (h.app.id, "worker"), (h.app.id, None)]


class DroppedChannel:
    """A channel whose connection is gone: paramiko then has no transport for it."""

    closed = False

    def get_transport(self) -> None:
        return None


def test_logs_tail_ends_when_the_ssh_connection_is_gone(h: Harness):
    from pushd.gitserver.session import Session

    session = Session(h.platform)
    session.user = ADMIN
    ctx = session.context(DroppedChannel())
    assert ctx.cancelled() is True  # no AttributeError on the missing transport
    h.log.write("app", "web.1", "hello")
    out: list[str] = []
    logs(Context(h.platform, ADMIN, out.append, out.append, cancelled=ctx.cancelled),
         h.app, ["-t"])  # returns instead of streaming forever
    assert [line.rsplit(": ", 1)[1] for line in out] == ["hello\n"]


def test_restart_needs_the_daemon_and_stops_nothing_without_it(h: Harness, monkeypatch):
    """Commands run in the daemon (SSH, or the local CLI's control socket): a platform
    without its supervisor refuses instead of acting behind its back."""
    h.platform.store.set_formation(h.app.id, {"web": 2})
    monkeypatch.setattr(Platform, "runtime", property(lambda self: pytest.fail("runtime used")))
    with pytest.raises(PushdError, match="^pushd is not running: start it with `pushd up`$"):
        ps_restart(h.ctx, h.app, ["web"])


@pytest.mark.parametrize("text, expected", [
    ("console", "python3 -i app.py"),  # a Procfile type runs its command (Heroku's rule)
    ("console --x", "console --x"),  # more than the type: a command of its own
    ("-- --help", "--help"),  # `--` ends pushd's options; the rest reaches the dyno intact
    ("--  console", "python3 -i app.py"),
    ("--help", "--help"),
])
def test_run_takes_procfile_types_and_a_leading_double_dash(text, expected):
    assert procfile_command(text, {"web": "python3 app.py", "console": "python3 -i app.py"}) \
        == expected
