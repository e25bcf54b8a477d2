"""A sandbox's own network: pasta (Debian `passt`) attached to its network namespace, or for
a web dyno's endpoint, `pushd-netfwd` (`forward`).

Every dyno, one-off and build runs in a network namespace of its own (`bwrap --unshare-net`):
it cannot bind host ports nor reach the host's loopback services, the platform's ports or
other dynos. pasta gives a one-off, a build, or the dynos' shared egress namespace
(`egress.py`) an interface and routes copied from the host, so they get outbound access
wherever the host has it. A web dyno's endpoint (a host loopback port the platform owns) is
relayed to $PORT inside by `pushd-netfwd` (`netfwd.c`, about 0.1 MB where a pasta is 29 MB).

pasta runs as the app's uid, so the firewall (`firewall.py`, on `meta skuid`) refuses its
outbound connections to any address of this host: that is what keeps a dyno off the host's
services reached through the host's own non-loopback addresses. `--no-map-gw` stops pasta
from mapping the gateway address to the host's loopback. The namespaces are handed to pasta as
inherited descriptors (`/proc/self/fd/N`): nothing is mounted, so nothing is left to unmount.
bwrap nests its user namespaces; the network namespace belongs to the outer one, which pasta
must join (`NS_GET_USERNS` finds it). pasta is told to die with its parent (the shim, or the
thread running a one-off or a build), and `detach` stops it explicitly.

A container's network namespace (the docker runtime's) belongs to the host's own user
namespace instead: pasta joins it with `--netns-only`, still as the app's uid, given
CAP_SYS_ADMIN and CAP_NET_ADMIN as ambient capabilities (what joining such a namespace
takes), and is started to outlive its starter (`outlive`: no death signal, a session
of its own), since a container outlives the daemon; its owner detaches it.

pasta opens /dev/net/tun as the app's uid: the device must be 0666, as Debian's udev leaves
it; a host without udev (a container) may have it 0600, which `attach` corrects.

`pasta_argv` builds the command line only; `attach`/`detach` run it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuntimeFailure
from ..procs import live_stat, proc_stat
from .bwrap import SETPRIV, SYSTEM_PATH

PASTA = shutil.which("pasta", path=SYSTEM_PATH) or "/usr/bin/pasta"
NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: the user namespace that owns it
READY_TIMEOUT = 5.0
STOP_TIMEOUT = 2.0
TCP_LISTEN = "0A"
TUN = "/dev/net/tun"
SYS_PIDFD_GETFD = 438  # x86-64 and arm64 alike; not in the os module


class NetnsError(RuntimeFailure):
    """pasta could not be attached (port taken, namespace gone, pasta missing)."""


@dataclass(frozen=True)
class Forward:
    """A host TCP port the platform owns, forwarded to `port` inside the namespace."""

    host_port: int
    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Attachment:
    """The handle `attach` returns: pasta's pid and start time (a recycled pid is not it)."""

    pid: int
    start: int


def pasta_argv(uid: int, netns: str, userns: str | None, forwards: Sequence[Forward] = (),
               pid_file: str | None = None, outlive: bool = False) -> list[str]:
    """argv for: setpriv (drop to uid, die with the parent) -> pasta joined to the namespace.

    Only TCP from the host to the forwarded ports comes in; nothing from the namespace reaches
    the host's loopback (`-T none -U none`, `--no-map-gw`). pasta writes its pid to `pid_file`
    once it is set up (its ports bound, the namespace configured). `outlive`: no death signal
    (a container's pasta keeps serving while the daemon is down; its owner detaches it).
    Add-ons are reached through the forwarder (`reach_fds`), never through pasta."""
    tcp = ",".join(f"{f.host}/{f.host_port}:{f.port}" for f in forwards) or "none"
    ready = ["--pid", pid_file] if pid_file else []
    death = [] if outlive else ["--pdeathsig=SIGKILL"]
    # a namespace of the host's own user namespace (a container's): pasta joins it without
    # one, as the app's uid still, given the two capabilities that joining takes
    user = ["--userns", userns] if userns else ["--netns-only"]
    caps = [] if userns else [f"--{kind}-caps=+sys_admin,+net_admin"
                              for kind in ("inh", "ambient")]
    return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *caps, *death,
            "--", PASTA, "--foreground", "--quiet", *ready,
            "--netns", netns, *user, "--config-net", "--no-map-gw",
            "-t", tcp, "-u", "none", "-T", "none", "-U", "none"]


def attach(pid: int, uid: int, forwards: Sequence[Forward] = (),
           timeout: float = READY_TIMEOUT, outlive: bool = False) -> Attachment:
    """Start pasta for the network namespace of process `pid`, as `uid`; return once it is
    set up (its forwards bound on the host, the namespace configured). Raises NetnsError with
    pasta's own reason when it exits instead (a host port already taken, say). `outlive`: in a
    session of its own and without a death signal, so it outlives this process."""
    _open_tun()
    try:
        net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NetnsError(f"the sandbox is gone before its network was set up ({err})") from None
    errors = tempfile.TemporaryFile()
    ready_r, ready_w = os.pipe()  # pasta's pid file: written once it is set up
    proc = None
    try:
        os.fchown(ready_w, uid, uid)  # pasta opens it again (/proc/self/fd) as the app uid
        user = fcntl.ioctl(net, NS_GET_USERNS)
        own = os.fstat(user).st_ino == os.stat("/proc/self/ns/user").st_ino
        try:
            proc = subprocess.Popen(
                pasta_argv(uid, f"/proc/self/fd/{net}", None if own else f"/proc/self/fd/{user}",
                           forwards,
                           pid_file=f"/proc/self/fd/{ready_w}", outlive=outlive),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                pass_fds=(net, user, ready_w), close_fds=True, cwd="/",
                start_new_session=outlive)
        finally:
            os.close(user)
            os.close(ready_w)
        handle = Attachment(proc.pid, _start_of(proc.pid))
        ready, _, _ = select.select([ready_r], [], [], timeout)
        if not ready:
            raise NetnsError("pasta did not come up in time")
        if not os.read(ready_r, 64):  # it closed the pid file unwritten: it exited
            proc.wait(timeout)
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip().splitlines()
            raise NetnsError(reason[-1] if reason else f"pasta exited ({proc.returncode})")
        if forwards:
            _no_delay(proc.pid, {f.host_port for f in forwards})
        proc = None  # keeps running: detach() ends it
        return handle
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NetnsError(f"could not start pasta: {err}") from None
    finally:
        os.close(net)
        os.close(ready_r)
        errors.close()
        if proc is not None:
            _end(proc.pid, None, proc)


def _no_delay(pasta: int, ports: set[int]) -> None:
    """TCP_NODELAY on pasta's listening sockets for `ports`; the connections it accepts
    inherit it. This pasta leaves Nagle on: a response an app writes in two pieces (headers,
    then body) waits for the client's delayed ACK, ~40 ms, which cut keep-alive throughput
    to a quarter. Best effort (pidfd_getfd needs Linux 5.6): without it the dyno still works."""
    try:
        pidfd = os.pidfd_open(pasta)
    except OSError:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        for entry in os.scandir(f"/proc/{pasta}/fd"):
            with contextlib.suppress(OSError, ValueError):
                if not os.readlink(entry.path).startswith("socket:"):
                    continue
                fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(entry.name), 0)
                if fd < 0:
                    continue
                with socket.socket(fileno=fd) as sock:
                    if (sock.type == socket.SOCK_STREAM
                            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                            and sock.getsockname()[1] in ports):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _open_tun() -> None:
    try:
        if os.stat(TUN).st_mode & 0o666 != 0o666:
            os.chmod(TUN, 0o666)
    except OSError as err:
        raise NetnsError(f"{TUN} must be usable by app uids (mode 0666): {err}") from None


def detach(handle: Attachment | None) -> None:
    """Stop pasta (SIGTERM, SIGKILL if it lingers) and reap it when it is our child."""
    if handle is not None:
        _end(handle.pid, handle.start, None)


def _end(pid: int, start: int | None, proc: subprocess.Popen | None) -> None:
    if start is not None and _start_of(pid) != start:
        return  # gone and reaped already (and the pid may be someone else's now)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if _reaped(pid, proc):
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while not _reaped(pid, proc):
        time.sleep(0.01)


def _start_of(pid: int) -> int:
    """Start time of `pid`, a zombie included: a pasta that exited on its own is still ours
    to reap, or it lingers as a zombie child."""
    stat = proc_stat(pid)
    return stat.start if stat else 0


def _reaped(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is not None
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid  # our child: gone once reaped
    except ChildProcessError:
        return live_stat(pid) is None  # someone else's child (an adopted dyno's pasta)


def _listening_ports(pid: int) -> set[int]:
    """TCP ports listened on in the network namespace of `pid`."""
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def listening(pid: int, port: int) -> bool:
    """True when a TCP socket listens on `port` in the network namespace of process `pid`:
    the probe that a web dyno is up. A connect to the host endpoint cannot tell (pasta accepts
    first, whether or not anything listens inside)."""
    return port in _listening_ports(pid)


def forward(pid: int, uid: int, endpoint: Forward | None, binary: str,
            outlive: bool = False, reach: Sequence[Reach] = ()) -> Attachment:
    """A dyno's forwarder without pasta: `pushd-netfwd` (netfwd.c, ~0.1 MB) relays the
    host loopback port `endpoint.host_port`, bound here (a taken port fails now, with its
    reason), to `endpoint.port` inside the network namespace of process `pid`, as `uid`,
    and listens on 127.0.0.1:PORT inside for each of the app's add-ons (`reach`), relayed to
    the add-on's unix socket. It dies with this process unless `outlive` (a container's: in a
    session of its own)."""
    listener, net = forwarder_fds(pid, endpoint)
    dirs = reach_fds(reach)
    try:
        return spawn_forwarder(binary, listener, net, endpoint.port if endpoint else 0, uid,
                               outlive, dirs)
    finally:
        for fd in (listener, net, *(fd for _, fd, _ in dirs)):
            if fd >= 0:
                os.close(fd)


@dataclass(frozen=True)
class Reach:
    """An add-on port reached at 127.0.0.1:`port` inside, relayed to the unix socket `name`
    in `folder` (`addons.reach.targets`)."""

    port: int
    folder: str
    name: str


def reach_of(root: Path, ports: Sequence[int]) -> list[Reach]:
    """The add-on sockets behind an app's add-on `ports` (`DynoSpec.reach`) in state dir
    `root`."""
    from ..addons.reach import targets

    return [Reach(port, str(folder), name) for port, folder, name in targets(root, ports)]


def reach_fds(reach: Sequence[Reach]) -> list[tuple[int, int, str]]:
    """(port, O_PATH descriptor of the socket's folder, socket name) for the forwarder: it
    reaches each socket as /proc/self/fd/N/NAME once it runs as the app's uid. A folder that
    cannot be opened is left out (that add-on is not reachable; the dyno still runs)."""
    opened = []
    for item in reach:
        try:
            fd = os.open(item.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        opened.append((int(item.port), fd, item.name))
    return opened


def reach_arg(dirs: Sequence[tuple[int, int, str]]) -> str:
    """The forwarder's REACH argument: "PORT:DIRFD:NAME;..."."""
    return ";".join(f"{port}:{fd}:{name}" for port, fd, name in dirs)


def forwarder_fds(pid: int, endpoint: Forward | None) -> tuple[int, int]:
    """(the endpoint's listening socket, bound on the host, or -1 without an endpoint; the
    network namespace of `pid`), the descriptors a forwarder is started with (a shim keeps
    them, to start it again). Raises NetnsError."""
    try:
        net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NetnsError(f"the sandbox is gone before its network was set up ({err})") from None
    if endpoint is None:
        return -1, net
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # past the endpoint's connections in TIME_WAIT (a forwarder started again); a port
        # another socket listens on is still refused
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((endpoint.host, endpoint.host_port))
        sock.listen(1024)
    except OSError as err:
        sock.close()
        os.close(net)
        raise NetnsError(f"{endpoint.host}:{endpoint.host_port}: {err.strerror or err}"
                         ) from None
    return sock.detach(), net


def forwarder_argv(binary: str, listener: int, net: int, port: int, uid: int,
                   outlive: bool = False, reach: str = "") -> list[str]:
    return [binary, str(listener), str(net), str(port), str(uid), "0" if outlive else "1",
            *([reach] if reach else [])]


def spawn_forwarder(binary: str, listener: int, net: int, port: int, uid: int,
                    outlive: bool = False,
                    dirs: Sequence[tuple[int, int, str]] = ()) -> Attachment:
    fds = tuple(fd for fd in (listener, net, *(fd for _, fd, _ in dirs)) if fd >= 0)
    try:
        proc = subprocess.Popen(
            forwarder_argv(binary, listener, net, port, uid, outlive, reach_arg(dirs)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=fds, close_fds=True, cwd="/", start_new_session=outlive)
    except OSError as err:
        raise NetnsError(f"could not start the dyno's forwarder: {err}") from None
    return Attachment(proc.pid, _start_of(proc.pid))
