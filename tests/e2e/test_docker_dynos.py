"""Container dynos (`runtime: docker`) through real clients: git push and ssh to a real daemon,
HTTP through nginx, the real Docker engine. The module runs its own daemon; its containers
and release images (found by this state dir's label) are removed after it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from pushd.runtime.docker.client import APP, INSTANCE, instance_id

from ..loopback import loopback_service
from ..polling import wait_until
from .harness import Poller, PushdUnderTest, new_root, python_app, running

SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")


@pytest.fixture(scope="module")
def engine() -> Any:
    from pushd.runtime.docker.client import DockerFailure, connect

    try:
        return connect()
    except DockerFailure as err:  # a missing engine fails the run, never skips it
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="module")
def docked(engine: Any) -> Iterator[PushdUnderTest]:
    root = new_root("pushd-e2e-docker-")
    label = f"{INSTANCE}={instance_id(root / 'state')}"
    try:
        yield from running(root, {
            "runtime": "docker", "boot_timeout": 15, "stop_timeout": 3,
            "drain_seconds": 0.5, "crash_backoff_base": 0.5, "crash_backoff_max": 4,
            "build_timeout": 300, "port_range": [30400, 30599], "uid_base": 21000})
    finally:
        for container in engine.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for image in engine.images.list(filters={"label": label}):
            engine.images.remove(image.id, force=True)


def containers(engine: Any, docked: PushdUnderTest, app: str) -> list[Any]:
    """The app's running dyno containers of this daemon."""
    return engine.containers.list(filters={"label": [
        f"{INSTANCE}={instance_id(docked.state)}", f"{APP}={app}"]})


def deploy(docked: PushdUnderTest, name: str, files: dict[str, str]) -> None:
    repo = docked.new_app_repo(name, files)
    result = docked.push(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def dynos_seen(docked: PushdUnderTest, app: str, tries: int = 40) -> set[str]:
    return {docked.http(app).body.split("dyno=")[-1] for _ in range(tries)}


def run(docked: PushdUnderTest, app: str, code: str) -> Any:
    return docked.ssh("run", app, "python3", "-c", f'"{code}"')


def test_a_python_app_is_served_from_a_container_and_its_output_reaches_logs(engine, docked):
    files = python_app("from a container")
    files["app.py"] = "print('booting in a container', flush=True)\n" + files["app.py"]
    deploy(docked, "drun-web", files)
    assert docked.http("drun-web").body == "from a container dyno=web.1"
    (container,) = containers(engine, docked, "drun-web")
    assert container.name.startswith("pushd.drun-web.web.1.v")
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert int(config["User"].split(":")[0]) >= 21000  # the app's own uid, never root
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["Init"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert not host.get("Binds") and not host.get("PortBindings")
    assert docked.http("drun-web", "/env/HOME").body == "/app"
    result = docked.ssh("config:set", "drun-web", "DRUN_TOKEN=s3cr3t-token")
    assert result.returncode == 0, result.stderr
    docked.wait_for("drun-web", "s3cr3t-token", path="/env/DRUN_TOKEN")
    (container,) = wait_until(lambda: [c for c in containers(engine, docked, "drun-web")
                                       if "DRUN_TOKEN=s3cr3t-token" in c.attrs["Config"]["Env"]])
    # config vars reach the dyno through its environment, never its command line
    assert not any("s3cr3t" in arg for arg in [container.attrs["Path"], *container.attrs["Args"]])
    logs = wait_until(lambda: (lambda out: out if "booting in a container" in out else None)(
        docked.ssh("logs", "drun-web", "-n", "200").stdout))
    assert "app[web.1]: booting in a container" in logs


def test_scale_web_2_runs_two_containers_behind_the_router(engine, docked):
    deploy(docked, "drun-scale", python_app("scaled"))
    assert docked.ssh("ps:scale", "drun-scale", "web=2").returncode == 0
    wait_until(lambda: dynos_seen(docked, "drun-scale") == {"web.1", "web.2"})
    names = sorted(c.labels["io.pushd.dyno"] for c in containers(engine, docked, "drun-scale"))
    assert names == ["web.1", "web.2"]


def test_a_killed_container_is_restarted(engine, docked):
    deploy(docked, "drun-phoenix", python_app("risen"))
    (first,) = containers(engine, docked, "drun-phoenix")
    first.kill()  # `docker kill`: the dyno's whole container dies with SIGKILL
    again = wait_until(lambda: [c for c in containers(engine, docked, "drun-phoenix")
                                if c.id != first.id], timeout=30)
    assert len(again) == 1
    docked.wait_for("drun-phoenix", "risen dyno=web.1")
    platform = docked.ssh("logs", "drun-phoenix", "-s", "pushd", "-n", "200").stdout
    assert "State changed from up to crashed" in platform


def test_containers_outlive_a_killed_daemon_and_are_adopted(engine, docked):
    deploy(docked, "drun-survivor", python_app("still here"))
    before = {c.id for c in containers(engine, docked, "drun-survivor")}
    assert len(before) == 1
    with Poller(docked, "drun-survivor") as poll:
        os.kill(docked.daemon_pid(), signal.SIGKILL)
        wait_until(lambda: poll.total > 20)  # served while no daemon runs
        assert docked.http("drun-survivor").body.startswith("still here")
        docked.up()
        wait_until(lambda: "web.1: up" in docked.ssh("ps", "drun-survivor").stdout)
        start = poll.total
        wait_until(lambda: poll.total > start + 20)
    assert poll.failures == [], poll.failures[:5]
    assert {c.id for c in containers(engine, docked, "drun-survivor")} == before  # adopted
    platform = docked.ssh("logs", "drun-survivor", "-s", "pushd", "-n", "200").stdout
    assert platform.count("State changed from starting to up") == 1  # never restarted


def test_a_dyno_cannot_read_other_apps_nor_reach_docker_nor_host_loopback(engine, docked):
    deploy(docked, "drun-secret", python_app("s", {"secret.txt": "top secret"}))
    deploy(docked, "drun-nosy", python_app("n"))
    state = str(docked.state)
    probe = ("import glob,os;"
             "print(sorted(glob.glob('/app/*'))); "
             f"print('STATE', os.path.exists({state!r}));"
             "print('SECRETS', [os.path.join(d, f) for top in ('/app', '/tmp', '/usr', '/opt',"
             " '/etc', '/run', '/var', '/srv', '/home', '/mnt') for d, _, fs in os.walk(top)"
             " for f in fs if f == 'secret.txt']);"
             f"print('SOCKETS', [s for s in {SOCKETS!r} if os.path.exists(s)])")
    result = run(docked, "drun-nosy", probe)
    assert result.returncode == 0, result.stderr
    assert "/app/app.py" in result.stdout
    assert "STATE False" in result.stdout and "SECRETS []" in result.stdout
    assert "SOCKETS []" in result.stdout
    with loopback_service() as (port, accepted):
        reach = ("import socket\ntry:\n socket.create_connection(('127.0.0.1', "
                 f"{port}), timeout=3).close(); print('reached')\n"
                 "except OSError as err: print('blocked', type(err).__name__)")
        result = docked.ssh("run", "drun-nosy", "python3", "-c", f"\"{reach}\"")
        assert result.returncode == 0, result.stderr
        assert "blocked" in result.stdout and accepted == []


def test_a_one_off_runs_in_a_container_and_passes_its_exit_status(engine, docked):
    deploy(docked, "drun-oneoff", python_app("o", {"data.txt": "from the slug"}))
    result = run(docked, "drun-oneoff",
                 "import os,sys; print(open('data.txt').read(), os.environ['DYNO']);"
                 " print(open('/proc/1/cgroup').read().count('docker') > 0); sys.exit(3)")
    assert result.returncode == 3, result.stderr
    assert "from the slug run." in result.stdout
    assert "True" in result.stdout  # in a container, not a sandbox on the host
    wait_until(lambda: not [c for c in engine.containers.list(all=True, filters={
        "label": [f"{INSTANCE}={instance_id(docked.state)}", "io.pushd.oneoff"]})])


def oneoffs(engine: Any, docked: PushdUnderTest) -> list[Any]:
    # sparse: the engine's list answer alone (its State is the status); a full list inspects
    # each container afterwards and fails on one removed in between
    return engine.containers.list(all=True, sparse=True, filters={"label": [
        f"{INSTANCE}={instance_id(docked.state)}", "io.pushd.oneoff"]})


def test_a_one_off_gets_a_terminal_when_asked_and_ends_with_its_main_process(engine, docked):
    deploy(docked, "drun-tty", python_app("t"))
    on_tty = docked.ssh("run", "drun-tty", "tty; stty size", tty=True, timeout=120)
    assert on_tty.returncode == 0, on_tty.stderr
    assert "/dev/pts/" in on_tty.stdout
    piped = docked.ssh("run", "drun-tty", "tty", timeout=120)
    assert "not a tty" in piped.stdout
    left = docked.ssh("run", "drun-tty", "sleep 3004 & echo one; echo two >&2; exit 7",
                      timeout=120)
    assert left.returncode == 7  # the main command's status, what it left is ended
    assert left.stdout == "one\n" and left.stderr.endswith("two\n")
    wait_until(lambda: not oneoffs(engine, docked), timeout=30)


def test_a_one_off_is_stopped_when_its_client_goes_away(engine, docked):
    deploy(docked, "drun-hangup", python_app("h"))
    client = subprocess.Popen(["ssh", "-F", str(docked.ssh_config), "platform", "run",
                               "drun-hangup", "sleep", "3005"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=docked.env())
    try:
        wait_until(lambda: [c for c in oneoffs(engine, docked) if c.status == "running"],
                   timeout=60)
    finally:
        client.send_signal(signal.SIGKILL)  # the client vanishes without a word
        client.wait()
    wait_until(lambda: not oneoffs(engine, docked), timeout=60)
