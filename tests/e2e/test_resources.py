"""resource:limit / resource:report through OpenSSH against a real daemon: the limits reach
the dynos' cgroups by a rolling restart, bad values and strangers change nothing, a memory
hog gets R14 then R15 in `logs` and is restarted, and a CPU cap holds a busy loop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..polling import wait_until
from .harness import PUSHD, Poller, PushdUnderTest, python_app, sh
from .test_limits import cmdline, dyno_dirs, procs

HOG = Path(__file__).resolve().parent.parent / "fixtures" / "apps" / "memory-hog"
MEMORY = Path("/sys/fs/cgroup/memory/pushd")
CPU = Path("/sys/fs/cgroup/cpu/pushd")
MB = 1024 * 1024
R14 = "Error R14 (Memory quota exceeded)"
R15 = "Error R15 (Memory quota vastly exceeded)"
BAD_MEMORY = (" !    Invalid memory limit '12x': expected a size like 512m or 1g "
              "(units k, m, g; 0 resets it)\n")


def spec(dyno: Path) -> dict:
    return json.loads((dyno / "spec.json").read_text())["spec"]


def setting(group: Path, name: str) -> str | None:
    try:
        return (group / name).read_text().strip()
    except OSError:
        return None


def running_dyno(pushd: PushdUnderTest, app: str, kind: str, script: str,
                 other_than: Path | None = None) -> Path | None:
    """A dyno of `kind` (not `other_than`) whose cgroup runs `script` now."""
    live = [d for d in dyno_dirs(pushd.state, app, kind) if d != other_than
            and any(script in cmdline(pid) for pid in procs(CPU / d.name))]
    return live[0] if live else None


def report(pushd: PushdUnderTest, app: str, user: str = "admin") -> list[str]:
    result = pushd.ssh("resource:report", app, user=user)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_limit_then_report_shows_it_and_the_dynos_restart_with_it(pushd: PushdUnderTest):
    pushd.deploy("res-limits", python_app("res-limits"), user="alice")
    assert report(pushd, "res-limits", "alice") == [
        "=== res-limits Resource Limits",
        "Type  Memory          CPU (cores)",
        "web   512m (default)  unlimited (default)"]
    first = running_dyno(pushd, "res-limits", "web", "app.py")
    assert first is not None
    with Poller(pushd, "res-limits") as poller:
        result = pushd.ssh("resource:limit", "res-limits", "--memory", "256m", "--cpu", "0.5",
                           "--process-type", "web", user="alice")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "Setting limits of web dynos of res-limits... done, restarting them",
            "Type  Memory      CPU (cores)",
            "web   256m (set)  0.5 (set)"]
        # no push: a successor with the limits in its cgroups replaces the dyno
        web = wait_until(lambda: running_dyno(pushd, "res-limits", "web", "app.py", first),
                         timeout=60)
        wait_until(lambda: not procs(CPU / first.name), timeout=60)
        pushd.wait_for("res-limits", "res-limits")
    assert poller.failed == 0, poller.failures[:5]  # rolling: nothing dropped meanwhile
    assert setting(MEMORY / web.name, "memory.limit_in_bytes") == str(256 * MB)
    assert setting(CPU / web.name, "cpu.cfs_quota_us") == "50000"
    assert setting(CPU / web.name, "cpu.cfs_period_us") == "100000"
    assert (spec(web)["memory_mb"], spec(web)["cpu_limit"]) == (256, 0.5)
    assert report(pushd, "res-limits", "alice")[1:] == [
        "Type  Memory      CPU (cores)",
        "web   256m (set)  0.5 (set)"]

    # a bad value: one line, nothing changed, nothing restarted
    bad = pushd.ssh("resource:limit", "res-limits", "--memory", "12x", user="alice")
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", BAD_MEMORY)
    over = pushd.ssh("resource:limit", "res-limits", "--cpu", "64", user="alice")
    assert over.returncode == 1
    assert over.stderr.startswith(" !    CPU limit 64 is above this platform's cores (")
    assert len(over.stderr.splitlines()) == 1
    # another user's key, without access to the app, can neither set nor read them
    stranger = pushd.ssh("resource:limit", "res-limits", "--memory", "64m", user="bob")
    assert (stranger.returncode, stranger.stderr) == (
        1, " !    You do not have access to the app res-limits\n")
    assert pushd.ssh("resource:report", "res-limits", user="bob").returncode == 1
    assert report(pushd, "res-limits", "alice")[2] == "web   256m (set)  0.5 (set)"
    assert running_dyno(pushd, "res-limits", "web", "app.py") == web

    # the local CLI: the same command; the daemon's supervisor restarts the dyno
    local = sh([PUSHD, "resource:limit", "res-limits", "--cpu", "0", "--process-type", "web"],
               env=pushd.env())
    assert local.returncode == 0, local.stderr
    assert local.stdout.splitlines()[-1] == "web   256m (set)  unlimited (default)"
    after = wait_until(lambda: running_dyno(pushd, "res-limits", "web", "app.py", web),
                       timeout=60)
    assert setting(CPU / after.name, "cpu.cfs_quota_us") == "-1"
    assert setting(MEMORY / after.name, "memory.limit_in_bytes") == str(256 * MB)
    pushd.wait_for("res-limits", "res-limits")
    assert pushd.ssh("apps:destroy", "res-limits", "--confirm", "res-limits").returncode == 0


def test_a_memory_hog_logs_r14_then_r15_and_is_restarted(pushd: PushdUnderTest):
    pushd.deploy("res-hog", {**{p.name: p.read_text() for p in HOG.iterdir()},
                             "app.json": '{"formation": {"worker": {"quantity": 1}}, '
                                         '"healthchecks": {"worker": [{"uptime": 1}]}}'})
    result = pushd.ssh("resource:limit", "res-hog", "--memory", "64m", "--process-type",
                       "worker")
    assert result.returncode == 0, result.stderr

    def story() -> tuple[list[str], int, int] | None:
        """The log, where the first R14 is, and the R15 after it, once a restart followed."""
        lines = pushd.ssh("logs", "res-hog", "-p", "worker", "-n", "2000").stdout.splitlines()
        r14 = next((i for i, line in enumerate(lines) if R14 in line), None)
        r15 = next((i for i, line in enumerate(lines) if R15 in line and i > (r14 or 0)), None)
        if r14 is None or r15 is None:
            return None
        restarted = any("Starting process with" in line for line in lines[r15:])
        return (lines, r14, r15) if restarted else None

    lines, r14, r15 = wait_until(story, timeout=120, interval=0.5)
    assert "pushd[worker.1]: Error R14 (Memory quota exceeded)" in lines[r14]
    # R14 first, once for the crossing, while the dyno ran: its life (since it started with
    # the limit) holds one R14, then the kernel's kill at the limit (R15), then a restart
    born = max(i for i, line in enumerate(lines[:r14]) if "Starting process with" in line)
    # (the predecessor the limit restarted may log its SIGTERM exit after this one started)
    life = [line for line in lines[born:r15] if "exited with status 143" not in line]
    assert sum(R14 in line for line in life) == 1
    assert not any("Process exited" in line or R15 in line for line in life)
    after = "\n".join(lines[r15:])
    assert "pushd[worker.1]: Process exited with status 137" in after
    assert "pushd[worker.1]: State changed from crashed to starting" in after
    held = [int(line.split("holding ")[1].split()[0]) for line in life
            if "app[worker.1]: holding" in line]
    assert held and max(held) < 64  # it never got past its limit
    restarted = wait_until(lambda: running_dyno(pushd, "res-hog", "worker", "hog.py"))
    assert setting(MEMORY / restarted.name, "memory.limit_in_bytes") == str(64 * MB)
    assert pushd.ssh("apps:destroy", "res-hog", "--confirm", "res-hog").returncode == 0


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes, in clock ticks (those that exit meanwhile count
    nothing: the sum only ever falls short)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def throttled(group: Path) -> int:
    for line in (setting(group, "cpu.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "nr_throttled":
            return int(value)
    return -1


SPIN = "while True:\n    pass\n"


def test_a_cpu_limit_caps_a_busy_loop_in_its_cgroup(pushd: PushdUnderTest):
    files = python_app("res-cpu", {"spin.py": SPIN})
    files["Procfile"] = "web: python3 app.py\nspin: python3 spin.py\n"
    files["app.json"] = ('{"formation": {"spin": {"quantity": 1}}, '  # only web by default
                         '"healthchecks": {"spin": [{"uptime": 1}]}}')
    pushd.deploy("res-cpu", files)
    result = pushd.ssh("resource:limit", "res-cpu", "--cpu", "0.25", "--process-type", "spin")
    assert result.returncode == 0, result.stderr
    spin = wait_until(lambda: (d := running_dyno(pushd, "res-cpu", "spin", "spin.py"))
                      and spec(d)["cpu_limit"] == 0.25 and d, timeout=60)
    group = CPU / spin.name
    assert setting(group, "cpu.cfs_quota_us") == "25000"
    assert setting(group, "cpu.cfs_period_us") == "100000"
    web = running_dyno(pushd, "res-cpu", "web", "app.py")
    assert setting(CPU / web.name, "cpu.cfs_quota_us") == "-1"  # other types: no cap
    # the kernel holds it there: throttled again and again, and over an interval it uses
    # no more than its quota (plus one period's worth, and a clock tick of rounding)
    start = throttled(group)
    wait_until(lambda: throttled(group) >= start + 10)
    pids = procs(group)
    began, used_before = time.monotonic(), cpu_ticks(pids)
    time.sleep(2)
    used = (cpu_ticks(pids) - used_before) / os.sysconf("SC_CLK_TCK")
    elapsed = time.monotonic() - began
    assert 0 < used <= 0.25 * elapsed + 0.05, (used, elapsed)
    assert report(pushd, "res-cpu")[1:] == [
        "Type  Memory          CPU (cores)",
        "spin  512m (default)  0.25 (set)",
        "web   512m (default)  unlimited (default)"]
    # cleared: the spinner comes back without a cap
    cleared = pushd.ssh("resource:limit-clear", "res-cpu", "--process-type", "spin")
    assert cleared.stdout == ("Clearing the limits of spin dynos of res-cpu... done, "
                              "restarting them\n")
    free = wait_until(lambda: running_dyno(pushd, "res-cpu", "spin", "spin.py", spin),
                      timeout=60)
    assert setting(CPU / free.name, "cpu.cfs_quota_us") == "-1"
    assert pushd.ssh("apps:destroy", "res-cpu", "--confirm", "res-cpu").returncode == 0
