"""The per-dyno shim: `python -m pushd.runtime.shim DYNO_DIR`, detached from the daemon.

It owns one dyno for its whole life: prepares the writable layer and the memory cgroup, starts
the sandbox, pipes its output into the app log line by line, handles SIGTERM (forwarded to
every process of the dyno, SIGKILL after the stop timeout), records the exit and cleans up.
Because the escalation lives here, a stop completes even if the daemon dies.

It writes the dyno's output and no platform line: its exit is recorded as facts in
`exit.json` (`status`, `oom`, `killed_after_timeout`, `finished_at`, `reason`), which the
runtime reports in `DynoInfo` and the supervisor turns into Heroku's lines (`events.py`).
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..logs import AppLog, escape, format_line
from . import seccomp
from .dynodir import DynoDir, proc_start, signal_sandbox
from .netns import Attachment, Forward, NetnsError, attach, detach
from .records import DynoSpec
from .sandbox import DRAIN_AFTER_EXIT, dyno_argv, dyno_environ, exit_status
from .sandboxio import SandboxInfo

# the last lines of output kept in the dyno's folder (`Runtime.logs`): rewritten on every
# output while a new release may still fail on this dyno, and once at exit
TAIL_LINES = 20
TAIL_WINDOW = 300.0
TAIL_EVERY = 0.25
SANDBOX_WAIT = 10.0  # for bwrap to tell the sandbox's init (its network namespace)


class Shim:
    def __init__(self, folder: DynoDir) -> None:
        self.dir = folder
        config = folder.read_json("spec.json")
        if config is None:
            raise SystemExit(f"shim: no spec in {folder.path}")
        self.spec = DynoSpec(**config["spec"])
        # the host loopback port the runtime chose, forwarded to $PORT (older specs: $PORT)
        given = config.get("endpoint") or (
            ["127.0.0.1", self.spec.port] if self.spec.port else None)
        self.endpoint: tuple[str, int] | None = tuple(given) if given else None
        self.log = AppLog(Path(config["log_file"]), int(config["log_max_bytes"]))
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.tail_until = time.monotonic() + TAIL_WINDOW
        self.tail_written = 0.0
        self.term_requested = False
        self.stop_deadline: float | None = None
        self.killed = False  # SIGKILLed after the stop timeout (R12)
        self.reason = ""  # why it was ended here, one line

    def _on_term(self, signum: int, frame: object) -> None:
        self.term_requested = True  # handled by the loop; the handler only records

    def run(self) -> int:
        spec = self.spec
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # a handler (doing nothing) makes SIGCHLD write to the wakeup fd: the loop notices the
        # main process's exit even when what it left running keeps the output open
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.dir.write_json("shim.json", {"pid": os.getpid(), "start": proc_start(os.getpid())})
        if self.dir.stopping:  # stopped before we even started
            self.dir.write_json("exit.json", {"status": 0, "oom": False, "never_started": True,
                                              "finished_at": time.time()})
            return 0

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
        if self.dir.stopping:
            self.term_requested = True
        network = self._attach_network(child, sandbox, group)

        pending = b""
        eof = False
        main_exited: float | None = None  # what it left running holds the output open
        while True:
            if self.term_requested and self.stop_deadline is None:
                self._begin_stop(child.pid)
            timeout = None
            if self.stop_deadline is not None and not self.killed:
                timeout = max(0.0, self.stop_deadline - time.monotonic())
            if not eof and child.poll() is not None:
                # the main process is gone (the dyno ends with it, as on Heroku): a moment
                # for the last output, then the rest of the sandbox goes
                main_exited = main_exited or time.monotonic()
                if time.monotonic() - main_exited >= DRAIN_AFTER_EXIT:
                    sandbox.kill_all(group)
                timeout = 0.1 if timeout is None else min(timeout, 0.1)
            if eof:
                timeout = 0.2 if timeout is None else min(timeout, 0.2)
            watch = [wake_r] if eof else [wake_r, out_r]
            try:
                ready, _, _ = select.select(watch, [], [], timeout)
            except InterruptedError:
                ready = []
            if wake_r in ready:
                os.read(wake_r, 512)
            if out_r in ready:
                data = os.read(out_r, 65536)
                if data:
                    pending = self._emit(pending + data)
                else:
                    eof = True
            if (self.stop_deadline is not None and not self.killed
                    and time.monotonic() >= self.stop_deadline):
                signal_sandbox(child.pid, signal.SIGKILL)
                self.killed = True
            if eof and child.poll() is not None:
                break
        detach(network)
        sandbox.close()
        if pending:
            self._emit(pending + b"\n")
        self.dir.write_tail(list(self.tail))
        status = exit_status(child.returncode)
        oom = DynoDir.oom_killed(group)
        finished = time.time()
        self.dir.release_layer()
        DynoDir.release_cgroup(group)
        self.dir.write_json("exit.json", {"status": status, "oom": oom,
                                          "killed_after_timeout": self.killed,
                                          "finished_at": finished, "reason": self.reason})
        return 0

    def _attach_network(self, child: subprocess.Popen, sandbox: SandboxInfo,
                        group: Path | None) -> Attachment | None:
        """pasta on the sandbox's own network namespace: its way out, and for a web dyno the
        host loopback port the platform routes to (forwarded to $PORT inside). Without it the
        dyno cannot serve: it is stopped, with the reason in the app log."""
        spec = self.spec
        init = sandbox.wait_init(child, SANDBOX_WAIT)
        if init is None:
            return None  # ended at once (or bwrap failed): the loop reports its status
        endpoint = self.endpoint
        forwards = [Forward(endpoint[1], spec.port, endpoint[0])] if endpoint else []
        try:
            network = attach(init, spec.uid, forwards)
        except NetnsError as err:
            where = f" on port {endpoint[1]}" if endpoint else ""
            self.reason = f"the dyno's network could not be set up{where}: {err}"
            sandbox.kill_all(group)
            signal_sandbox(child.pid, signal.SIGKILL)
            return None
        self.dir.write_json("net.json", {"init": init, "pasta": network.pid,
                                         "pasta_start": network.start})
        return network

    def _begin_stop(self, pid: int) -> None:
        self.dir.mark_stopping()
        signal_sandbox(pid, signal.SIGTERM)
        self.stop_deadline = time.monotonic() + self.spec.stop_timeout

    def _emit(self, data: bytes) -> bytes:
        *complete, rest = data.split(b"\n")
        if len(rest) > 16384:  # an endless line still reaches the log
            complete.append(rest)
            rest = b""
        # lines end at "\n" only; any other break or control character in them (\r, \x1e,
        # U+2028, ESC) is escaped here, so it never forges a line nor reaches a terminal
        texts = [escape(raw.decode("utf-8", "replace").rstrip("\r")) for raw in complete]
        self.log.write_lines([format_line("app", self.spec.dyno, text) for text in texts])
        if texts:
            self.tail.extend(texts)
            now = time.monotonic()
            # while a release may still fail on it, and at most every TAIL_EVERY seconds
            if now < self.tail_until and now - self.tail_written >= TAIL_EVERY:
                try:
                    self.dir.write_tail(list(self.tail))
                except OSError:  # a full disk: a hint, never worth the dyno
                    pass
                self.tail_written = now
        return rest


def main(argv: list[str]) -> int:
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
