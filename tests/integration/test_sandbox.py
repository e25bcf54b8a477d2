"""The sandbox runtime for real: root, bubblewrap, overlayfs, cgroups, detached shims."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pushd.events import EventLog, run_oneoff
from pushd.paths import Paths
from pushd.runtime.records import DynoSpec
from pushd.runtime.sandbox import SandboxRuntime
from pushd.settings import Settings

from ..polling import wait_until

UID = 40100
# endpoints below the kernel's ephemeral ports; no nft table of its own for this state dir
SETTINGS = {"port_range": (31000, 31999), "firewall": False}
SERVER = r"""
import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path[1:]
        if path == "env":
            body = json.dumps(dict(os.environ, UID=str(os.getuid()))).encode()
        else:
            try:
                body = open("/" + path, "rb").read()
            except OSError as err:
                self.send_response(403); self.end_headers(); self.wfile.write(str(err).encode())
                return
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
print("booting", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture
def env():
    # bwrap runs as the app's uid and must traverse to the dyno dir: not under pytest's 0700 tmp
    root = Path(tempfile.mkdtemp(prefix="pushd-it-", dir="/tmp"))
    root.chmod(0o711)
    paths = Paths(root / "state")
    paths.ensure()
    paths.app_dir(1).mkdir(parents=True)  # as apps:create does; logs live in it
    slug = root / "slug"
    (slug / ".profile.d").mkdir(parents=True)
    (slug / "server.py").write_text(SERVER)
    (slug / ".profile.d" / "a.sh").write_text("export FROM_PROFILE_D=yes\n")
    # a script that happens to use the names a dyno's launcher might hold the command in
    (slug / ".profile.d" / "b.sh").write_text(
        "cmd='echo hijacked'; f=/dev/null; command='echo hijacked'\n"
        "set -- 'echo hijacked' 'echo hijacked'; shift\n")
    (slug / "original.txt").write_text("pristine\n")
    other = root / "otherslug"
    other.mkdir()
    (other / "secret.txt").write_text("other app secret\n")
    other.chmod(0o700)
    (paths.root / "secret-state").write_text("state secret\n")
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(slug)], check=True)
    settings = Settings(**SETTINGS, state_dir=paths.root)
    runtime = SandboxRuntime(settings, paths)
    started: list[str] = []
    yield {"root": root, "paths": paths, "slug": slug, "other": other, "runtime": runtime,
           "started": started, "events": EventLog(paths, settings.log_max_bytes)}
    for info in runtime.list():
        runtime.remove(info.spec.id)
    shutil.rmtree(root, ignore_errors=True)


# cgroups are named by dyno id host-wide: a suffix per run keeps overlapping runs apart
RUN = f"-{os.getpid()}"


def spec(env, command, dyno_id, *, kind="web", memory_mb=256, stop_timeout=5.0, port=None):
    dyno_id += RUN
    port = port or (5000 if kind == "web" else None)  # $PORT, in the dyno's own network
    variables = {"HOME": "/app", "DYNO": f"{kind}.1", "FOO": "bar"}
    if port:
        variables["PORT"] = str(port)
    env["started"].append(dyno_id)
    return DynoSpec(id=dyno_id, app_id=1, app="one", release=1, process_type=kind, index=1,
                    command=command, env=variables, slug_dir=str(env["slug"]), uid=UID,
                    port=port, memory_mb=memory_mb, stop_timeout=stop_timeout)


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def up(port):
    def check():
        try:
            return get(port, "env")
        except OSError:
            return None
    return wait_until(check)


def log_text(env):
    path = env["paths"].log_file(1)
    return path.read_text() if path.exists() else ""


def info_of(runtime, dyno_id):
    return next(i for i in runtime.list() if i.spec.id == dyno_id)


def at(env, s, runtime=None):
    """The host port the runtime chose for the web dyno `s` (its endpoint)."""
    endpoint = info_of(runtime or env["runtime"], s.id).endpoint
    assert endpoint.host == "127.0.0.1" and endpoint.port != s.port
    return endpoint.port


def platform_lines(env):
    return [line for line in log_text(env).splitlines() if " pushd[" in line]


def test_web_dyno_isolation_env_and_layer(env):
    rt = env["runtime"]
    s = spec(env, "python3 /app/server.py", "1-web.1-a")
    t0 = time.monotonic()
    rt.start(s)
    status, body = up(at(env, s))
    boot = time.monotonic() - t0
    print(f"dyno reachable after {boot:.3f}s")
    seen = json.loads(body)
    assert seen["DYNO"] == "web.1" and seen["PORT"] == str(s.port) and seen["HOME"] == "/app"
    assert seen["FROM_PROFILE_D"] == "yes" and seen["FOO"] == "bar"
    assert seen["UID"] == str(UID)
    # another app's slug, the state dir and its database are not there
    for path in (env["other"] / "secret.txt", env["paths"].root / "secret-state",
                 env["paths"].db, Path("/root")):
        code, text = get(at(env, s), str(path).lstrip("/"))
        assert code == 403, (path, text)
    assert get(at(env, s), "app/original.txt") == (200, "pristine\n")
    # writes go to the dyno's own layer, never to the slug
    rt.stop(s.id)
    wait_until(lambda: not info_of(rt, s.id).running)
    rt.remove(s.id)
    assert not (env["paths"].dynos_dir / s.id).exists()
    writer = spec(env, "echo changed > /app/original.txt && echo new > /app/new.txt && "
                  "python3 /app/server.py", "1-web.1-b")
    rt.start(writer)
    up(at(env, writer))
    assert get(at(env, writer), "app/original.txt") == (200, "changed\n")
    assert (env["slug"] / "original.txt").read_text() == "pristine\n"
    assert info_of(rt, writer.id).extra["layer"] == "overlay"
    rt.stop(writer.id)
    wait_until(lambda: not info_of(rt, writer.id).running)
    rt.remove(writer.id)
    again = spec(env, "python3 /app/server.py", "1-web.1-c")
    rt.start(again)
    up(at(env, again))
    assert get(at(env, again), "app/original.txt") == (200, "pristine\n")
    assert get(at(env, again), "app/new.txt")[0] == 403
    assert "app[web.1]: booting" in log_text(env)
    assert platform_lines(env) == []  # the supervisor's to write, from what it reports


def test_stop_terms_the_whole_group_and_logs_status(env):
    rt = env["runtime"]
    command = ("(trap 'echo helper got TERM; exit 0' TERM; sleep 300 & wait) & "
               "trap 'echo main got TERM; exit 143' TERM; sleep 300 & wait")
    s = spec(env, command, "1-worker.1-a", kind="worker")
    rt.start(s)
    wait_until(lambda: (env["paths"].dynos_dir / s.id / "child.json").exists())
    time.sleep(0.5)  # let both traps get installed
    rt.stop(s.id)
    info = wait_until(lambda: (i := info_of(rt, s.id)) and not i.running and i)
    assert info.exit_status == 143 and info.stopping and not info.killed_after_timeout
    assert info.finished_at >= info.started_at > 0 and info.reason == ""
    log = log_text(env)
    assert "app[worker.1]: helper got TERM" in log and "app[worker.1]: main got TERM" in log
    assert platform_lines(env) == []
    rt.remove(s.id)
    assert not Path(f"/sys/fs/cgroup/memory/pushd/{s.id}").exists()


def test_stop_escalates_to_sigkill_r12(env):
    rt = env["runtime"]
    s = spec(env, "trap '' TERM; echo ignoring; sleep 300", "1-worker.1-k", kind="worker",
             stop_timeout=1.0)
    rt.start(s)
    wait_until(lambda: "ignoring" in log_text(env))
    rt.stop(s.id)
    info = wait_until(lambda: (i := info_of(rt, s.id)) and not i.running and i)
    assert info.exit_status == 137 and info.killed_after_timeout  # the supervisor's R12
    assert platform_lines(env) == []


def test_the_resident_shim_owns_the_sandbox_and_its_forwarder(env):
    """After the setup the shim is the small C program, in the same process: the sandbox and
    its endpoint's forwarder (told to die with its parent) are still its children and still
    serve."""
    rt = env["runtime"]
    s = spec(env, "python3 /app/server.py", "1-web.1-resident")
    rt.start(s)
    up(at(env, s))
    folder = env["paths"].dynos_dir / s.id
    shim = json.loads((folder / "shim.json").read_text())["pid"]
    forwarder = json.loads((folder / "forwarder.json").read_text())["pid"]
    child = json.loads((folder / "child.json").read_text())["pid"]
    assert os.readlink(f"/proc/{shim}/exe").startswith(str(env["paths"].root / "libexec"))
    for pid in (forwarder, child):
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(shim)
    os.kill(shim, signal.SIGKILL)  # a shim that crashes: an exit, its forwarder goes with it
    info = wait_until(lambda: (i := info_of(rt, s.id)) and not i.running and i)
    assert info.exit_status == 255
    wait_until(lambda: not Path(f"/proc/{forwarder}").exists()
               or " Z " in Path(f"/proc/{forwarder}/stat").read_text())


def ksm_merge_any(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/ksm_stat").read_text()
    return "ksm_merge_any: yes" in stat


def test_dyno_ksm_merges_the_platforms_pages_and_never_the_apps(env):
    ksm = Path("/sys/kernel/mm/ksm")
    before = {name: (ksm / name).read_text().strip() for name in ("run", "use_zero_pages")}
    rt = SandboxRuntime(Settings(state_dir=env["paths"].root, dyno_ksm=True), env["paths"])
    try:
        rt.check_host()  # what `pushd up` does
        assert (ksm / "run").read_text().strip() == "1"
        assert (ksm / "use_zero_pages").read_text().strip() == "1"
        s = spec(env, "python3 /app/server.py", "1-web.1-ksm")
        rt.start(s)
        up(at(env, s, rt))
        folder = env["paths"].dynos_dir / s.id
        forwarder = json.loads((folder / "forwarder.json").read_text())["pid"]
        init = json.loads((folder / "net.json").read_text())["init"]
        app = [int(p) for p in Path(f"/proc/{init}/task/{init}/children").read_text().split()]
        assert ksm_merge_any(forwarder)
        assert app and not any(ksm_merge_any(pid) for pid in [init, *app])
    finally:
        for info in rt.list():
            rt.remove(info.spec.id)
        if before["run"] != "1":
            (ksm / "run").write_text("2")  # unmerge what was merged, then back as it was
        (ksm / "use_zero_pages").write_text(before["use_zero_pages"])
        (ksm / "run").write_text(before["run"])


def test_what_the_main_process_leaves_running_is_ended(env):
    """The dyno ends with its main process: what it left running (holding the output open,
    ignoring SIGTERM) gets a moment, then goes with the rest of the sandbox."""
    rt = env["runtime"]
    s = spec(env, "(trap '' TERM HUP; sleep 300) & echo main done; exit 4", "1-worker.1-left",
             kind="worker")
    rt.start(s)
    info = wait_until(lambda: (i := info_of(rt, s.id)) and not i.running and i)
    assert info.exit_status == 4 and not info.stopping
    assert "app[worker.1]: main done" in log_text(env)
    assert platform_lines(env) == []  # the supervisor tells the exit, from these facts
    assert not sandbox_pids(s.id)


def test_dyno_survives_its_starter_and_is_adopted(env):
    paths = env["paths"]
    s = spec(env, "python3 /app/server.py", "1-web.1-orphan")
    starter = (
        "import sys, json; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from pushd.paths import Paths; from pushd.settings import Settings\n"
        "from pushd.runtime.records import DynoSpec; from pushd.runtime.sandbox import "
        "SandboxRuntime\n"
        f"p = Paths(Path(sys.argv[2])); rt = SandboxRuntime(Settings(**{SETTINGS!r}, "
        "state_dir=p.root), p)\n"
        "rt.start(DynoSpec(**json.loads(sys.argv[3])))\n"
        "import time; time.sleep(600)\n")
    from dataclasses import asdict
    proc = subprocess.Popen([sys.executable, "-c", starter, str(Path(__file__).parents[2]),
                             str(paths.root), json.dumps(asdict(s))])
    port = wait_until(lambda: any(i.spec.id == s.id for i in env["runtime"].list())
                      and at(env, s))
    up(port)
    proc.send_signal(signal.SIGKILL)  # the "daemon" dies hard
    proc.wait()
    time.sleep(0.3)
    assert get(port, "env")[0] == 200
    fresh = SandboxRuntime(Settings(**SETTINGS, state_dir=paths.root), paths)
    infos = [i for i in fresh.list() if i.spec.id == s.id]
    assert len(infos) == 1 and infos[0].running and infos[0].spec == s
    assert infos[0].endpoint.port == port
    fresh.stop(s.id)
    wait_until(lambda: not info_of(fresh, s.id).running)


def test_memory_hog_is_killed_with_r15(env):
    if not Path("/sys/fs/cgroup/memory").exists():
        pytest.skip("no memory cgroup")
    rt = env["runtime"]
    hog = "python3 -c 'x = []\nwhile True: x.append(bytearray(16 << 20))'"
    s = spec(env, hog, "1-worker.1-hog", kind="worker", memory_mb=64)
    rt.start(s)
    info = wait_until(lambda: (i := info_of(rt, s.id)) and not i.running and i, timeout=60)
    assert info.oom_killed and info.exit_status == 137  # the supervisor's R15
    assert platform_lines(env) == []


class IO:
    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        self.tty = tty
        self.term_size = (100, 40) if tty else None
        self._input = [data, b""]
        self.out = b""
        self.err = b""

    def read(self, size: int) -> bytes:
        return self._input.pop(0) if self._input else b""

    def write(self, data: bytes) -> None:
        self.out += data

    def write_err(self, data: bytes) -> None:
        self.err += data


def oneoff(env, command, dyno_id="1-run.1234-x"):
    return DynoSpec(id=dyno_id + RUN, app_id=1, app="one", release=1, process_type="run",
                    index=1234, command=command, env={"HOME": "/app", "DYNO": "run.1234"},
                    slug_dir=str(env["slug"]), uid=UID, memory_mb=256)


def test_run_returns_status_and_output(env):
    rt = env["runtime"]
    io = IO(b"from stdin\n")
    s = oneoff(env, "cat; echo out $DYNO $FROM_PROFILE_D; echo err >&2; exit 3")
    status = run_oneoff(rt, s, io, env["events"])
    assert status == 3
    assert io.out == b"from stdin\nout run.1234 yes\n" and io.err == b"err\n"
    assert not (env["paths"].dynos_dir / s.id).exists()
    log = log_text(env)
    assert "pushd[run.1234]: Starting process with command `cat;" in log
    assert "pushd[run.1234]: Process exited with status 3" in log


def test_run_on_a_tty(env):
    rt = env["runtime"]
    io = IO(tty=True)
    # bwrap shows the pty as /dev/console; /dev/tty opens only with a controlling terminal
    status = rt.run(oneoff(env, "test -t 0 && test -t 1 && stty size && echo hi > /dev/tty",
                           "1-run.1235-y"), io)
    assert status == 0, io.out
    assert b"40 100\r\n" in io.out and b"hi\r\n" in io.out


def test_profile_d_cannot_replace_the_command(env):
    io = IO()
    status = env["runtime"].run(oneoff(env, "echo ran $FROM_PROFILE_D", "1-run.1236-z"), io)
    assert (status, io.out, io.err) == (0, b"ran yes\n", b"")


def sandbox_pids(dyno_id: str) -> list[int]:
    """Processes still in the one-off's memory cgroup (its whole sandbox)."""
    procs = Path(f"/sys/fs/cgroup/memory/pushd/{dyno_id}/cgroup.procs")
    try:
        return [int(p) for p in procs.read_text().split()]
    except OSError:
        return []


class LeavingIO(IO):
    """A client that disconnects once `leave` is set (its channel reports it gone)."""

    def __init__(self) -> None:
        super().__init__()
        self.leave = threading.Event()

    def read(self, size: int) -> bytes:
        self.leave.wait()
        return b""

    def gone(self) -> bool:
        return self.leave.is_set()


class BrokenIO(IO):
    """A client whose connection breaks after the first write (no gone() to ask)."""

    def write(self, data: bytes) -> None:
        if self.out:
            raise OSError("Socket is closed")
        self.out += data


def run_in_thread(rt, dyno_spec, io):
    result = {}
    events = EventLog(rt.paths, rt.settings.log_max_bytes)  # `run` writes Heroku's lines
    thread = threading.Thread(
        target=lambda: result.update(status=run_oneoff(rt, dyno_spec, io, events)),
                              daemon=True)
    thread.start()
    return thread, result


def test_run_is_stopped_when_its_client_disconnects(env):
    rt = env["runtime"]
    io = LeavingIO()
    s = oneoff(env, "trap 'echo got HUP; exit 129' HUP; sleep 300 & wait", "1-run.1237-a")
    thread, result = run_in_thread(rt, s, io)
    wait_until(lambda: sandbox_pids(s.id))
    time.sleep(0.3)  # the trap is set
    io.leave.set()
    thread.join(30)
    assert not thread.is_alive() and result["status"] == 129
    assert not sandbox_pids(s.id) and not (env["paths"].dynos_dir / s.id).exists()
    assert "Client disconnected; stopping all processes with SIGHUP" in log_text(env)


def test_run_is_stopped_when_writing_to_its_client_fails(env):
    rt = env["runtime"]
    io = BrokenIO()
    s = oneoff(env, "trap '' HUP TERM; while true; do echo tick; sleep 0.1; done",
               "1-run.1238-b")
    s = DynoSpec(**{**s.__dict__, "stop_timeout": 1.0})
    thread, result = run_in_thread(rt, s, io)
    thread.join(30)
    assert not thread.is_alive() and result["status"] == 137  # ignored SIGTERM: SIGKILL
    assert io.out == b"tick\n"
    assert not sandbox_pids(s.id) and not (env["paths"].dynos_dir / s.id).exists()
    assert "Stopping remaining processes with SIGKILL" in log_text(env)


def test_run_outlives_the_end_of_its_input(env):
    io = IO()  # input ends at once, like `ssh platform run app cmd < /dev/null`
    status = env["runtime"].run(oneoff(env, "sleep 1; echo still here", "1-run.1239-c"), io)
    assert (status, io.out) == (0, b"still here\n")


# each denied syscall made with harmless arguments; prints "name errno" (0: it ran)
SYSCALL_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for name, number in [a.split("=") for a in sys.argv[1:]]:
    ctypes.set_errno(0)
    result = libc.syscall(int(number), 0, 0, 0, 0, 0)
    print(name, ctypes.get_errno() if result == -1 else 0, flush=True)
"""
# x86_64 numbers, from asm/unistd_64.h (not from the module under test)
PROBED = {"io_uring_setup": 425, "io_uring_enter": 426, "keyctl": 250, "add_key": 248,
          "request_key": 249, "ptrace": 101, "bpf": 321, "perf_event_open": 298,
          "userfaultfd": 323, "kexec_load": 246, "process_vm_readv": 310}


def probe_argv() -> list[str]:
    return ["python3", "-c", SYSCALL_PROBE, *(f"{name}={nr}" for name, nr in PROBED.items())]


def probe_results(text: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
            if line.split()[:1] and line.split()[0] in PROBED}


def test_outside_a_sandbox_the_probe_reaches_the_kernel():
    """The control: without the filter these calls fail for other reasons, or run."""
    found = probe_results(subprocess.run(probe_argv(), capture_output=True, text=True,
                                         check=True).stdout)
    assert set(found) == set(PROBED)
    assert found["io_uring_setup"] != errno.EPERM and found["keyctl"] != errno.EPERM


def test_a_one_off_cannot_nest_user_namespaces_nor_make_denied_syscalls(env):
    rt = env["runtime"]
    io = IO()
    assert rt.run(oneoff(env, "unshare -U true; echo unshare=$?"), io) == 0
    assert b"unshare=1" in io.out, io.out + io.err
    io = IO()
    command = " ".join(shlex.quote(arg) for arg in probe_argv())
    assert rt.run(oneoff(env, command), io) == 0, io.err
    assert probe_results(io.out.decode()) == {name: errno.EPERM for name in PROBED}


def test_ordinary_programs_still_run_in_a_sandbox(env):
    rt = env["runtime"]
    io = IO()
    command = ("python3 -c 'import os, threading; print(\"py\", os.getpid())' && "
               "bash -c 'echo bash $((6*7))' && node -e 'console.log(\"node\", 6*7)' && "
               "sh -c 'ls /app >/dev/null && echo sh'")
    assert rt.run(oneoff(env, command), io) == 0, io.err
    assert io.out.decode().split("\n")[1:] == ["bash 42", "node 42", "sh", ""]


def test_a_dyno_started_by_its_shim_has_the_same_filter(env):
    rt = env["runtime"]
    command = " ".join(shlex.quote(arg) for arg in probe_argv())
    rt.start(spec(env, f"unshare -U true; echo unshare=$?; {command}; sleep 60", "1-worker.1-x",
                  kind="worker"))
    wait_until(lambda: "app[worker.1]: process_vm_readv " in log_text(env))
    lines = [line.split(": ", 1)[1] for line in log_text(env).splitlines() if " app[" in line]
    assert "unshare=1" in lines
    assert probe_results("\n".join(lines)) == {name: errno.EPERM for name in PROBED}
