"""The per-dyno shim: `python -m pushd.runtime.shim DYNO_DIR`, detached from the daemon.

It owns one dyno for its whole life, in two stages within one process (one pid, so the
sandbox and its endpoint's forwarder stay its children and `shim.json` keeps naming it):
- here, in Python, briefly: prepare the writable layer and the cgroups, start the sandbox,
  attach its network, record `child.json`/`net.json`; then `exec` the resident part,
- `pushd-shim` (shim.c, built by `shimbin`): a small C program that pipes the output into
  the app log line by line, handles SIGTERM (every process of the dyno, SIGKILL after the
  stop timeout), reaps, stops the forwarder, and execs
- `python -m pushd.runtime.shim --finish DYNO_DIR STATUS STOPPED KILLED` (`finish`): records
  the exit status, releases the layer and the cgroups.
Because the escalation lives in the shim, a stop completes even if the daemon dies. Signals
stay blocked across each exec, so a SIGTERM between two stages is held, never lost.

It writes the dyno's output and no platform line: its exit is recorded as facts in
`exit.json` (`status`, `oom`, `killed_after_timeout`, `finished_at`, `reason`), which the
runtime reports in `DynoInfo` and the supervisor turns into Heroku's lines (`events.py`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..logs import AppLog
from ..paths import Paths
from . import egress, ksm, seccomp, shimbin
from .dynodir import DynoDir, proc_start, signal_sandbox
from .netns import (
    Attachment,
    Forward,
    NetnsError,
    forwarder_fds,
    reach_arg,
    reach_fds,
    reach_of,
    spawn_forwarder,
)
from .records import DynoSpec
from .sandbox import dyno_argv, dyno_environ
from .sandboxio import SandboxInfo

SANDBOX_WAIT = 10.0  # for bwrap to tell the sandbox's init (its network namespace)
HELD = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}  # blocked across the exec


class Shim:
    def __init__(self, folder: DynoDir) -> None:
        self.dir = folder
        config = folder.read_json("spec.json")
        if config is None:
            raise SystemExit(f"shim: no spec in {folder.path}")
        self.config = config
        self.spec = DynoSpec(**config["spec"])
        # the host loopback port the runtime chose, forwarded to $PORT (older specs: $PORT)
        given = config.get("endpoint") or (
            ["127.0.0.1", self.spec.port] if self.spec.port else None)
        self.endpoint: tuple[str, int] | None = tuple(given) if given else None
        self.log = AppLog(Path(config["log_file"]), int(config["log_max_bytes"]))
        self.term_requested = False
        self.forwarder = ""  # for the resident part: how to start the forwarder again

    def _on_term(self, signum: int, frame: object) -> None:
        self.term_requested = True  # the resident part begins the stop (`stopping` marked)

    def run(self) -> int:
        """Set the dyno up, then become the resident shim (no return, unless stopped before
        it started)."""
        spec = self.spec
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.dir.write_json("shim.json", {"pid": os.getpid(), "start": proc_start(os.getpid())})
        if self.dir.stopping:  # stopped before we even started
            self.dir.write_json("exit.json", {"status": 0, "oom": False, "never_started": True,
                                              "finished_at": time.time()})
            return 0
        # the daemon built it (`shimbin.ensure`); a spec written without it builds it here
        binary = str(self.config.get("shim_binary")
                      or shimbin.ensure(Paths(self.dir.path.parent.parent)))
        layer = self.dir.prepare_layer(spec.slug_dir, spec.uid, spec.disk_mb)
        group = self.dir.prepare_cgroup(spec.memory_mb, spec.pids_max, spec.cpu_shares,
                                        spec.cpu_limit)
        out_r, out_w = os.pipe()
        sandbox = SandboxInfo()
        denylist = seccomp.program_fd()
        child = subprocess.Popen(
            dyno_argv(spec, str(self.dir.app_dir), group, new_session=True,
                      info_fd=sandbox.writer, seccomp_fd=denylist),
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, close_fds=True,
            pass_fds=(sandbox.writer, denylist), process_group=0, env=dyno_environ(spec))
        os.close(out_w)
        os.close(denylist)
        sandbox.close_writer()
        self.dir.write_json("child.json", {"pid": child.pid, "start": proc_start(child.pid),
                                           "started_at": time.time(), "layer": layer,
                                           "cgroup": str(group or "")})
        try:
            if self.config.get("ksm"):  # after the sandbox started: helpers inherit it, the app not
                ksm.opt_in()
            init, network = self._attach_network(child, sandbox, group)
            # from here on a SIGTERM is held for the resident part, which sees `stopping`
            signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
            if self.term_requested:
                self.dir.mark_stopping()
            os.set_inheritable(out_r, True)
            finisher = [sys.executable, "-m", "pushd.runtime.shim", "--finish",
                        str(self.dir.path)]
            os.execv(binary, resident_argv(binary, self.dir, child.pid, init, network, out_r,
                                           self.log, spec, group, finisher, self.forwarder))
        except BaseException:  # nothing of the dyno may run on without its shim
            signal_sandbox(child.pid, signal.SIGKILL)
            sandbox.kill_all(group)
            child.kill()
            child.wait()
            DynoDir.release_cgroup(group)
            raise
        return 1  # not reached: execv returns only by raising

    def _attach_network(self, child: subprocess.Popen, sandbox: SandboxInfo,
                        group: Path | None) -> tuple[int | None, Attachment | None]:
        """The sandbox's own network namespace joined to the platform's egress namespace (its
        way out, `egress.join`), and `pushd-netfwd` (`netns.forward`): for a web dyno the host
        loopback port the platform routes to relayed to $PORT inside, and the app's add-ons at
        127.0.0.1:PORT inside, relayed to their unix sockets (`DynoSpec.reach`). Without them
        the dyno cannot serve: it is stopped, with the reason in the app log."""
        spec = self.spec
        init = sandbox.wait_init(child, SANDBOX_WAIT)
        if init is None:
            return None, None  # ended at once (or bwrap failed): the shim reports its status
        endpoint = self.endpoint
        root = self.dir.path.parent.parent
        network = None
        try:
            address = egress.join(root, int(self.config.get("egress_uid")
                                            or spec.uid - spec.app_id), init)
            reach = reach_fds(reach_of(root, spec.reach))
            if endpoint or reach:
                binary = str(self.config.get("forwarder_binary")
                             or shimbin.ensure(Paths(root), shimbin.FORWARDER))
                listener, net = forwarder_fds(init, Forward(endpoint[1], spec.port,
                                                            endpoint[0]) if endpoint else None)
                network = spawn_forwarder(binary, listener, net, spec.port or 0, spec.uid,
                                          dirs=reach)
                for fd in (listener, net, *(fd for _, fd, _ in reach)):
                    if fd >= 0:  # kept by the resident part, to start it again
                        os.set_inheritable(fd, True)
                self.forwarder = (f"{listener},{net},{spec.port or 0},{spec.uid},"
                                  f"{reach_arg(reach)},{binary}")
        except NetnsError as err:
            where = f" on port {endpoint[1]}" if endpoint else ""
            self.dir.write_json("reason.json", {  # for the exit the finisher records
                "reason": f"the dyno's network could not be set up{where}: {err}"})
            sandbox.kill_all(group)
            signal_sandbox(child.pid, signal.SIGKILL)
            return init, network
        self.dir.write_json("net.json", {"init": init, "address": address,
                                         "forwarder": bool(network)})
        if network:  # rewritten by the resident part when it starts the forwarder again
            self.dir.write_json("forwarder.json", {"pid": network.pid, "start": network.start})
        return init, network


def resident_argv(binary: str, folder: DynoDir, child: int, init: int | None,
                  network: Attachment | None, out_fd: int, log: AppLog, spec: DynoSpec,
                  group: Path | None, finisher: list[str], forwarder: str = "") -> list[str]:
    """argv of `pushd-shim` (see shim.c for the order)."""
    return [binary, str(folder.path), str(child), str(init or 0),
            str(proc_start(init) or 0) if init else "0", str(network.pid if network else 0),
            str(out_fd), str(log.path), str(log.max_bytes), spec.dyno, f"{spec.stop_timeout:g}",
            str(group or ""), forwarder, "--", *finisher]


def finish(folder: DynoDir, status: int, stopped: bool, killed: bool) -> None:
    """What the resident part execs once the dyno is gone: its exit recorded (`exit.json`,
    written last: the runtime takes it as the end), its layer and cgroups released."""
    finished = time.time()
    child = folder.read_json("child.json") or {}
    group = Path(child["cgroup"]) if child.get("cgroup") else None
    oom = DynoDir.oom_killed(group)
    folder.release_layer()
    DynoDir.release_cgroup(group)
    reason = (folder.read_json("reason.json") or {}).get("reason", "")
    folder.write_json("exit.json", {"status": status, "oom": oom,
                                    "killed_after_timeout": killed,
                                    "finished_at": finished, "reason": reason})


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[1] == "--finish":
        finish(DynoDir(Path(argv[2])), int(argv[3]), argv[4] == "stopped", argv[5] == "killed")
        return 0
    if len(argv) != 2:
        print("usage: python -m pushd.runtime.shim DYNO_DIR", file=sys.stderr)
        return 2
    folder = DynoDir(Path(argv[1]))
    try:
        return Shim(folder).run()
    except Exception as err:  # recorded so the supervisor sees an exit, not a silent hang
        folder.write_json("exit.json", {"status": 255, "oom": False, "error": repr(err),
                                        "finished_at": time.time(),
                                        "reason": f"the dyno's shim failed: {err}"})
        with open(folder.path / "shim.err", "a") as fh:
            fh.write(json.dumps({"error": repr(err)}) + "\n")
        folder.release_layer()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
