"""The default runtime: each dyno in its own bubblewrap sandbox, owned by a detached shim.

`start()` writes the dyno's spec into `dynos/<id>/` and launches `python -m
pushd.runtime.shim` in a new session through `setsid --fork`, so the shim is nobody's child in
the daemon and survives its death; once the dyno is set up it execs the small resident
part (`shim.c`). Everything the daemon later needs (`list()` after a
restart) is read back from the files the shim keeps in that folder: facts (running, exit
status, OOM, killed after the stop timeout, why it ended), never log lines of its own.
A web dyno's endpoint (a host loopback port, forwarded by its pasta to `$PORT` inside) is
chosen here (`endpoints.HostEndpoints`), which also keeps the firewall's view of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import RuntimeFailure
from ..paths import Paths
from ..procs import oneoff_owner_alive, owner_token
from ..settings import Settings
from . import egress, ksm, seccomp, shimbin
from .base import register
from .bwrap import Bind, bwrap_argv
from .dynodir import CGROUP_ENTER, DynoDir, alive, signal_sandbox
from .endpoints import HostEndpoints
from .netns import Attachment, NetnsError, attach, detach, forward, listening, reach_of
from .records import DynoInfo, DynoSpec, Endpoint, MemoryUse, OneOffIO
from .sandboxio import CLIENT_POLL, ClientEnd, SandboxInfo, kill_sandbox, start_pipes, start_tty

log = logging.getLogger("pushd.runtime")

DEFAULT_PATH = "/app/.venv/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin"
# Its network, .profile.d, then ~/.profile, then the Procfile command (given as $1, never
# spliced in).
# Sourced scripts share this shell and may set any variable, `set --` or `shift`: the command
# is kept in a read-only variable they cannot change, under a name they will not use.
DYNO_SCRIPT = (
    'readonly PUSHD_DYNO_COMMAND="$1"; set --\n'
    # the dyno's own network is set up from outside (netns.attach) as it starts: its
    # routes appear within milliseconds; a host without any gets it running after 5 s
    'PUSHD_NET_WAIT=0\n'
    'while [ $PUSHD_NET_WAIT -lt 500 ] && ! { read -r _ && read -r _; } < /proc/net/route; do\n'
    '  PUSHD_NET_WAIT=$((PUSHD_NET_WAIT + 1)); sleep 0.01\n'
    'done\n'
    'unset PUSHD_NET_WAIT\n'
    'for PUSHD_PROFILE_SCRIPT in /app/.profile.d/*.sh; do\n'
    '  if [ -r "$PUSHD_PROFILE_SCRIPT" ]; then . "$PUSHD_PROFILE_SCRIPT"; fi\n'
    'done\n'
    'unset PUSHD_PROFILE_SCRIPT\n'
    'if [ -r "$HOME/.profile" ]; then . "$HOME/.profile"; fi\n'
    # `--`: a command starting with `-` (`run app -- --help`) is the command, not an option
    'exec bash -c -- "$PUSHD_DYNO_COMMAND"\n'
)
LAUNCH_GRACE = 30.0  # a spec without a shim yet is still launching for this long
VANISHED = "the dyno's shim ended without recording its exit"
# a one-off ends with its main process, as on Heroku: what it left running gets this long to
# finish its output, then the rest of the dyno is killed
DRAIN_AFTER_EXIT = 0.5
HANGUP_GRACE = 1.0  # a one-off whose client left: SIGHUP, then SIGTERM if it ignored that


def exit_status(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def dyno_environ(spec: DynoSpec) -> dict[str, str]:
    """The environment to start `dyno_argv` with: it passes through to the dyno, and never
    appears on a command line."""
    env = dict(spec.env)
    env.setdefault("HOME", "/app")
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("DYNO", spec.dyno)
    return env


def endpoint(config: dict) -> Endpoint | None:
    """A web dyno's endpoint (from its spec.json): the host loopback port its shim's pasta
    forwards to $PORT. Dynos started before endpoints were chosen apart from $PORT had the
    two equal."""
    if config.get("endpoint"):
        return Endpoint(*config["endpoint"])
    port = config["spec"].get("port")
    return Endpoint("127.0.0.1", port) if port else None


def dyno_argv(spec: DynoSpec, app_dir: str, cgroup: Path | None,
              new_session: bool = True, info_fd: int | None = None,
              seccomp_fd: int | None = None) -> list[str]:
    """The full argv of a dyno: (enter cgroup) -> setpriv -> bwrap -> bash -> command. Start
    it with `dyno_environ(spec)` as its environment."""
    argv = bwrap_argv(spec.uid, [Bind(app_dir, "/app", writable=True)], None,
                      ["bash", "-c", DYNO_SCRIPT, "dyno", spec.command],
                      hostname=spec.dyno.replace("_", "-"), new_session=new_session,
                      info_fd=info_fd, seccomp_fd=seccomp_fd, unshare_net=True)
    if cgroup is not None:
        argv = ["/bin/sh", "-c", CGROUP_ENTER, str(cgroup / "cgroup.procs"), *argv]
    return argv


@register("sandbox")
class SandboxRuntime:
    name = "sandbox"

    def __init__(self, settings: Settings, paths: Paths,
                 endpoints: HostEndpoints | None = None) -> None:
        self.settings = settings
        self.paths = paths
        self.endpoints = endpoints or HostEndpoints(settings)

    def _dir(self, dyno_id: str) -> DynoDir:
        if not dyno_id or "/" in dyno_id or dyno_id.startswith("."):
            raise RuntimeFailure(f"Invalid dyno id {dyno_id!r}")
        return DynoDir(self.paths.dynos_dir / dyno_id)

    def start(self, spec: DynoSpec) -> DynoInfo:
        folder = self._dir(spec.id)
        if folder.path.exists():
            raise RuntimeFailure(f"Dyno {spec.id} exists already")
        known = self.list()
        web = self.endpoints.allocate(known) if spec.port else None  # RuntimeFailure if full
        if web is not None:  # before its forwarder binds it: the app's own uid may reach it
            self.endpoints.guard(known, frozenset({(web.port, spec.uid)}))
        try:
            folder.path.mkdir(parents=True)
        except FileExistsError:
            raise RuntimeFailure(f"Dyno {spec.id} exists already") from None
        folder.restrict(spec.uid)
        folder.write_json("spec.json", {
            "spec": asdict(spec), "log_file": str(self.paths.log_file(spec.app_id)),
            "log_max_bytes": self.settings.log_max_bytes, "created_at": time.time(),
            "endpoint": list(web) if web else None,
            "shim_binary": str(shimbin.ensure(self.paths)), "ksm": self.settings.dyno_ksm,
            "forwarder_binary": str(shimbin.ensure(self.paths, shimbin.FORWARDER)),
            "egress_uid": self.settings.uid_base})
        package_root = str(Path(__file__).resolve().parents[2])
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": package_root,
               "PYTHONDONTWRITEBYTECODE": "1"}
        launcher = subprocess.Popen(
            ["setsid", "--fork", sys.executable, "-m", "pushd.runtime.shim", str(folder.path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=True, env=env, cwd="/")
        if launcher.wait() != 0:  # setsid --fork returns as soon as the shim is forked
            raise RuntimeFailure(f"Could not launch the shim of {spec.id}")
        return DynoInfo(spec=spec, pid=None, running=True, started_at=time.time(),
                        endpoint=web)

    def check_host(self) -> None:
        """At `pushd up`: what this runtime needs of the host is there (the shim built, KSM
        on if `dyno_ksm`)."""
        shimbin.ensure(self.paths)
        shimbin.ensure(self.paths, shimbin.FORWARDER)
        if self.settings.dyno_ksm:
            ksm.enable_host()

    def stop(self, dyno_id: str) -> None:
        folder = self._dir(dyno_id)
        if not folder.path.exists():
            return
        folder.mark_stopping()  # a shim that has not started yet sees this and stops at once
        shim = folder.read_json("shim.json")
        if shim and alive(shim["pid"], shim["start"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim["pid"], signal.SIGTERM)

    def info(self, folder: DynoDir) -> DynoInfo | None:
        config = folder.read_json("spec.json")
        if config is None:
            return None
        spec = DynoSpec(**config["spec"])
        shim = folder.read_json("shim.json")
        child = folder.read_json("child.json") or {}
        done = folder.read_json("exit.json")
        if shim is None:
            running = done is None and time.time() - config["created_at"] < LAUNCH_GRACE
        else:
            running = alive(shim["pid"], shim["start"])
        status, done = None, (done or {})
        if not running:
            status = done.get("status", 255)
        return DynoInfo(spec=spec, pid=child.get("pid"), running=running, exit_status=status,
                        started_at=child.get("started_at", config["created_at"]),
                        stopping=folder.stopping, oom_killed=bool(done.get("oom")),
                        endpoint=endpoint(config), finished_at=float(done.get("finished_at", 0)),
                        killed_after_timeout=bool(done.get("killed_after_timeout")),
                        reason=str(done.get("reason", "" if running or done else VANISHED)),
                        extra={"layer": child.get("layer", "")})

    def list(self) -> list[DynoInfo]:
        found = []
        if not self.paths.dynos_dir.exists():
            return found
        for entry in sorted(self.paths.dynos_dir.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                info = self.info(DynoDir(entry))
                if info is not None:
                    found.append(info)
        return found

    def logs(self, dyno_id: str, lines: int) -> list[str]:
        return self._dir(dyno_id).read_tail(lines)

    def memory(self, dyno_id: str) -> MemoryUse | None:
        return self._dir(dyno_id).memory()  # its memory cgroup, while the shim keeps it

    def probe(self, spec: DynoSpec) -> bool:
        """The dyno listens on $PORT in its own network, and its forwarder (the endpoint)
        runs (`pasta`: a dyno started before pushd-netfwd)."""
        folder = self._dir(spec.id)
        net = folder.read_json("net.json")
        if not (net and spec.port):
            return False
        if "forwarder" in net:
            helper = folder.read_json("forwarder.json") or {}
            pid, start = helper.get("pid"), helper.get("start")
        else:
            pid, start = net["pasta"], net["pasta_start"]
        return bool(alive(pid, start) and listening(net["init"], spec.port))

    def remove(self, dyno_id: str) -> None:
        folder = self._dir(dyno_id)
        if not folder.path.exists():
            return
        shim = folder.read_json("shim.json")
        child = folder.read_json("child.json")
        if child and alive(child["pid"], child["start"]):
            signal_sandbox(child["pid"], signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child["pid"], signal.SIGKILL)
        if shim and alive(shim["pid"], shim["start"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim["pid"], signal.SIGKILL)
        folder.release_layer()
        DynoDir.release_cgroup(folder.cgroup())
        shutil.rmtree(folder.path, ignore_errors=True)
        self.endpoints.guard(self.list())
        egress.stop_when_unused(self.paths.root)  # the last dyno gone: nothing goes out

    def sweep(self) -> list[str]:
        """Remove what one-offs left when the process running them (a daemon, a local
        `pushd run`) died: their processes (via the cgroup), overlay mount and folder."""
        swept = []
        if not self.paths.dynos_dir.exists():
            return swept
        for entry in self.paths.dynos_dir.iterdir():
            folder = DynoDir(entry)
            owner = folder.read_json("oneoff.json") if entry.is_dir() else None
            if owner is None or oneoff_owner_alive(owner):
                continue
            DynoDir.release_cgroup(folder.cgroup())  # kills what still runs in it
            folder.release_layer()
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(entry.name)
        return swept

    # one-off dynos
    def run(self, spec: DynoSpec, io: OneOffIO) -> int:
        """The one-off's own lines (start, hangup, exit) are `events.run_oneoff`'s."""
        folder = self._dir(spec.id)
        folder.path.mkdir(parents=True, exist_ok=True)
        group = None
        proc = None
        network: list[Attachment] = []
        sandbox = SandboxInfo()
        try:
            layer = folder.prepare_layer(spec.slug_dir, spec.uid, spec.disk_mb)
            group = folder.prepare_cgroup(spec.memory_mb, spec.pids_max, spec.cpu_shares,
                                          spec.cpu_limit)
            folder.write_json("oneoff.json", {"layer": layer, "pid": os.getpid(),
                                              "owner": owner_token()})
            client = ClientEnd(io)
            start = start_tty if io.tty else start_pipes
            denylist = seccomp.program_fd()
            try:
                argv = dyno_argv(spec, str(folder.app_dir), group, new_session=not io.tty,
                                 info_fd=sandbox.writer, seccomp_fd=denylist)
                proc, copiers = start(argv, client, dyno_environ(spec),
                                      pass_fds=(sandbox.writer, denylist))
            finally:
                sandbox.close_writer()  # bwrap has its own copy now
                os.close(denylist)
            network = self._attach_network(proc, sandbox, spec, self.paths)
            status = self._wait(proc, client, spec)
            # bwrap's init outlives the main process while anything it started still runs,
            # and holds the output open: a moment to finish, then the rest of the dyno goes
            deadline = time.monotonic() + DRAIN_AFTER_EXIT
            for copier in copiers:
                copier.join(max(0.0, deadline - time.monotonic()))
            sandbox.kill_all(group)
            for copier in copiers:  # the dyno's last output reaches the client before its status
                copier.join()
            return status
        finally:
            if proc is not None:  # interrupted: never leave any of it behind
                if proc.poll() is None:
                    kill_sandbox(proc)
                sandbox.kill_all(group)
            for helper in network:
                detach(helper)
            sandbox.close()
            folder.release_layer()
            DynoDir.release_cgroup(group)
            shutil.rmtree(folder.path, ignore_errors=True)

    @staticmethod
    def _attach_network(proc: subprocess.Popen, sandbox: SandboxInfo,
                        spec: DynoSpec, paths: Paths) -> list[Attachment]:
        """A one-off's way out (no ports in): pasta on its own network namespace, and its
        app's add-ons at 127.0.0.1:PORT inside, as a dyno's (a forwarder to their unix
        sockets). Without them the one-off still runs, offline, and the log says why."""
        init = sandbox.wait_init(proc, LAUNCH_GRACE)
        if init is None:
            return []
        helpers = []
        try:
            helpers.append(attach(init, spec.uid))
            reach = reach_of(paths.root, spec.reach)
            if reach:
                helpers.append(forward(init, spec.uid, None,
                                       str(shimbin.ensure(paths, shimbin.FORWARDER)),
                                       reach=reach))
        except NetnsError as err:
            log.warning("one-off %s runs without a network: %s", spec.id, err)
        return helpers

    @staticmethod
    def _wait(proc: subprocess.Popen, client: ClientEnd, spec: DynoSpec) -> int:
        """The one-off's exit status; if its client goes away first, SIGHUP and SIGTERM every
        process of it, SIGKILL after the stop timeout."""
        while not client.gone():
            try:
                return exit_status(proc.wait(timeout=CLIENT_POLL))
            except subprocess.TimeoutExpired:
                pass
        signal_sandbox(proc.pid, signal.SIGHUP)  # a hangup first: its handlers get to run
        try:
            return exit_status(proc.wait(timeout=HANGUP_GRACE))
        except subprocess.TimeoutExpired:
            signal_sandbox(proc.pid, signal.SIGTERM)
        try:
            return exit_status(proc.wait(timeout=spec.stop_timeout))
        except subprocess.TimeoutExpired:
            signal_sandbox(proc.pid, signal.SIGKILL)
            proc.kill()
            return exit_status(proc.wait())
