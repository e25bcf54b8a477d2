"""The router dies (issue 8): pushd's nginx is watched like a dyno. A killed master is
started again at once, its orphaned workers cleared (pushd's own only: another nginx on the
machine is left alone), the outage is said in pushd.log and `pushd status`; a port another
process holds makes `pushd up` fail with one line naming that process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.harness import PUSHD, Poller, PushdUnderTest, free_port, new_root, python_app, sh
from ..polling import wait_until
from .conftest import report


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")


def master_of(platform: PushdUnderTest) -> int:
    try:
        return int((platform.state / "nginx" / "nginx.pid").read_text())
    except (OSError, ValueError):  # nginx is writing it
        return 0


@pytest.fixture
def other_nginx() -> Iterator[tuple[int, int]]:
    """An nginx that is not pushd's, on its own port: (master pid, port). It must survive."""
    prefix = new_root("other-nginx-")
    port = free_port()
    (prefix / "nginx.conf").write_text(
        f"worker_processes 2;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ access_log {prefix}/access.log; server {{ listen 127.0.0.1:{port}; "
        "location / { return 200 \"other nginx\\n\"; } } }\n")
    sh(["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")], check=True)
    master = wait_until(lambda: (prefix / "nginx.pid").exists()
                        and int((prefix / "nginx.pid").read_text()))
    yield master, port
    os.kill(master, signal.SIGQUIT)
    wait_until(lambda: gone(master))
    subprocess.run(["rm", "-rf", str(prefix)], check=False)


def other_answers(port: int) -> bool:
    done = sh(["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port}/"])
    return done.stdout == "other nginx\n"


@pytest.mark.parametrize("kill", ["master", "master-and-workers"])
def test_a_killed_router_is_restarted_and_only_its_own_orphans_are_cleared(
        platform: PushdUnderTest, other_nginx: tuple[int, int], kill: str):
    other_master, other_port = other_nginx
    other_workers = wait_until(lambda: children(other_master))  # forked after the pid file
    assert other_answers(other_port)
    platform.deploy("faults-router", python_app("routed"))
    platform.wait_for("faults-router", "routed")
    master = master_of(platform)
    workers = wait_until(lambda: children(master))

    with Poller(platform, "faults-router", body="routed", every=0.01,
                timeout=2) as downtime:
        for pid in [master, *workers] if kill == "master-and-workers" else [master]:
            os.kill(pid, signal.SIGKILL)
        new_master = wait_until(lambda: (pid := master_of(platform)) != master and pid)
        platform.wait_for("faults-router", "routed")
    assert "nginx: master process" in title(new_master)
    wait_until(lambda: all(gone(pid) for pid in workers))  # orphans cleared, ports freed
    assert not gone(other_master)  # the other nginx and its workers were never touched
    assert all(not gone(pid) for pid in other_workers)
    assert other_answers(other_port)
    log = wait_until(lambda: "router: nginx restarted after an outage of" in (
        text := (platform.state / "pushd.log").read_text()) and text)
    assert "router: nginx is not running (its master died); restarting it" in log
    status = sh([PUSHD, "status"], env=platform.env())
    line = next(x for x in status.stdout.splitlines() if x.startswith("Router:"))
    assert line.startswith(f"Router:     nginx, pid {new_master} (last outage 20"), line
    assert line.endswith(" s)"), line
    # and the router still follows changes: a deploy after the restart serves
    repo = platform.root / "src" / "faults-router-admin"
    platform.commit(repo, python_app("after restart"))
    assert platform.push(repo).returncode == 0
    platform.wait_for("faults-router", "after restart")
    report(f"nginx {kill} killed (SIGKILL)", downtime.seconds, "none",
           f"{downtime.failed} failed requests (refused/reset) until the restart")


@pytest.mark.parametrize("which", ["http_port", "ssh_port"])
def test_up_names_the_process_holding_its_port(which: str):
    root = new_root("pushd-faults-port-")
    platform = PushdUnderTest(root)
    port = getattr(platform, which)
    holder = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command = f"{sys.executable} -m http.server --bind 127.0.0.1 {port}"
    try:
        wait_until(lambda: sh(["curl", "-s", "-o", "/dev/null", "--max-time", "2",
                               f"http://127.0.0.1:{port}/"]).returncode == 0)
        with pytest.raises(AssertionError) as failed:
            platform.start()
        lines = [x for x in str(failed.value).splitlines() if "pushd did not come up" in x]
        assert len(lines) == 1, str(failed.value)
        if which == "http_port":
            assert lines[0] == (f" !    pushd did not come up: [emerg] bind() to 127.0.0.1:{port} "
                                "failed (98: Address already in use): port "
                                f"{port} is held by pid {holder.pid} ({command})")
        else:
            assert lines[0] == (f" !    pushd did not come up: SSH port {port}: Address already "
                                f"in use: held by pid {holder.pid} ({command})")
        assert not (platform.state / "pushd.pid").exists()
    finally:
        holder.kill()
        holder.wait()
    report(f"{which} held by another process at `pushd up`", None, "none", lines[0].strip())
    platform.up()  # the port is free again: up works
    assert platform.daemon_pid()
    platform.stop(everything=True)
    subprocess.run(["rm", "-rf", str(root)], check=False)
