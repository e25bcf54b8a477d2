"""The redis provider: each add-on is its own `redis-server` (own loopback port, a password,
own data folder with AOF), run as the `redis` system user, outliving the daemon; the daemon
restarts it when it is gone and adopts it when it runs (`keep_up`, every few seconds).

Rotation adds the new password to the default user beside the old (`ACL SETUSER default
>new`) and `revoke` removes the old one (`<old`): both work while the apps roll over."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..procs import live_stat, write_pid_file
from .base import AddonError, ProviderEnv, State, password, register
from .proc import as_user, free_port, locked, owned_dir
from .reach import make_socket_dir, socket_dir

SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
USER = "redis"
READY_TIMEOUT = 15.0


def call(port: int, secret: str, *args: str, timeout: float = 5.0) -> Any:
    """One command after AUTH, in RESP, over loopback. AddonError on any failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            stream = sock.makefile("rwb")
            reply = None
            for command in (("AUTH", secret), args):
                stream.write(f"*{len(command)}\r\n".encode())
                for word in command:
                    data = word.encode()
                    stream.write(b"$%d\r\n%s\r\n" % (len(data), data))
                stream.flush()
                reply = _read(stream)
            return reply
    except (OSError, ValueError) as err:
        raise AddonError(f"redis on port {port}: {err}") from None


def _read(stream: Any) -> Any:
    line = stream.readline()
    if not line:
        raise ValueError("connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ValueError(rest.split(" ", 1)[0] if "pass" in rest.lower() else rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_read(stream) for _ in range(max(int(rest), 0))]
    raise ValueError("bad reply")


SOCKET = "redis.sock"  # in its add-on socket folder (`reach.py`): how dynos reach it


def config_text(state: State, folder: Path, sockets: Path) -> str:
    return (f"port {state['port']}\nbind 127.0.0.1\nprotected-mode yes\ndaemonize no\n"
            f"unixsocket {sockets / SOCKET}\nunixsocketperm 777\n"
            f"dir {folder}\nappendonly yes\nappendfsync everysec\n"
            f"requirepass {state['password']}\nlogfile {folder / 'redis.log'}\n"
            "maxclients 1000\n")


@register("redis")
class RedisProvider:
    kind = "redis"
    default_attachment = "REDIS"

    def __init__(self, env: ProviderEnv) -> None:
        self.env = env
        self.root = env.root / "redis"

    def folder(self, state: State) -> Path:
        return self.root / state["name"]

    def _pid(self, state: State) -> int | None:
        try:
            pid, start = (int(w) for w in (self.folder(state) / "redis.pid").read_text().split())
        except (OSError, ValueError):
            return None
        stat = live_stat(pid)
        return pid if stat is not None and stat.start == start else None

    def _start(self, state: State, *extra: str) -> None:
        folder = owned_dir(self.folder(state), USER)
        conf = folder / "redis.conf"
        sockets = make_socket_dir(self.env.paths.root, state["port"], USER, SOCKET)
        conf.write_text(config_text(state, folder, sockets))
        os.chmod(conf, 0o600)
        shutil.chown(conf, USER, USER) if os.geteuid() == 0 else None
        with open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(as_user(USER, [SERVER, str(conf), *extra]), stdin=devnull,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
        write_pid_file(folder / "redis.pid", proc.pid)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if call(state["port"], state["password"], "PING", timeout=1) == "PONG":
                    return
            except AddonError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                self._stop(state)
                raise AddonError(f"redis-server for {state['name']} did not start; see "
                                 f"{folder / 'redis.log'}")
            time.sleep(0.05)

    def _stop(self, state: State) -> None:
        pid = self._pid(state)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while live_stat(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if live_stat(pid) is not None:
            os.kill(pid, signal.SIGKILL)

    def _lock(self, state: State, wait: bool = True):  # noqa: ANN202
        return locked(self.root / f".{state['name']}.lock", wait)

    def create(self, name: str) -> State:
        state: State = {"name": name, "password": password(),
                        "port": free_port(self.env.settings.addon_port_range,
                                          set(self.env.taken_ports))}
        try:
            with self._lock(state):
                self._start(state)
        except AddonError:
            shutil.rmtree(self.folder(state), ignore_errors=True)
            raise
        return state

    def url(self, state: State) -> str:
        return f"redis://:{state['password']}@127.0.0.1:{state['port']}/0"

    def ports(self, state: State) -> list[int]:
        return [int(state["port"])]

    def rotate(self, state: State) -> State:
        new = {**state, "password": password()}
        call(state["port"], state["password"], "ACL", "SETUSER", "default", f">{new['password']}")
        conf = self.folder(state) / "redis.conf"
        conf.write_text(config_text(new, self.folder(state),  # what a restart takes
                                    socket_dir(self.env.paths.root, state["port"])))
        return new

    def revoke(self, old: State, new: State) -> None:
        call(new["port"], new["password"], "ACL", "SETUSER", "default", f"<{old['password']}")

    def backup(self, state: State, dest: Path) -> None:
        call(state["port"], state["password"], "SAVE", timeout=120)
        shutil.copyfile(self.folder(state) / "dump.rdb", dest)

    def restore(self, state: State, src: Path) -> None:
        """Stop, replace the data with the snapshot (the AOF dropped), start from it, then
        turn the AOF back on (rewritten from the restored data)."""
        with self._lock(state):
            self._stop(state)
            folder = self.folder(state)
            shutil.rmtree(folder / "appendonlydir", ignore_errors=True)
            shutil.copyfile(src, folder / "dump.rdb")
            shutil.chown(folder / "dump.rdb", USER, USER) if os.geteuid() == 0 else None
            self._start(state, "--appendonly", "no")
            call(state["port"], state["password"], "CONFIG", "SET", "appendonly", "yes")

    def destroy(self, state: State) -> None:
        with self._lock(state):
            self._stop(state)
            shutil.rmtree(self.folder(state), ignore_errors=True)
            shutil.rmtree(socket_dir(self.env.paths.root, state["port"]), ignore_errors=True)
            (self.root / f".{state['name']}.lock").unlink(missing_ok=True)

    def info(self, state: State) -> dict[str, str]:
        running = "running" if self._pid(state) else "not running (restarting)"
        return {"Server": f"redis-server, 127.0.0.1:{state['port']}", "Process": running}

    def shutdown(self, states: list[State]) -> None:
        for state in states:
            with self._lock(state):
                self._stop(state)

    def _serves_dynos(self, state: State) -> bool:
        return (socket_dir(self.env.paths.root, state["port"]) / SOCKET).exists()

    def keep_up(self, state: State) -> None:
        """Start it when it is gone; restart one started before it served the dynos'
        socket (an upgrade: its AOF keeps the data)."""
        if self._pid(state) is not None and self._serves_dynos(state):
            return
        with self._lock(state, wait=False) as held:
            if not held or not self.folder(state).exists():
                return
            if self._pid(state) is not None and not self._serves_dynos(state):
                self._stop(state)
            if self._pid(state) is None:
                self._start(state)
