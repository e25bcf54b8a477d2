"""Limits a noisy or hostile tenant cannot escape: processes per dyno (a fork bomb stays in
its dyno), floods of SSH logins and slow HTTP clients (the platform keeps serving others)."""

from __future__ import annotations

import contextlib
import socket
import threading

from ..polling import wait_until
from .harness import PushdUnderTest, python_app

SPAWNER = '''\
import subprocess
children = []
try:
    for _ in range(400):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as err:
    print("refused after", len(children), type(err).__name__)
else:
    print("started all", len(children))
for child in children:
    child.kill()
'''


def test_a_dyno_cannot_start_more_than_its_process_limit(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("forky", python_app("forky", {"spawn.py": SPAWNER}))
    assert pushd.push(repo).returncode == 0
    web = pushd.ssh("run", "forky", "python3", "spawn.py")
    assert web.returncode == 0, web.stderr
    words = web.stdout.split()
    assert words[:2] == ["refused", "after"], web.stdout
    assert 200 <= int(words[2]) < 256  # 256 tasks per dyno, the shell and python included
    assert pushd.http("forky").body.startswith("forky")  # the app itself is fine


class Conn:
    """One flood connection: what the server sent it, and whether the server closed it."""

    def __init__(self, source: str, port: int, first: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind((source, 0))  # another 127/8 address than the real clients'
        self.sock.connect(("127.0.0.1", port))
        if first:
            self.sock.sendall(first)
        self.received = 0
        self.closed = False

    def poll(self) -> bool:
        """True once the server closed it (EOF or reset)."""
        try:
            while not self.closed:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                self.received += len(data)
                self.closed = not data
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True
        return self.closed


def flood(source: str, port: int, count: int, first: bytes = b"") -> list[Conn]:
    """`count` loopback connections from `source`, each sending `first` and then nothing."""
    return [Conn(source, port, first) for _ in range(count)]


def all_closed(conns: list[Conn]) -> bool:
    return all([conn.poll() for conn in conns])


def close_all(conns: list[Conn]) -> None:
    for conn in conns:
        conn.sock.close()


def test_an_ssh_connection_flood_leaves_the_control_plane_answering(pushd: PushdUnderTest):
    silent = flood("127.0.0.2", pushd.ssh_port, 300)  # never say a word
    stalled = flood("127.0.0.3", pushd.ssh_port, 30, b"SSH-2.0-stall\r\n")  # then nothing
    try:
        # a real client from elsewhere gets its answer while the flood holds on
        answer = pushd.ssh("apps")
        assert answer.returncode == 0, answer.stderr
        # every flood connection is closed: the few an address may hold once the auth timeout
        # (5 s here) passes, well before paramiko's own (15 s and more)...
        wait_until(lambda: all_closed(silent + stalled), timeout=13)
    finally:
        close_all(silent + stalled)
    # ...the rest at once, refused before the server even said hello
    for conns in (silent, stalled):
        refused = [conn for conn in conns if conn.received == 0]
        assert len(conns) - 10 <= len(refused) < len(conns), (len(refused), len(conns))
    assert pushd.ssh("apps").returncode == 0


SLOW_HEADERS = b"".join(b"X-Slow-%d: x\r\n" % i for i in range(1000))


def test_an_http_slowloris_neither_starves_the_router_nor_keeps_its_connections(
        pushd: PushdUnderTest):
    repo = pushd.new_app_repo("steady", python_app("steady"))
    assert pushd.push(repo).returncode == 0
    slow = flood("127.0.0.4", pushd.http_port, 300,
                 b"GET / HTTP/1.1\r\nHost: steady.localhost\r\n")
    stop = threading.Event()

    def trickle() -> None:  # a byte per connection every 0.2 s: headers never finished
        step = 0
        while not stop.wait(0.2):
            for conn in slow:
                with contextlib.suppress(OSError):
                    conn.sock.send(SLOW_HEADERS[step:step + 1])
            step += 1

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        for _ in range(20):  # the legitimate client is served while the slow ones trickle
            response = pushd.http("steady")
            assert response.status == 200 and response.body.startswith("steady")
        # a client that never finishes its headers is cut off by the header timeout (5 s
        # here), however steadily it trickles; nginx's default would keep it for 60 s
        wait_until(lambda: all_closed(slow), timeout=30)
    finally:
        stop.set()
        thread.join()
        close_all(slow)
    assert not any(conn.received for conn in slow)  # no answer, not even a 408: a reset
    assert pushd.http("steady").status == 200
