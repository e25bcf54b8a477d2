"""Limits a noisy or hostile tenant cannot escape: processes per dyno (a fork bomb stays in
its dyno), floods of SSH logins and slow HTTP clients (the platform keeps serving others)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
from pathlib import Path

from ..polling import wait_until
from .harness import PushdUnderTest, python_app

CPU = Path("/sys/fs/cgroup/cpu")

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


FILLER = '''\
import errno, os
written = 0
try:
    with open("/app/fill", "wb") as out:
        while written < 128:  # twice the quota: never fills a host disk when it's broken
            out.write(b"x" * 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
            written += 1
    print("stopped none", written)
except OSError as err:
    print("stopped", errno.errorcode.get(err.errno, err.errno), written)
fs = os.statvfs("/app")
print("size", fs.f_blocks * fs.f_frsize // (1024 * 1024))
'''

BUSY = '''\
import multiprocessing, time
def spin():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pass
workers = [multiprocessing.Process(target=spin) for _ in range(40)]
for worker in workers:
    worker.start()
print("spinning", flush=True)
for worker in workers:
    worker.join()
'''


def dyno_dirs(state: Path, app: str, kind: str) -> list[Path]:
    found = []
    for spec_file in sorted((state / "dynos").glob("*/spec.json")):
        spec = json.loads(spec_file.read_text())["spec"]
        if spec["app"] == app and spec["process_type"] == kind:
            found.append(spec_file.parent)
    return found


def cpu_group(dyno: Path) -> Path:
    return CPU / "pushd" / dyno.name


def procs(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_dyno_that_fills_its_disk_gets_enospc_not_the_host(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("filler", python_app("filler", {"fill.py": FILLER}))
    assert pushd.push(repo).returncode == 0
    result = pushd.ssh("run", "filler", "python3", "fill.py")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    reason, written = lines["stopped"].split()
    assert reason == "ENOSPC", result.stdout
    assert 48 <= int(written) <= 64 and lines["size"] == "64", result.stdout  # 64 MB here
    assert pushd.http("filler").body.startswith("filler")  # its web dyno has its own layer
    mounts = Path("/proc/mounts").read_text()
    web = dyno_dirs(pushd.state, "filler", "web")[0]
    assert f"pushd-{web.name} " in mounts  # the web dyno's layer is its own tmpfs...
    app_id = web.name.split("-")[0]
    assert f"pushd-{app_id}-run." not in mounts  # ...and the one-off's went with it


def test_each_dyno_has_its_own_cpu_share_and_a_busy_app_stays_in_its_own(
        pushd: PushdUnderTest):
    for name in ("victim", "spinner"):
        repo = pushd.new_app_repo(name, python_app(name, {"busy.py": BUSY}))
        assert pushd.push(repo).returncode == 0
    victim = dyno_dirs(pushd.state, "victim", "web")[0]
    assert (cpu_group(victim) / "cpu.shares").read_text().strip() == "700"  # cpu_shares
    assert any("app.py" in cmdline(pid) for pid in procs(cpu_group(victim)))
    client = subprocess.Popen(
        ["ssh", "-F", str(pushd.ssh_config), "platform", "run", "spinner", "python3", "busy.py"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=pushd.env())
    try:
        assert client.stdout.readline() == b"spinning\n"
        app_id = dyno_dirs(pushd.state, "spinner", "web")[0].name.split("-")[0]
        busy = next((pushd.state / "dynos").glob(f"{app_id}-run.*"))  # the one-off's folder
        spinning = wait_until(lambda: [pid for pid in procs(cpu_group(busy))
                                       if "busy.py" in cmdline(pid)])
        assert len(spinning) >= 40  # all of them weigh as one dyno against the others
        assert (cpu_group(busy) / "cpu.shares").read_text().strip() == "700"
        assert not set(spinning) & set(procs(cpu_group(victim)))
        assert not set(spinning) & set(procs(CPU))  # none escaped to the host's own group
        assert pushd.http("victim").body.startswith("victim")
    finally:
        client.kill()
        client.wait()
    wait_until(lambda: not procs(cpu_group(busy)))  # gone with its client


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
    # and from many addresses, more than the whole server's 100 logins in progress
    spread = [conn for n in range(10, 22) for conn in flood(f"127.0.0.{n}", pushd.ssh_port, 10)]
    everything = silent + stalled + spread
    try:
        # a real client from elsewhere gets its answer while the flood holds on
        answer = pushd.ssh("apps")
        assert answer.returncode == 0, answer.stderr
        # every flood connection is closed: the few an address may hold once the auth timeout
        # (5 s here) passes, well before paramiko's own (15 s and more)...
        wait_until(lambda: all_closed(everything), timeout=13)
    finally:
        close_all(everything)
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
