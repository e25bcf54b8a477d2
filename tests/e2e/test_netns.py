"""Each dyno and one-off in a network of its own: a hostile tenant (a `user` key) against
another tenant, the host's loopback services and the platform's ports. Real daemon, ssh, git,
nginx; the attacker is tests/fixtures/apps/netns-attacker.

This module runs its own daemon on a narrow dyno port range (so the attacker can try to hold
all of it) and its own app uid span (its firewall table concerns only its own apps)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from ..loopback import loopback_service
from ..polling import wait_until
from .harness import PushdUnderTest, new_root, python_app, running

ATTACKER = Path(__file__).resolve().parent.parent / "fixtures" / "apps" / "netns-attacker"
RANGE_SIZE = 24


def free_range(size: int) -> tuple[int, int]:
    """`size` consecutive loopback ports free right now."""
    for low in range(30000, 32768 - size, size):  # below the kernel's ephemeral ports
        taken = []
        try:
            for port in range(low, low + size):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return low, low + size - 1
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise AssertionError("no free port range")


@pytest.fixture(scope="module")
def net():
    yield from running(new_root("pushd-e2e-netns-"), {
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5,
        "crash_backoff_base": 0.5, "crash_backoff_max": 4, "build_timeout": 300,
        "port_range": list(free_range(RANGE_SIZE)), "uid_base": 20000})


def attacker_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in ATTACKER.iterdir()}


def logs(pushd: PushdUnderTest, app: str, user: str, *args: str) -> str:
    return pushd.ssh("logs", app, "-n", "500", *args, user=user).stdout


def reach(pushd: PushdUnderTest, app: str, user: str, host: str, port: int) -> str:
    result = pushd.ssh("run", app, "python3", "reach.py", host, str(port), user=user)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def attacker(net: PushdUnderTest) -> str:
    net.deploy("squatter", attacker_files(), user="bob")
    # no web in its Procfile: a first deploy starts nothing until scaled, as on Heroku
    scaled = net.ssh("ps:scale", "squatter", "worker=1", "grab=1", user="bob")
    assert scaled.returncode == 0, scaled.stderr
    return "squatter"


def test_a_squatter_holding_the_port_range_never_gets_another_apps_requests(net, attacker):
    low, high = net.settings["port_range"]
    net.deploy("victim", python_app("victim"), user="alice")
    assert net.ssh("config:set", attacker, f"SQUAT_LOW={low}", f"SQUAT_HIGH={high}",
                   user="bob").returncode == 0
    # it holds the whole range, in its own network (on a shared one, all but the victim's)
    wait_until(lambda: f"holding {RANGE_SIZE} ports of {low}-{high}"
               in logs(net, attacker, "bob", "-p", "worker"), timeout=60)
    bodies: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                bodies.append(net.http("victim", timeout=5).body)
            except OSError as err:
                bodies.append(f"error {err}")

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for _ in range(3):  # each restart binds a new endpoint: the squatter's moment
            before = net.http("victim", "/boot").body
            assert net.ssh("ps:restart", "victim", user="alice").returncode == 0
            wait_until(lambda b=before: net.http("victim", "/boot").body not in (b, ""),
                       timeout=60)
    finally:
        stop.set()
        thread.join()
    served = [b for b in bodies if b.startswith("victim")]
    assert served and len(served) == len(bodies) - sum(b.startswith("error") for b in bodies)
    assert not [b for b in bodies if "attacker" in b]
    assert "H10" not in "".join(bodies)
    assert net.http("victim").body == "victim dyno=web.1"


def test_a_dyno_cannot_reach_the_hosts_loopback_services_nor_the_platforms_ports(net,
                                                                                attacker):
    with loopback_service() as (port, accepted):
        # a service on the host's loopback, then the platform's SSH port and router
        for host, target in (("127.0.0.1", port), ("::1", port), ("127.0.0.1", net.ssh_port),
                             ("127.0.0.1", net.http_port), ("::1", net.http_port)):
            assert reach(net, attacker, "bob", host, target).startswith("blocked"), (host,
                                                                                    target)
        assert accepted == []
        # and the host really serves them (the test is not vacuous)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        wait_until(lambda: accepted)
    assert net.http("victim").status in (200, 404)  # the router still serves


def test_a_dyno_cannot_take_the_ssh_port_while_the_daemon_is_down(net, attacker):
    assert net.ssh("config:set", attacker, f"GRAB_PORT={net.ssh_port}",
                   user="bob").returncode == 0
    def grabber_of_this_release_runs() -> bool:
        ps = net.ssh("ps", attacker, user="bob").stdout
        return "grab.1: up" in ps and "draining" not in ps

    wait_until(grabber_of_this_release_runs, timeout=60)
    net.stop(everything=False)  # dynos keep running; the SSH port is free on the host
    # the grabber tries every 10 ms: it gets the port (in its own network only), and says so
    # (read from the app logs' files: the CLI's `logs` needs the daemon)
    wait_until(lambda: any("grabbed" in line and f":{net.ssh_port}" in line
                           for log in net.state.glob("apps/*/logs/app.log")
                           for line in log.read_text().splitlines()), timeout=60)
    net.up()  # fails if the port is taken on the host
    result = net.ssh("apps", user="alice")
    assert result.returncode == 0, result.stderr
    assert "victim" in result.stdout


def test_no_free_port_fails_that_dyno_alone_and_other_deploys_go_on(net, attacker):
    low, high = net.settings["port_range"]
    held = []  # every port of the range the victim's dyno does not hold, by a host process
    for port in range(low, high + 1):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ports in TIME_WAIT too
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)
        except OSError:
            sock.close()
    try:
        assert net.ssh("ps:restart", "victim", "web", user="alice").returncode == 0
        wait_until(lambda: f"Failed to start: No free port left in {low}-{high}" in logs(
            net, "victim", "alice", "-s", "pushd"), timeout=60)
        # another tenant's release still rolls out, and the victim's old dyno still serves
        result = net.ssh("config:set", attacker, "UNRELATED=1", user="bob")
        assert result.returncode == 0 and "done, v" in result.stdout, result.stderr
        assert net.http("victim").body == "victim dyno=web.1"
    finally:
        for sock in held:
            sock.close()
    # ports free again: the restart completes on its own
    wait_until(lambda: "State changed from starting to up" in logs(
        net, "victim", "alice", "-s", "pushd", "-n", "3"), timeout=60)
    assert net.http("victim").body == "victim dyno=web.1"


def test_a_dyno_has_the_hosts_routes_for_its_way_out(net, attacker):
    """Outbound: the dyno's interface and routes are the host's (pasta). No packet leaves this
    host in tests, so no outside server is contacted: the routes are compared instead."""
    host = {tuple(line.split()[i] for i in (0, 1, 7))
            for line in Path("/proc/net/route").read_text().splitlines()[1:]}
    result = net.ssh("run", attacker, "python3", "routes.py", user="bob")
    assert result.returncode == 0, result.stderr
    inside = {tuple(line.split()) for line in result.stdout.splitlines()}
    default = {r[1:] for r in host if r[1] == "00000000"}
    assert default and default <= {r[1:] for r in inside}
