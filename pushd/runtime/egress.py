"""The dynos' shared way out: one network namespace of the platform's ("egress") with one
pasta attached, and a veth pair from each dyno's namespace into it, instead of a pasta per
dyno (28.6 MB PSS each; a veth pair is a kernel object, no process).

- The egress namespace is held by a `sleep` of its own (`unshare --net`, as the egress uid),
  started in a session of its own so it outlives the daemon, like the dynos it serves. pasta
  is attached to it as the egress uid (`settings.uid_base`: inside the app uid span the
  firewall refuses the host's own addresses, and no app's: app ids start at 1), with the
  same options as a dyno's pasta had: routes copied from the host, `--no-map-gw`, no port
  in, nothing to the host's loopback. Both pids are kept in `<state>/egress/egress.json`;
  whoever needs the namespace next (a dyno starting, the daemon's housekeeping) starts again
  what is gone (`ensure`).
- Inside it, nftables: packets from a dyno (`pd*` interfaces) may only be forwarded out
  (masqueraded to pasta's address); never to another dyno, never to the egress namespace
  itself (which holds the host's address that pasta copied); replies come back by conntrack.
- Each dyno gets `pd<N>` (egress side, `EGRESS_NET` .4N+1/30) and `eth0` (its side, .4N+2,
  default route via .4N+1), `join`. The pair goes with the dyno's namespace. These addresses
  exist only inside the egress and dyno namespaces; the host's network is never changed.

One-offs and builds keep a pasta of their own (`netns.attach`): they are short-lived.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from ..procs import live_stat, proc_stat
from .bwrap import SETPRIV, SYSTEM_PATH
from .netns import Attachment, NetnsError, attach, detach

EGRESS_NET = ipaddress.ip_network("198.18.0.0/16")  # RFC 2544 benchmarking: never routed
IP = shutil.which("ip", path=SYSTEM_PATH + ":/usr/sbin:/sbin") or "/usr/sbin/ip"
NFT = shutil.which("nft", path=SYSTEM_PATH + ":/usr/sbin:/sbin") or "/usr/sbin/nft"
NSENTER = shutil.which("nsenter", path=SYSTEM_PATH) or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare", path=SYSTEM_PATH) or "/usr/bin/unshare"
SLEEP = shutil.which("sleep", path=SYSTEM_PATH) or "/bin/sleep"
SYSCTL = shutil.which("sysctl", path=SYSTEM_PATH + ":/usr/sbin:/sbin") or "/usr/sbin/sysctl"
HOLD_TIMEOUT = 5.0
RULES = """\
table inet pushd_egress
delete table inet pushd_egress
table inet pushd_egress {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "pd*" drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "pd*" oifname != "pd*" accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    iifname "pd*" oifname != "pd*" masquerade
  }
}
"""


def folder(root: Path) -> Path:
    return root / "egress"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[dict]:
    """The egress state, under its lock (dynos start at once from several shims)."""
    where = folder(root)
    where.mkdir(mode=0o700, exist_ok=True)
    with open(where / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads((where / "egress.json").read_text())
        except (OSError, ValueError):
            state = {}
        before = dict(state)
        yield state
        if state != before:
            tmp = where / f".egress.json.{os.getpid()}"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, where / "egress.json")


def _alive(state: dict, name: str) -> bool:
    pid, start = state.get(name), state.get(f"{name}_start")
    stat = live_stat(pid) if pid else None
    return stat is not None and stat.start == start


def _run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise NetnsError(f"{Path(argv[0]).name}: {lines[-1]}")


def _in_netns(pid: int, argv: list[str], stdin: str | None = None) -> None:
    _run([NSENTER, f"--net=/proc/{pid}/ns/net", "--", *argv], stdin)


def _hold(uid: int) -> tuple[int, int]:
    """A process holding a fresh network namespace, outliving us; its (pid, start)."""
    proc = subprocess.Popen(
        [UNSHARE, "--net", "--", SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         "--", SLEEP, "infinity"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, close_fds=True, cwd="/", start_new_session=True)
    own = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + HOLD_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if (os.stat(f"/proc/{proc.pid}/ns/net").st_ino != own
                    and os.readlink(f"/proc/{proc.pid}/exe") == os.path.realpath(SLEEP)):
                stat = proc_stat(proc.pid)
                return proc.pid, stat.start if stat else 0
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise NetnsError("the egress network namespace could not be made")


def ensure(root: Path, uid: int) -> int:
    """The egress namespace's holder pid, the namespace set up and its pasta running (both
    started again if gone). Raises NetnsError."""
    with _locked(root) as state:
        return _ensure(state, uid)


def _ensure(state: dict, uid: int) -> int:
    if not _alive(state, "holder"):
        if _alive(state, "pasta"):
            detach(Attachment(state["pasta"], state["pasta_start"]))
        state.clear()
        holder, start = _hold(uid)
        try:
            _in_netns(holder, [IP, "link", "set", "lo", "up"])
            _in_netns(holder, [SYSCTL, "-qw", "net.ipv4.ip_forward=1"])
            _in_netns(holder, [NFT, "-f", "-"], RULES)
        except (NetnsError, OSError, subprocess.TimeoutExpired) as err:
            os.kill(holder, signal.SIGKILL)
            raise NetnsError(f"the egress network could not be set up: {err}") from None
        state.update(holder=holder, holder_start=start)
    if not _alive(state, "pasta"):
        pasta = attach(state["holder"], uid, outlive=True)
        state.update(pasta=pasta.pid, pasta_start=pasta.start)
    return state["holder"]


def addresses(index: int) -> tuple[str, str]:
    """(egress side, dyno side) of pair `index`, each a /30 of EGRESS_NET."""
    base = int(EGRESS_NET.network_address) + 4 * index
    if base + 3 > int(EGRESS_NET.broadcast_address):
        raise NetnsError(f"no free address left in {EGRESS_NET} for another dyno")
    return (str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2)))


def _used(holder: int) -> set[int]:
    done = subprocess.run([NSENTER, f"--net=/proc/{holder}/ns/net", "--", IP, "-o", "link"],
                          capture_output=True, text=True, timeout=30)
    return {int(m) for m in re.findall(r"^\d+: pd(\d+)[@:]", done.stdout, re.MULTILINE)}


def join(root: Path, uid: int, pid: int) -> str:
    """A veth pair between the network namespace of process `pid` (a dyno's) and the egress
    namespace: the dyno's way out. Returns the dyno's address. Raises NetnsError."""
    with _locked(root) as state:
        holder = _ensure(state, uid)
        used = _used(holder)
        index = next(i for i in range(len(used) + 1) if i not in used)
        gateway, address = addresses(index)
        name = f"pd{index}"
        try:
            _in_netns(holder, [IP, "-batch", "-"], (
                f"link add {name} type veth peer name eth0 netns {pid}\n"
                f"addr add {gateway}/30 dev {name}\n"
                f"link set {name} up\n"))
            _in_netns(pid, [IP, "-batch", "-"], (
                f"addr add {address}/30 dev eth0\n"
                "link set eth0 up\n"
                f"route add default via {gateway}\n"))
        except (NetnsError, OSError, subprocess.TimeoutExpired) as err:
            with contextlib.suppress(Exception):
                _in_netns(holder, [IP, "link", "del", name])
            raise NetnsError(f"the dyno's way out could not be set up: {err}") from None
    return address


def stop(root: Path) -> None:
    """End the egress namespace's pasta and holder (`pushd down --all`)."""
    with _locked(root) as state:
        _stop(state)


def _stop(state: dict) -> None:
    if _alive(state, "pasta"):
        detach(Attachment(state["pasta"], state["pasta_start"]))
    if _alive(state, "holder"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["holder"], signal.SIGKILL)
    state.clear()


def _dynos_left(root: Path) -> bool:
    """A dyno of either runtime is still recorded in this state dir (its folder, or its
    state file): its namespace may be joined already, or about to be."""
    with contextlib.suppress(OSError):
        for entry in (root / "dynos").iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                return True
    with contextlib.suppress(OSError):
        return any((root / "docker" / "dynos").glob("*.json"))
    return False


def stop_when_unused(root: Path) -> bool:
    """`stop` once the last dyno is removed (checked under the lock `join` takes, after a
    new dyno's folder is made: a dyno starting meanwhile is seen). True when it stopped."""
    if not (folder(root) / "egress.json").exists():
        return False
    with _locked(root) as state:
        if _dynos_left(root) or not (_alive(state, "holder") or _alive(state, "pasta")):
            return False
        _stop(state)
    return True


def processes(root: Path) -> list[int]:
    """The egress's running processes (holder, pasta), for `scripts/bench`."""
    try:
        state = json.loads((folder(root) / "egress.json").read_text())
    except (OSError, ValueError):
        return []
    return [state[name] for name in ("holder", "pasta") if _alive(state, name)]


def revive(root: Path, uid: int) -> bool:
    """pasta attached again to a held egress namespace it left (killed, crashed): the dynos'
    veth pairs are still there, so their way out comes back at once. True when it did."""
    with _locked(root) as state:
        if not _alive(state, "holder") or _alive(state, "pasta"):
            return False
        pasta = attach(state["holder"], uid, outlive=True)
        state.update(pasta=pasta.pid, pasta_start=pasta.start)
        return True
