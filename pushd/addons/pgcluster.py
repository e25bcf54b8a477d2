"""pushd's own PostgreSQL cluster: `initdb` into the state dir on first use, its own loopback
port, started by pushd (no systemd), outliving the daemon and adopted by the next one, like
nginx. It runs as the `postgres` system user; pushd talks to it as superuser over a unix
socket in a folder only `postgres` and root may enter (peer: only root and `postgres` may
be the superuser on any socket); apps reach it over a second unix socket in its add-on
socket folder (`reach.py`: their forwarder relays 127.0.0.1:PORT to it), and pushd's own
tools over TCP on 127.0.0.1, each role with its own password (scram-sha-256)."""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

from ..procs import live_stat
from .base import AddonError, ProviderEnv
from .proc import as_user, free_port, locked, owned_dir, run
from .reach import make_socket_dir, socket_dir

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"
HBA = ("# pushd: the superuser is root or postgres (peer); apps by password\n"
       "local all postgres peer map=pushd\n"
       "local all all scram-sha-256\n"
       "host all all 127.0.0.1/32 scram-sha-256\n")


class Cluster:
    def __init__(self, env: ProviderEnv) -> None:
        self.settings = env.settings
        self.root = env.root / "postgres"
        self.data = self.root / "data"
        self.run_dir = self.root / "run"
        self.port_file = self.root / "port"
        self.state_dir = env.paths.root

    @property
    def port(self) -> int:
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            raise AddonError("pushd's PostgreSQL cluster is not set up yet") from None

    def admin_argv(self, tool: str, db: str = "postgres") -> list[str]:
        return [str(PG_BIN / tool), "-h", str(self.run_dir), "-p", str(self.port),
                "-U", USER, "-d", db]

    def running(self) -> bool:
        """The postmaster named in postmaster.pid runs (adoption after a daemon restart)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        stat = live_stat(pid)
        if stat is None:
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return bool(argv) and argv[0].endswith(b"postgres")

    def ensure(self) -> None:
        """Make the cluster on first use, and start it unless it runs. AddonError if it
        cannot: the caller makes nothing. A cluster started before it served the dynos'
        socket (an upgrade) is restarted once, with it."""
        if self.running() and self._serves_dynos():
            return
        with locked(self.root.parent / ".postgres.lock"):
            if self.running():
                if self._serves_dynos():
                    return
                self.stop()
            owned_dir(self.root, USER)
            if not (self.data / "PG_VERSION").exists():
                self._init()
            owned_dir(self.run_dir, USER)
            apps = make_socket_dir(self.state_dir, self.port, USER, f".s.PGSQL.{self.port}")
            self._write_auth()  # an older cluster's trusted socket too
            (self.data / "postmaster.pid").unlink(missing_ok=True)  # a dead one's (checked)
            log = self.root / "postgresql.log"
            opts = (f"-p {self.port} -k {self.run_dir},{apps} "
                    "-c listen_addresses=127.0.0.1")
            run(as_user(USER, [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                               "-o", opts, "-w", "-t", "30", "start"]),
                "starting pushd's PostgreSQL cluster", timeout=40)
            deadline = time.monotonic() + 15
            while not self._ready():
                if time.monotonic() > deadline:
                    raise AddonError("pushd's PostgreSQL cluster did not come up; see "
                                     f"{log}")
                time.sleep(0.1)

    def _serves_dynos(self) -> bool:
        try:
            return (socket_dir(self.state_dir, self.port) / f".s.PGSQL.{self.port}").exists()
        except AddonError:
            return False

    def _ready(self) -> bool:
        done = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", str(self.run_dir),
                               "-p", str(self.port)], capture_output=True)
        return done.returncode == 0

    def _init(self) -> None:
        data = owned_dir(self.data, USER)
        run(as_user(USER, [str(PG_BIN / "initdb"), "-D", str(data), "-U", USER,
                           "--auth-local=trust", "--auth-host=scram-sha-256",
                           "-E", "UTF8", "--locale=C.UTF-8"]),
            "initdb for pushd's PostgreSQL cluster", timeout=120)
        taken = {int(p.read_text()) for p in [self.port_file] if p.exists()}
        self.port_file.write_text(str(free_port(self.settings.addon_port_range, taken)))
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# pushd\nshared_buffers = 16MB\nmax_connections = 200\n"
                       "password_encryption = scram-sha-256\n")

    def _write_auth(self) -> None:
        """pg_hba.conf and the peer map: root, postgres (and pushd's user, not root) may be
        the superuser over a socket; everyone else gives a role's password."""
        users = sorted({"root", USER, getpass.getuser()})
        (self.data / "pg_hba.conf").write_text(HBA)
        (self.data / "pg_ident.conf").write_text(
            "".join(f"pushd {user} {USER}\n" for user in users))
        for name in ("pg_hba.conf", "pg_ident.conf"):
            run(["chown", f"{USER}:{USER}", str(self.data / name)], "chown")

    def stop(self) -> None:
        """For tests and `pushd down --all`: a fast shutdown."""
        if self.running():
            run(as_user(USER, [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                               "-w", "stop"]), "stopping pushd's PostgreSQL cluster")
