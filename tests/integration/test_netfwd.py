"""A dyno's network without a pasta of its own: the endpoint relayed by pushd-netfwd, the
way out through the shared egress namespace (runtime/netns.forward, runtime/egress.py).
Real bwrap sandboxes; nothing but loopback is ever contacted from the host, and the
"outside" below is a network namespace of the test's own, wired to the egress namespace."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from pushd.paths import Paths
from pushd.ports import port_free
from pushd.runtime import egress, shimbin
from pushd.runtime.netns import Forward, NetnsError, detach, forward

from ..polling import wait_until
from .test_netns import UID, Sandbox, free_port

EGRESS_UID = UID - 110  # as uid_base is to app uids
ECHO = ("import hashlib, os, socket, threading\n"
        "srv = socket.create_server(('127.0.0.1', int(os.environ['PORT'])), backlog=128)\n"
        "def serve(conn):\n"
        "    digest, size = hashlib.sha256(), 0\n"
        "    while chunk := conn.recv(65536):\n"
        "        digest.update(chunk); size += len(chunk)\n"
        "    conn.sendall(f'{size} {digest.hexdigest()}\\n'.encode() + b'x' * size)\n"
        "    conn.close()\n"
        "while True:\n"
        "    threading.Thread(target=serve, args=(srv.accept()[0],)).start()\n")
SLEEP = "import time; time.sleep(120)"
LISTEN_ANY = ("import socket\n"
              "s = socket.create_server(('0.0.0.0', 8000)); print('ready', flush=True)\n"
              "while True: s.accept()[0].close()\n")


@pytest.fixture
def boxes():
    made: list[Sandbox] = []
    yield lambda *a, **kw: made.append(Sandbox(*a, **kw)) or made[-1]
    for box in made:
        box.close()


@pytest.fixture
def root(tmp_path):
    yield tmp_path
    egress.stop(tmp_path)
    assert egress.processes(tmp_path) == []


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> str:
    return str(shimbin.ensure(Paths(tmp_path_factory.mktemp("state")), shimbin.FORWARDER))


def exchange(port: int, payload: bytes) -> bytes:
    """Send `payload`, half-close, read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(port: int) -> bool:
    try:
        return exchange(port, b"hi").startswith(b"2 ")
    except OSError:
        return False  # the server inside is not listening yet: the forwarder closed


def test_the_forwarder_relays_half_closes_large_bodies_and_many_connections(boxes, binary):
    port = free_port()
    box = boxes(ECHO, env={"PORT": "5000"})
    handle = forward(box.init, UID, Forward(port, 5000), binary)
    try:
        wait_until(lambda: answers(port), timeout=10)
        status = Path(f"/proc/{handle.pid}/status").read_text()
        assert f"Uid:\t{UID}\t{UID}\t{UID}\t{UID}" in status  # the app's uid
        assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
        big = os.urandom(8 << 20)  # both ways, past every buffer
        answer = exchange(port, big)
        head, _, body = answer.partition(b"\n")
        assert head == f"{len(big)} {hashlib.sha256(big).hexdigest()}".encode()
        assert body == b"x" * len(big)
        results: list[bytes] = []

        def one(i: int) -> None:
            results.append(exchange(port, str(i).encode() * 1000))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.split(b" ")[0] for r in results) == sorted(
            str(len(str(i)) * 1000).encode() for i in range(100))
    finally:
        detach(handle)
    assert port_free(port)


def test_nothing_listening_inside_closes_the_connection(boxes, binary):
    port = free_port()
    box = boxes(SLEEP)
    handle = forward(box.init, UID, Forward(port, 5000), binary)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.settimeout(10)
            assert sock.recv(10) == b""  # closed, as nginx sees a refused upstream
    finally:
        detach(handle)


def test_a_taken_host_port_fails_with_its_reason(boxes, binary):
    box = boxes(SLEEP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NetnsError, match="Address already in use"):
            forward(box.init, UID, Forward(port, 5000), binary)


def in_netns(pid: int, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv],
                          capture_output=True, text=True, timeout=30, **kwargs)


CONNECT = ("import socket, sys\n"
           "try:\n"
           "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
           "    print('reached', s.recv(100).decode())\n"
           "except OSError as err:\n"
           "    print('blocked', type(err).__name__)\n")


def test_dynos_go_out_through_one_egress_and_never_reach_each_other(root, boxes):
    first, second = boxes(SLEEP), boxes(LISTEN_ANY)
    a, b = (egress.join(root, EGRESS_UID, box.init) for box in (first, second))
    assert a != b
    holder, pasta = egress.processes(root)
    assert "--no-map-gw" in Path(f"/proc/{pasta}/cmdline").read_text().split("\0")
    # one pasta for both, as the egress uid (refused the host's own addresses by the
    # firewall, as app uids are)
    assert f"Uid:\t{EGRESS_UID}\t" in Path(f"/proc/{pasta}/status").read_text()
    inside = in_netns(first.init, "ip", "route").stdout
    assert f"default via {egress.addresses(0)[0]}" in inside
    # the egress namespace routes out through pasta with the host's routes
    host_default = {line.split()[2] for line in Path("/proc/net/route").read_text()
                    .splitlines()[1:] if line.split()[1] == "00000000"}
    routes = in_netns(holder, "cat", "/proc/net/route").stdout.splitlines()[1:]
    assert host_default <= {line.split()[2] for line in routes if line.split()[1] == "00000000"}
    rules = in_netns(holder, "nft", "list", "ruleset").stdout
    assert 'iifname "pd*" oifname != "pd*" masquerade' in rules, rules
    # the second dyno listens on every address of its own: the first cannot reach it
    assert second.proc.stdout.readline().strip() == "ready"
    probe = in_netns(first.init, "python3", "-c", CONNECT, b, "8000").stdout
    assert probe.startswith("blocked"), probe
    # nor the egress namespace's own addresses (the host's address pasta copied among them)
    for line in in_netns(holder, "ip", "-o", "-4", "addr").stdout.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            probe = in_netns(first.init, "python3", "-c", CONNECT, address, "22").stdout
            assert probe.startswith("blocked"), (address, probe)


def test_a_dyno_reaches_an_outside_server_masqueraded(root, boxes):
    """An "outside" of the test's own: a namespace wired to the egress namespace (198.19/30,
    never on the host). The dyno's connection goes out, from the egress's address."""
    box = boxes(SLEEP)
    egress.join(root, EGRESS_UID, box.init)
    holder = egress.processes(root)[0]
    outside = subprocess.Popen(["unshare", "--net", "--", "python3", "-c", (
        "import socket, subprocess, sys\n"
        "sys.stdin.readline()\n"  # wired
        "s = socket.create_server(('198.19.255.2', 8000)); print('ready', flush=True)\n"
        "c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: os.stat(f"/proc/{outside.pid}/ns/net").st_ino
                   != os.stat("/proc/self/ns/net").st_ino, timeout=10, interval=0.01)
        assert in_netns(holder, "ip", "-batch", "-", input=(
            f"link add out0 type veth peer name eth0 netns {outside.pid}\n"
            "addr add 198.19.255.1/30 dev out0\nlink set out0 up\n")).returncode == 0
        assert in_netns(outside.pid, "ip", "-batch", "-", input=(
            "addr add 198.19.255.2/30 dev eth0\nlink set eth0 up\n")).returncode == 0
        outside.stdin.write("go\n")
        outside.stdin.flush()
        assert outside.stdout.readline().strip() == "ready"
        probe = in_netns(box.init, "python3", "-c", CONNECT, "198.19.255.2", "8000").stdout
        assert probe.strip() == "reached 198.19.255.1"  # masqueraded: not the dyno's address
    finally:
        outside.kill()
        outside.wait()


def test_a_killed_egress_pasta_comes_back_for_the_same_dynos(root, boxes):
    box = boxes(SLEEP)
    egress.join(root, EGRESS_UID, box.init)
    holder, pasta = egress.processes(root)
    os.kill(pasta, 9)
    wait_until(lambda: len(egress.processes(root)) == 1, timeout=10)
    assert egress.revive(root, EGRESS_UID)
    assert egress.processes(root)[0] == holder and len(egress.processes(root)) == 2
    assert not egress.revive(root, EGRESS_UID)  # nothing to do


def test_the_egress_ends_with_the_last_dyno_of_its_state_dir(root, boxes):
    box = boxes(SLEEP)
    (root / "dynos" / "1-web.1-x").mkdir(parents=True)  # a dyno still recorded
    egress.join(root, EGRESS_UID, box.init)
    assert not egress.stop_when_unused(root) and len(egress.processes(root)) == 2
    (root / "dynos" / "1-web.1-x").rmdir()  # the runtime removed it
    assert egress.stop_when_unused(root)
    assert egress.processes(root) == []
