"""The state dir's filesystem runs full (issue 8): a real daemon whose state dir is a small
loop-mounted ext4, filled during a config change, a push and a log flood. Running dynos keep
serving through nginx; whatever cannot complete says `No space left on device` and where,
changes nothing and exits non-zero; once space is freed everything works again, no restart."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.harness import PUSHD, Poller, PushdUnderTest, http_app, new_root, python_app, sh
from ..polling import wait_until
from .conftest import report
from .smalldisk import SmallDisk

FAST = {"boot_timeout": 30, "stop_timeout": 5, "drain_seconds": 0.5, "crash_backoff_base": 0.5,
        "crash_backoff_max": 4, "build_timeout": 300, "ssh_auth_timeout": 5,
        "dyno_disk_mb": 16, "build_cache_mb": 64, "log_max_bytes": 16 * 1024 * 1024,
        "disk_warn_mb": 100}
FULL = "No space left on device"


@pytest.fixture(scope="module")
def disk_platform() -> Iterator[tuple[PushdUnderTest, SmallDisk]]:
    root = new_root("pushd-disk-")
    disk = SmallDisk(Path("/var/tmp") / f"{root.name}.img", root / "state", size_mb=256)
    disk.mount()
    platform = PushdUnderTest(root, settings=dict(FAST))
    try:
        platform.start()
        yield platform, disk
    finally:
        platform.stop(everything=True)
        disk.unmount()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def space(disk_platform) -> Iterator[SmallDisk]:
    """Whatever a test filled is freed after it."""
    _, disk = disk_platform
    yield disk
    disk.free()


def _says_full(result, disk: SmallDisk) -> None:
    said = result.stderr + result.stdout
    assert result.returncode != 0, said
    assert FULL in said and str(disk.mount_point) in said, said
    assert "Internal error" not in said, said


def test_status_shows_the_free_space_and_warns_below_disk_warn_mb(disk_platform, space):
    platform, disk = disk_platform
    shown = sh([PUSHD, "status"], env=platform.env()).stdout
    assert re.search(r"Disk: +\d+ MB free of \d+ MB \(/dev/loop\d+ on "
                     + re.escape(str(disk.mount_point)) + r"\)\n", shown), shown
    disk.fill(leave_kb=50 * 1024)  # under disk_warn_mb (100)
    shown = sh([PUSHD, "status"], env=platform.env()).stdout
    assert "WARNING: below disk_warn_mb (100 MB)" in shown, shown


def test_a_config_change_on_a_full_disk_changes_nothing_and_says_so(disk_platform, space):
    platform, disk = disk_platform
    platform.deploy("disk-config", python_app("calm"))
    platform.wait_for("disk-config", "calm")
    releases = platform.ssh("releases", "disk-config").stdout
    router = (platform.state / "nginx" / "nginx.conf").read_text()
    with Poller(platform, "disk-config", body="calm", timeout=2) as outage:
        disk.fill()
        changed = platform.ssh("config:set", "disk-config", "MOOD=full")
        _says_full(changed, disk)
        restarted = platform.ssh("ps:restart", "disk-config")
        _says_full(restarted, disk)
        scaled = platform.ssh("ps:scale", "disk-config", "web=2")
        _says_full(scaled, disk)
        assert platform.ssh("config", "disk-config").stdout.splitlines()[1:] == []
        assert platform.ssh("releases", "disk-config").stdout == releases
        assert platform.http("disk-config").status == 200
        assert (platform.state / "nginx" / "nginx.conf").read_text() == router
        assert not [p.name for p in (platform.state / "nginx").iterdir() if ".tmp" in p.name]
        disk.free()
        again = platform.ssh("config:set", "disk-config", "MOOD=fine")
        assert again.returncode == 0, again.stderr
        platform.wait_for("disk-config", "fine", path="/env/MOOD")
    assert outage.seconds == 0
    report("state dir full during config:set / ps:restart / ps:scale", outage.seconds,
           "none (value not set, nothing restarted; set again after freeing: works, no "
           "restart of pushd)", changed.stderr.strip())


BIG = 24 * 1024 * 1024


def _random_file(repo: Path, size: int) -> None:
    with open(repo / "blob.bin", "wb") as fh:
        fh.write(os.urandom(size))


def _pack_bytes(platform: PushdUnderTest) -> int:
    """Bytes in packs and temporary packs of every app's repo (the tests run one by one)."""
    total = 0
    for folder in (platform.state / "apps").iterdir():
        objects = folder / "repo.git" / "objects"
        if not objects.is_dir():
            continue
        for path in objects.rglob("*"):
            if path.is_file() and ("pack" in path.name or "tmp_" in path.name):
                total += path.stat().st_size
    return total


@pytest.mark.parametrize("leave_mb", [8, 40], ids=["during-unpack", "during-build"])
def test_a_push_on_a_full_disk_is_rejected_and_leaves_nothing(disk_platform, space, leave_mb):
    platform, disk = disk_platform
    app = f"disk-push-{leave_mb}"
    repo = platform.deploy(app, python_app("first"))
    platform.wait_for(app, "first")
    head = platform.ssh("releases", app).stdout
    packs = _pack_bytes(platform)
    platform.commit(repo, {"app.py": python_app("second")["app.py"]})
    _random_file(repo, BIG)
    platform.commit(repo, {}, message="a big file")
    with Poller(platform, app, body="first", timeout=2) as outage:
        disk.fill(leave_kb=leave_mb * 1024)
        pushed = platform.push(repo)
        _says_full(pushed, disk)
        assert "remote rejected" in pushed.stderr or "unpack failed" in pushed.stderr
        assert platform.http(app).body.startswith("first")
    assert platform.ssh("releases", app).stdout == head
    assert _pack_bytes(platform) == packs  # the rejected pack is gone, and no tmp pack
    disk.free()
    again = platform.push(repo)
    assert again.returncode == 0, again.stderr
    platform.wait_for(app, "second")
    report(f"state dir full during a push ({leave_mb} MB left for a 24 MB pack)",
           outage.seconds, "none (ref, release and serving app unchanged; rejected pack "
           "removed; the same push works after freeing)",
           " / ".join(line.strip() for line in pushed.stderr.splitlines() if FULL in line))


TRICKLE = http_app(head="""\
import sys, threading, time


def trickle():
    i = 0
    while True:  # about 5000 numbered lines a second, for as long as the dyno runs
        sys.stdout.write("".join(f"seq {n} end\\n" for n in range(i, i + 50)))
        sys.stdout.flush()
        i += 50
        time.sleep(0.01)
""", respond="""\
if self.path == "/flood":
    threading.Thread(target=trickle, daemon=True).start()
text = "logging"
""")
SEQ_RE = re.compile(r"app\[web\.1\]: seq (\d+) end$")
MARKER_RE = re.compile(r"pushd\[web\.1\]: -- (\d+) lines dropped: No space left on device --$")


def test_a_log_flood_on_a_full_disk_keeps_the_dyno_serving(disk_platform, space):
    platform, disk = disk_platform
    platform.deploy("disk-flood", python_app("x", {"app.py": TRICKLE}))
    platform.wait_for("disk-flood", "logging")
    assert platform.http("disk-flood", path="/flood").status == 200
    log_file = wait_until(lambda: next(iter(
        p for p in (platform.state / "apps").glob("*/logs/app.log")
        if "seq " in p.read_text(errors="replace")), None))
    with Poller(platform, "disk-flood", body="logging", timeout=2) as outage:
        disk.fill()
        sizes = [log_file.stat().st_size]

        def stalled() -> bool:  # the dyno prints on, nothing reaches the log
            sizes.append(log_file.stat().st_size)
            return len(sizes) > 5 and len(set(sizes[-5:])) == 1

        wait_until(stalled, timeout=60, interval=0.3)
        assert platform.http("disk-flood").status == 200  # serving through nginx meanwhile
        freed_at = log_file.stat().st_size
        disk.free()

        def recovered() -> bool:  # the marker of what is left uncounted precedes the first
            with log_file.open("rb") as fh:  # batch written once space is back
                fh.seek(freed_at)
                return any(SEQ_RE.search(line) for line in
                           fh.read().decode(errors="replace").splitlines())

        wait_until(recovered, timeout=60)
    lines = (log_file.with_name("app.log.1").read_text(errors="replace").splitlines()
             if log_file.with_name("app.log.1").exists() else [])
    lines += log_file.read_text(errors="replace").splitlines()
    seqs = [int(m.group(1)) for line in lines if (m := SEQ_RE.search(line))]
    # a block freed meanwhile (a file replaced) may let a marker through early: each marker
    # counts the lines dropped since the one before
    markers = [m for line in lines if (m := MARKER_RE.search(line))]
    dropped = sum(int(m.group(1)) for m in markers)
    missing = (seqs[-1] - seqs[0] + 1) - len(seqs)
    assert markers and dropped > 0
    assert seqs == sorted(seqs)  # one dyno, never restarted: its numbering never began again
    assert missing == dropped  # every line not in the log is counted in a marker
    report("state dir full during a log flood (5000 lines/s)", outage.seconds,
           f"{dropped} log lines dropped (counted in {len(markers)} marker(s); nothing else)",
           markers[-1].group(0))


def _repo_of(platform: PushdUnderTest, commit: str) -> Path:
    """The app repo (in the state dir) that holds `commit`."""
    for repo in (platform.state / "apps").glob("*/repo.git"):
        found = sh(["git", "--git-dir", str(repo), "cat-file", "-e", commit])
        if found.returncode == 0:
            return repo
    raise AssertionError(f"no repo holds {commit}")


def _objects_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file())


def test_a_deploy_prunes_what_the_new_history_no_longer_reaches(disk_platform, space):
    platform, _ = disk_platform
    source = platform.new_app_repo("disk-gc", python_app("heavy"))
    _random_file(source, 8 * 1024 * 1024)
    heavy = platform.commit(source, {}, message="a big file")
    assert platform.push(source).returncode == 0
    repo = _repo_of(platform, heavy)
    assert _objects_bytes(repo) > 8 * 1024 * 1024
    light = platform.new_app_repo("disk-gc", python_app("light"))  # a history without it
    forced = platform.push(light, "--force")
    assert forced.returncode == 0, forced.stderr
    platform.wait_for("disk-gc", "light")
    assert _objects_bytes(repo) < 1024 * 1024  # the big blob was pruned after the deploy
    # what gc wrote stays readable by the app's own builds
    platform.commit(light, {"app.py": python_app("lighter")["app.py"]})
    again = platform.push(light)
    assert again.returncode == 0, again.stderr
    platform.wait_for("disk-gc", "lighter")
