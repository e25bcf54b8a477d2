"""pasta attached to a real bwrap sandbox's own network namespace (runtime/netns.py)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import urllib.request

import pytest

from pushd.ports import port_free
from pushd.runtime.bwrap import bwrap_argv
from pushd.runtime.netns import Forward, NetnsError, attach, detach, listening, pasta_argv
from pushd.runtime.sandboxio import SandboxInfo

from ..loopback import loopback_service
from ..polling import wait_until

UID = 40110
SERVE = ("import http.server, os\n"
         "class H(http.server.BaseHTTPRequestHandler):\n"
         "    def do_GET(self):\n"
         "        self.send_response(200); self.end_headers(); self.wfile.write(b'inside')\n"
         "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n")
CONNECT = ("import socket, sys\n"
           "try:\n"
           "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
           "    print('reached')\n"
           "except OSError as err:\n"
           "    print('blocked', type(err).__name__)\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sandbox:
    """A python3 program in its own network namespace, as the app uid (no pasta yet)."""

    def __init__(self, code: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.info = SandboxInfo()
        argv = bwrap_argv(UID, [], {"PATH": "/usr/bin:/bin", **(env or {})},
                          ["python3", "-c", code, *args], cwd="/", info_fd=self.info.writer,
                          unshare_net=True)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                     pass_fds=(self.info.writer,), start_new_session=True)
        self.info.close_writer()
        self.init = wait_until(self.info.init_pid, timeout=10, interval=0.01)

    def close(self) -> None:
        self.info.kill_all(None)
        self.proc.kill()
        self.proc.wait()
        self.info.close()


def pastas_of_ours() -> list[int]:
    """pasta processes started by this test process (setpriv execs pasta in place)."""
    me = str(os.getpid())
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = open(f"/proc/{entry.name}/stat").read()
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                ppid = stat[stat.rindex(")") + 2:].split()[1]
            except (OSError, ValueError):
                continue
            if comm.startswith("passt") and ppid == me:
                found.append(int(entry.name))
    return found


@pytest.fixture
def sandboxes():
    made: list[Sandbox] = []
    yield lambda *a, **kw: made.append(Sandbox(*a, **kw)) or made[-1]
    for box in made:
        box.close()
    assert pastas_of_ours() == []  # every test detached what it attached


def test_pasta_argv_forwards_only_the_given_ports_and_never_the_hosts_loopback():
    argv = pasta_argv(40001, "/proc/self/fd/5", "/proc/self/fd/6",
                      [Forward(21000, 21000), Forward(21001, 5000, "::1")])
    assert argv[1:argv.index("--") + 1] == [
        "--reuid=40001", "--regid=40001", "--clear-groups", "--pdeathsig=SIGKILL", "--"]
    assert argv[argv.index("--") + 2:] == [
        "--foreground", "--quiet", "--netns", "/proc/self/fd/5", "--userns", "/proc/self/fd/6",
        "--config-net", "--no-map-gw", "-t", "127.0.0.1/21000:21000,::1/21001:5000",
        "-u", "none", "-T", "none", "-U", "none"]
    assert pasta_argv(40001, "n", "u")[-8:-6] == ["-t", "none"]
    assert "--pid" in pasta_argv(40001, "n", "u", pid_file="/proc/self/fd/7")


def test_a_host_port_reaches_the_server_inside_and_detach_leaves_nothing(sandboxes):
    port = free_port()
    box = sandboxes(SERVE, env={"PORT": str(port)})
    wait_until(lambda: listening(box.init, port), timeout=10, interval=0.02)
    handle = attach(box.init, UID, [Forward(port, port)])
    assert pastas_of_ours() == [handle.pid]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        assert resp.read() == b"inside"
    assert open(f"/proc/{handle.pid}/status").read().count(f"\t{UID}\t") >= 1  # the app uid
    detach(handle)
    assert pastas_of_ours() == []
    assert port_free(port)


def pasta_listeners_without_delay(pasta: int) -> dict[int, int]:
    """port -> TCP_NODELAY of each socket pasta listens on (borrowed with pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pasta)
    found = {}
    try:
        for entry in os.scandir(f"/proc/{pasta}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(entry.path).startswith("socket:"):
                    fd = libc.syscall(438, pidfd, int(entry.name), 0)
                    with socket.socket(fileno=fd) as sock:
                        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                            found[sock.getsockname()[1]] = sock.getsockopt(
                                socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        os.close(pidfd)
    return found


def test_the_endpoint_sends_without_waiting_for_acks(sandboxes):
    """An app's headers and body in two writes must not wait ~40 ms for a delayed ACK each:
    pasta's endpoint socket (and what it accepts) has Nagle off."""
    port = free_port()
    box = sandboxes("import time; time.sleep(60)")
    handle = attach(box.init, UID, [Forward(port, port)])
    try:
        assert pasta_listeners_without_delay(handle.pid)[port] == 1
    finally:
        detach(handle)


def test_pasta_accepts_without_a_listener_so_the_probe_looks_inside(sandboxes):
    port = free_port()
    box = sandboxes("import time; time.sleep(60)")
    handle = attach(box.init, UID, [Forward(port, port)])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # pasta answers...
        assert not listening(box.init, port)  # ...but nothing in the dyno does
    finally:
        detach(handle)


def test_a_host_port_taken_fails_the_attach_with_pastas_reason(sandboxes):
    box = sandboxes("import time; time.sleep(60)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NetnsError, match="bind"):
            attach(box.init, UID, [Forward(port, port)])
    assert pastas_of_ours() == []


def test_the_sandbox_cannot_reach_the_hosts_loopback_services(sandboxes):
    with loopback_service() as (port, accepted):
        for host in ("127.0.0.1", "::1", "localhost"):
            box = sandboxes(CONNECT, host, str(port))
            handle = attach(box.init, UID)  # outbound, as every dyno and one-off has
            try:
                out, _ = box.proc.communicate(timeout=20)
            finally:
                detach(handle)
            assert out.startswith("blocked"), (host, out)
        assert accepted == []


def test_attaching_to_a_gone_process_fails_cleanly():
    with pytest.raises(NetnsError):
        attach(2 ** 22 + 1, UID)


def test_wait_init_returns_once_bwrap_has_set_up_the_sandboxs_loopback():
    """bwrap tells the sandbox's pid before it brings the sandbox's loopback up; pasta's own
    setup racing it failed dyno starts ("bwrap: loopback: Failed RTM_NEWADDR"). wait_init
    returns only once bwrap is done, so the loopback is there every time."""
    for _ in range(10):
        info = SandboxInfo()
        argv = bwrap_argv(UID, [], {"PATH": "/usr/bin:/bin"}, ["sleep", "30"], cwd="/",
                          info_fd=info.writer, unshare_net=True)
        proc = subprocess.Popen(argv, pass_fds=(info.writer,), start_new_session=True)
        info.close_writer()
        try:
            init = info.wait_init(proc, 10)
            assert init is not None
            assert " lo\n" in open(f"/proc/{init}/net/if_inet6").read()  # up, with ::1
        finally:
            info.kill_all(None)
            proc.kill()
            proc.wait()
            info.close()
