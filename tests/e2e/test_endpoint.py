"""A web dyno's endpoint is relayed by its forwarder (pushd-netfwd), not a pasta of its own:
through real nginx, big bodies both ways, an upgraded connection, many requests at once; the
forwarder keeps serving while the daemon is killed, and comes back when it is killed. Its
way out is the shared egress namespace, where the host's loopback is not."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading

import pytest

from pushd.runtime import egress

from ..loopback import loopback_service
from ..polling import wait_until
from .harness import PushdUnderTest

REACH = ("import socket, sys\n"
         "try:\n"
         "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2).close()\n"
         "    print('reached')\n"
         "except OSError as err:\n"
         "    print('blocked', type(err).__name__)\n")

APP = '''\
import hashlib, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, data):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/big/"):
            return self.answer(b"x" * int(self.path[5:]))
        if self.path == "/slow":
            time.sleep(0.3)
            return self.answer(b"slow " + os.environ["DYNO"].encode())
        if self.path == "/ws":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while data := self.connection.recv(65536):
                self.connection.sendall(data)
            return
        self.answer(str(os.getpid()).encode())

    def do_POST(self):
        size = int(self.headers["Content-Length"])
        digest, left = hashlib.sha256(), size
        while left:
            chunk = self.rfile.read(min(left, 65536))
            digest.update(chunk)
            left -= len(chunk)
        self.answer(f"{size} {digest.hexdigest()}".encode())

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def relayed(pushd: PushdUnderTest) -> str:
    pushd.deploy("netfwd", {"app.py": APP, "requirements.txt": "",
                            "Procfile": "web: python3 app.py\n"})
    return "netfwd"


def request(pushd: PushdUnderTest, app: str, method: str, path: str,
            body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", pushd.http_port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Host": f"{app}.localhost"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_big_bodies_an_upgrade_and_many_requests_at_once_pass_through(pushd, relayed):
    status, body = request(pushd, relayed, "GET", f"/big/{20 << 20}")
    assert status == 200 and len(body) == 20 << 20 and body.count(b"x") == len(body)
    upload = os.urandom(8 << 20)
    status, body = request(pushd, relayed, "POST", "/echo", upload)
    assert (status, body) == (200, f"{len(upload)} {hashlib.sha256(upload).hexdigest()}"
                              .encode())
    # an upgraded connection (websockets' way): bytes both ways after the 101
    with socket.create_connection(("127.0.0.1", pushd.http_port), timeout=30) as sock:
        sock.sendall(f"GET /ws HTTP/1.1\r\nHost: {relayed}.localhost\r\nUpgrade: echo\r\n"
                     "Connection: Upgrade\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        for word in (b"ping", b"x" * 200_000):
            sock.sendall(word)
            got = b""
            while len(got) < len(word):
                got += sock.recv(65536)
            assert got == word
    results: list[tuple[int, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(
        request(pushd, relayed, "GET", "/slow"))) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(200, b"slow web.1")] * 40


def forwarder(pushd: PushdUnderTest, app: str) -> dict:
    for spec_file in (pushd.state / "dynos").glob("*/spec.json"):
        if json.loads(spec_file.read_text())["spec"]["app"] == app:
            found = spec_file.with_name("forwarder.json")
            if found.exists() and not spec_file.with_name("exit.json").exists():
                return json.loads(found.read_text())
    raise AssertionError(f"no running web dyno of {app}")


def serves(pushd: PushdUnderTest, app: str) -> bytes | None:
    try:
        status, body = request(pushd, app, "GET", "/")
    except OSError:
        return None
    return body if status == 200 else None


def test_the_forwarder_outlives_the_daemon_and_comes_back_when_killed(pushd, relayed):
    app_pid = serves(pushd, relayed)
    assert app_pid
    before = forwarder(pushd, relayed)
    os.kill(pushd.daemon_pid(), signal.SIGKILL)
    assert serves(pushd, relayed) == app_pid  # routing goes on while pushd is down
    pushd.up()
    wait_until(lambda: "web.1: up" in pushd.ssh("ps", relayed).stdout, timeout=30)
    assert forwarder(pushd, relayed) == before  # adopted, not started again
    os.kill(before["pid"], signal.SIGKILL)
    # its shim starts it again on the same endpoint; the dyno itself goes on
    wait_until(lambda: forwarder(pushd, relayed)["pid"] != before["pid"]
               and serves(pushd, relayed), timeout=30)
    assert serves(pushd, relayed) == app_pid
    status = open(f"/proc/{forwarder(pushd, relayed)['pid']}/status").read()
    assert "CapEff:\t0000000000000000" in status  # the app's uid, nothing more


def test_a_dyno_goes_out_through_the_shared_egress_never_to_the_hosts_loopback(pushd, relayed):
    """The dyno's own namespace (entered from outside, as root): its route out is its veth
    into the egress namespace; the host's loopback services and the dyno endpoints there
    are not in it."""
    folder = next(f.parent for f in (pushd.state / "dynos").glob("*/spec.json")
                  if json.loads(f.read_text())["spec"]["app"] == relayed
                  and not f.with_name("exit.json").exists())
    init = json.loads((folder / "net.json").read_text())["init"]
    endpoint = json.loads((folder / "spec.json").read_text())["endpoint"][1]
    inside = ["nsenter", f"--net=/proc/{init}/ns/net", "--"]
    routes = subprocess.run([*inside, "ip", "route"], capture_output=True, text=True).stdout
    assert routes.startswith("default via 198.18.") and "dev eth0" in routes, routes
    holder, pasta = egress.processes(pushd.state)  # one pasta for every dyno
    assert open(f"/proc/{pasta}/comm").read().startswith("pas")
    with loopback_service() as (port, accepted):
        for target in (port, endpoint, pushd.http_port, pushd.ssh_port):
            probe = subprocess.run([*inside, "python3", "-c", REACH, str(target)],
                                   capture_output=True, text=True)
            assert probe.stdout.startswith("blocked"), (target, probe.stdout, probe.stderr)
        assert accepted == []
