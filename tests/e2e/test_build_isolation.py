"""Hostile builds against a real daemon with small build limits: real `git push` over OpenSSH,
two user keys, a hostile buildpack (tests/fixtures/buildpacks/hostile) and the caps of
issue 6 (sandboxed steps, host-path buildpacks, pack caps, cgroup limits, output lines,
sparse files, cache quota)."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest

from pushd.build.cgroup import group_prefix
from pushd.store import Store
from tests.loopback import loopback_service
from tests.polling import wait_until

from .harness import PushdUnderTest, free_port, new_root, python_app, running, sh

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOSTILE = FIXTURES / "buildpacks" / "hostile"
VICTIM_SECRET = "victim-source-4b1d9e"


@pytest.fixture(scope="module")
def limited():
    """A daemon of its own, with build limits small enough to hit in a moment."""
    root = new_root("pushd-e2e-limits-")
    packs = root / "packs"  # the operator's allowed buildpack folder
    shutil.copytree(HOSTILE, packs / "hostile")
    shutil.copytree(FIXTURES / "buildpacks" / "second", root / "not-allowed")
    for folder in (packs, root / "not-allowed"):
        sh(["chmod", "-R", "a+rX", str(folder)], check=True)
    yield from running(root, {
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5, "build_timeout": 120,
        "build_memory_mb": 128, "build_pids_max": 64, "build_cpu_percent": 20,
        "build_cache_mb": 16, "max_pack_mb": 8, "max_object_mb": 4, "slug_limit_mb": 20,
        "allowed_buildpack_paths": [str(packs)]})


def hostile_app(pushd: PushdUnderTest, name: str, attack: str, *config: str,
                user: str = "alice", create: bool = True) -> str:
    """Create `name` as `user` with the hostile buildpack doing `attack`; push; the output."""
    if create:
        assert pushd.ssh("apps:create", name, user=user).returncode == 0
    assert pushd.ssh("config:set", name, f"BUILDPACK_URL={pushd.root / 'packs' / 'hostile'}",
                     f"ATTACK={attack}", *config, user=user).returncode == 0
    return pushd.push(pushd.new_app_repo(name, python_app(name), user=user))


def said(result) -> list[str]:
    """The push's output lines, without the blanks git pads `remote:` lines with."""
    return [line.rstrip() for line in result.stderr.splitlines()]


def remote_lines(result) -> list[str]:
    return [line for line in said(result) if line.startswith("remote:")]


def app_id(pushd: PushdUnderTest, name: str) -> int:
    return Store(pushd.state / "pushd.db").app(name).id


def high_water_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# (b) host-path buildpacks
def test_a_user_key_cannot_name_a_host_folder_as_buildpack(limited: PushdUnderTest):
    other = limited.root / "not-allowed"
    assert limited.ssh("apps:create", "hostpath", user="alice").returncode == 0
    repo = limited.new_app_repo("hostpath", python_app("hostpath"), user="alice")
    for how in ("config", "file", "set", "file-url"):
        if how == "config":
            limited.ssh("config:set", "hostpath", f"BUILDPACK_URL={other}", user="alice")
            ref = str(other)
        else:
            limited.ssh("config:unset", "hostpath", "BUILDPACK_URL", user="alice")
        if how == "file":
            ref = str(other)
            limited.commit(repo, {".buildpacks": f"{ref}\n"})
        if how == "file-url":
            ref = f"file://{other}"
            limited.commit(repo, {".buildpacks": f"{ref}\n"})
        if how == "set":
            limited.commit(repo, {".buildpacks": "# none\n"})
            assert limited.ssh("buildpacks:set", "hostpath", str(other),
                               user="alice").returncode == 0
            ref = str(other)
        result = limited.push(repo)
        assert result.returncode != 0, how
        refusal = (f"remote:  !     Buildpack {ref} refused: a path on the platform's host is "
                   "for admin keys and the operator's allowed_buildpack_paths only")
        assert refusal in said(result), (how, result.stderr)
        assert "[remote rejected]" in result.stderr
        assert "Second buildpack compiling" not in result.stderr
        limited.ssh("buildpacks:clear", "hostpath", user="alice")
    # the bundled buildpacks stay usable by everyone
    limited.commit(repo, {".buildpacks": "python\n"})
    bundled = limited.push(repo)
    assert bundled.returncode == 0, bundled.stderr
    assert "Python app detected" in bundled.stderr


def test_admin_keys_and_operator_allowed_folders_keep_host_buildpacks(limited: PushdUnderTest):
    other = limited.root / "not-allowed"
    assert limited.ssh("apps:create", "adminpath").returncode == 0
    assert limited.ssh("config:set", "adminpath", f"BUILDPACK_URL={other}").returncode == 0
    admin = limited.push(limited.new_app_repo("adminpath", python_app("adminpath")))
    assert admin.returncode == 0, admin.stderr
    assert "Second buildpack compiling" in admin.stderr
    allowed = hostile_app(limited, "allowedpath", "none")
    assert allowed.returncode == 0, allowed.stderr
    assert "Hostile buildpack: none" in allowed.stderr


# (a) a racing buildpack folder
LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (renameat2): both always exist, as one or the other."""
    LIBC.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)


def test_a_racing_buildpack_folder_reads_nothing_outside_the_build(limited: PushdUnderTest):
    # bob's running app: its source is in a dyno folder on the host
    victim = limited.new_app_repo("victim", python_app(VICTIM_SECRET), user="bob")
    assert limited.push(victim).returncode == 0
    limited.wait_for("victim", VICTIM_SECRET)
    dyno_sources = sorted(limited.state.glob("dynos/*/app/app.py"))
    assert any(VICTIM_SECRET in p.read_text() for p in dyno_sources)
    # and a folder any local user may read, outside every build
    decoy = limited.root / "elsewhere"
    decoy.mkdir()
    (decoy / "secret.txt").write_text(f"{VICTIM_SECRET}-world-readable\n")
    sh(["chmod", "-R", "a+rX", str(decoy)], check=True)
    folders = [decoy, limited.state / "nginx", *(p.parent for p in dyno_sources)]
    files = [decoy / "secret.txt", limited.state / "nginx" / "nginx.conf", *dyno_sources]
    # alice's buildpack: an operator-allowed folder she changes while it is copied, each
    # part swapped with a symlink to something of the host's and back, atomically
    pack = limited.root / "packs" / "racy"
    shutil.copytree(HOSTILE, pack)
    links = pack / ".links"
    links.mkdir()
    for index in range(60):
        (pack / f"d{index:03}").mkdir()
        (pack / f"d{index:03}" / "note.txt").write_text("harmless\n")
        (pack / f"f{index:03}.txt").write_text("harmless\n")
        (links / f"d{index:03}").symlink_to(folders[index % len(folders)])
        (links / f"f{index:03}.txt").symlink_to(files[index % len(files)])
    sh(["chmod", "-R", "a+rX", str(pack)], check=True)
    stop = threading.Event()

    def race() -> None:
        names = sorted(p.name for p in links.iterdir())
        while not stop.is_set():  # all swapped, a moment, all back, a moment
            for name in names:
                exchange(pack / name, links / name)
            stop.wait(0.002)

    assert limited.ssh("apps:create", "racer", user="alice").returncode == 0
    assert limited.ssh("config:set", "racer", f"BUILDPACK_URL={pack}", "ATTACK=readall",
                       user="alice").returncode == 0
    repo = limited.new_app_repo("racer", python_app("racer"), user="alice")
    calm = limited.push(repo)  # without the race, the buildpack prints all it holds
    assert calm.returncode == 0, calm.stderr
    assert "harmless" in calm.stderr and "read all" in calm.stderr
    racer = threading.Thread(target=race)
    racer.start()
    try:
        results = []
        for attempt in range(6):
            limited.commit(repo, {"n.txt": str(attempt)})
            results.append(limited.push(repo))
    finally:
        stop.set()
        racer.join()
    output = "\n".join(r.stderr for r in results)
    assert "Using buildpack" in output
    # nothing of what the symlinks point at: no content, and not even a name from inside
    # (a copy that followed one and then failed names what it found there: `d007/Procfile`)
    inside = set(re.findall(r"/d\d{3}/([^'’\s]+)", output))
    assert inside <= {"note.txt"}, inside
    assert VICTIM_SECRET not in output
    assert "worker_processes" not in output and "server_name" not in output
    assert str(limited.state) not in output


# the build's own network
def test_a_build_cannot_reach_the_hosts_loopback(limited: PushdUnderTest):
    bind_port = free_port()
    reached_bound: list[int] = []
    stop = threading.Event()

    def probe_bound() -> None:  # whether the build's own listener shows up on the host
        while not stop.is_set():
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", bind_port)) == 0:
                    reached_bound.append(bind_port)
            stop.wait(0.02)

    prober = threading.Thread(target=probe_bound)
    with loopback_service() as (port, accepted):
        prober.start()
        try:
            ports = f"'HOSTPORTS={port} {limited.ssh_port}'"
            result = hostile_app(limited, "netprobe", "loopback", ports, f"BINDPORT={bind_port}")
        finally:
            stop.set()
            prober.join()
    assert result.returncode == 0, result.stderr
    lines = remote_lines(result)
    assert f"remote:        no way to 127.0.0.1:{port}" in lines, lines
    assert f"remote:        no way to 127.0.0.1:{limited.ssh_port}" in lines, lines
    assert accepted == []
    assert f"remote:        bound 127.0.0.1:{bind_port}" in lines  # inside its own network
    assert reached_bound == []


# (c) a zip bomb
def test_a_small_push_of_a_huge_zero_file_is_refused_before_inflating(limited: PushdUnderTest):
    repo = limited.new_app_repo("bombed", python_app("still serving"), user="alice")
    assert limited.push(repo).returncode == 0
    limited.wait_for("bombed", "still serving")
    with open(repo / "zeros.bin", "wb") as fh:
        fh.truncate(1024 ** 3)  # 1 GB of zeros: about 1 MB on the wire
    sh(["git", "add", "zeros.bin"], cwd=repo, check=True, env=limited.env())
    sh(["git", "commit", "-q", "-m", "bomb"], cwd=repo, check=True, env=limited.env())
    pid = limited.daemon_pid()
    assert pid
    before = high_water_kb(pid)
    result = limited.push(repo)
    after = high_water_kb(pid)
    assert result.returncode != 0
    assert ("remote:  !     push refused: a file of 1024 MB is larger than 4 MB "
            "(max_object_mb)") in said(result), result.stderr
    assert " ! [remote rejected] main -> main (pack refused)" in said(result), result.stderr
    assert after - before < 64 * 1024, (before, after)  # not the 1 GB it would inflate to
    assert limited.http("bombed").body.startswith("still serving")
    assert "v2" not in limited.ssh("releases", "bombed", user="alice").stdout


# (d) a build without limits
def test_a_build_that_eats_memory_is_stopped(limited: PushdUnderTest):
    result = hostile_app(limited, "memhog", "memory")
    assert result.returncode != 0
    assert ("remote:  !     Build exceeded its memory limit of 128 MB and was stopped"
            in said(result)), result.stderr
    assert "[remote rejected]" in result.stderr


def test_a_build_that_forks_without_end_is_stopped(limited: PushdUnderTest):
    result = hostile_app(limited, "forker", "forks")
    assert result.returncode != 0
    assert "fork refused after" in result.stderr
    assert ("remote:  !     Build reached its limit of 64 processes"
            in said(result)), result.stderr


def test_a_build_that_spins_is_held_to_its_cpu_quota(limited: PushdUnderTest):
    groups: list[Path] = []
    throttled: list[int] = []

    def watch() -> None:
        prefix = group_prefix(limited.state, app_id(limited, "spinner"))

        def spinning_group():
            found = list(Path("/sys/fs/cgroup/cpu/pushd").glob(f"{prefix}*"))
            for group in found:
                try:
                    stat = dict(line.split() for line in
                                (group / "cpu.stat").read_text().splitlines())
                    quota = int((group / "cpu.cfs_quota_us").read_text())
                except OSError:
                    continue
                if int(stat["nr_throttled"]) > 0:
                    groups.append(group)
                    throttled.append(quota)
                    return True
            return False

        wait_until(spinning_group, timeout=60, interval=0.05)

    assert limited.ssh("apps:create", "spinner", user="alice").returncode == 0
    watcher = threading.Thread(target=watch)
    watcher.start()
    result = hostile_app(limited, "spinner", "cpu", create=False)
    watcher.join()
    assert result.returncode == 0, result.stderr
    assert "spun" in result.stderr
    assert throttled == [20_000]  # 20 % of one core, and the kernel did hold it there


# (e) an endless line
def test_a_line_without_newline_is_capped(limited: PushdUnderTest):
    pid = limited.daemon_pid()
    before = high_water_kb(pid)
    result = hostile_app(limited, "longline", "longline")
    assert result.returncode == 0, result.stderr
    assert high_water_kb(pid) - before < 32 * 1024
    lines = remote_lines(result)
    long = [line for line in lines if "xxxx" in line]
    assert len(long) == 1 and long[0].endswith("x [line truncated]"), [x[-40:] for x in long]
    assert len(long[0]) < 9000
    assert "remote:        after the long line" in lines
    assert len(result.stderr) < 100_000


# (f) a sparse file
def test_a_sparse_file_does_not_stall_the_slug(limited: PushdUnderTest):
    result = hostile_app(limited, "sparse", "sparse")
    assert result.returncode == 0, result.stderr
    assert "made huge.bin" in result.stderr
    assert limited.http("sparse").body.startswith("sparse")
    size = limited.ssh("run", "sparse", "stat", "-c", "%s", "huge.bin", user="alice")
    assert size.stdout.strip() == str(100 * 1024 ** 3)


# (g) the build cache quota
def test_the_build_cache_cannot_grow_past_its_quota(limited: PushdUnderTest):
    result = hostile_app(limited, "cachefill", "cache")
    assert result.returncode == 0, result.stderr
    assert "No space left on device" in result.stderr
    assert "cache filled" in result.stderr
    images = [p for p in limited.state.glob("apps/*/cache.img")]
    assert images
    for image in images:  # what the caches hold on the host's disk
        assert image.stat().st_blocks * 512 <= 16 * 1024 * 1024
    assert not any(limited.state.glob("apps/*/cache/fill"))
