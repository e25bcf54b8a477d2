"""An app's secrets and source stay with the platform and the app: other local users (and
other apps' uids) read none of it."""

from __future__ import annotations

import json
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
    specs = [p for p in (state / "dynos").glob("*/spec.json") if SECRET in p.read_text()]
    assert specs  # root (pushd) keeps it...
    app_dir = state / "apps" / str(json.loads(specs[0].read_text())["spec"]["app_id"])
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


def as_uid(uid: int, *argv: str):
    return sh(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv])


def web_dyno(state: Path, app: str) -> tuple[Path, int]:
    """The folder of `app`'s running web.1 and the app's uid (from the spec root keeps)."""
    import json

    for spec_file in sorted((state / "dynos").glob("*/spec.json")):
        spec = json.loads(spec_file.read_text())["spec"]
        if spec["app"] == app and spec["process_type"] == "web" and (
                spec_file.parent / "app" / "app.py").exists():
            return spec_file.parent, spec["uid"]
    raise AssertionError(f"no running web dyno of {app}")


def test_another_apps_uid_reads_no_dyno_router_or_status_state(pushd: PushdUnderTest):
    for name in ("hidden", "snoop"):
        repo = pushd.new_app_repo(name, python_app(f"{name} app"))
        assert pushd.push(repo).returncode == 0
    assert pushd.http("hidden").body.startswith("hidden app")
    victim, victim_uid = web_dyno(pushd.state, "hidden")
    _, snoop_uid = web_dyno(pushd.state, "snoop")
    assert victim_uid != snoop_uid
    # the app's own uid reaches its running source (what its sandbox binds)...
    own = as_uid(victim_uid, "cat", str(victim / "app" / "app.py"))
    assert own.returncode == 0 and "hidden app" in own.stdout, own.stderr
    # ...another app's uid reaches none of it, nor the router's files or the status snapshot
    state = pushd.state
    reads = [("ls", victim), ("cat", victim / "app" / "app.py"), ("ls", victim / "app"),
             ("ls", victim / "layer" / "upper"), ("cat", victim / "spec.json"),
             ("cat", state / "dynos" / "status.json"), ("ls", state / "nginx"),
             ("cat", state / "nginx" / "nginx.conf"), ("cat", state / "nginx" / "access.log"),
             ("cat", state / "nginx" / "error.log")]
    for command, path in reads:
        assert path.exists(), path
        result = as_uid(snoop_uid, command, str(path))
        assert result.returncode != 0, f"{path} is readable by another app's uid"
        assert "Permission denied" in result.stderr, (path, result.stderr)
    assert pushd.http("hidden").body.startswith("hidden app")  # and both apps still serve
    assert pushd.http("snoop").body.startswith("snoop app")
