"""The app log on a full disk (lines dropped and counted, a marker once space is back) and a
follower that falls behind rotation (no file lost; a counted marker when it must skip)."""

import os
import threading
import time
from pathlib import Path

from pushd.logs import AppLog, format_line


def _numbers(lines: list[str]) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in lines if " seq " in line]


def test_a_full_disk_drops_and_counts_lines_then_marks_the_gap(tmp_path: Path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = AppLog(folder / "app.log")
    log.write("app", "web.1", "seq 0")
    real = folder / "real.log"
    os.replace(folder / "app.log", real)
    (folder / "app.log").symlink_to("/dev/full")  # every write: ENOSPC
    for i in range(1, 6):
        log.write_lines([format_line("app", "web.1", f"seq {i}")])  # never raises
    assert log.dropped == 5
    (folder / "app.log").unlink()
    os.replace(real, folder / "app.log")
    log.write("app", "web.1", "seq 6")
    lines = log.read(10)
    assert _numbers(lines) == [0, 6]
    assert "pushd[web.1]: -- 5 lines dropped: No space left on device --" in lines[1]
    assert log.dropped == 0


def test_a_line_torn_by_a_full_disk_is_ended_before_the_marker(tmp_path: Path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = AppLog(folder / "app.log")
    log.write("app", "web.1", "seq 0")
    with open(folder / "app.log", "ab") as fh:
        fh.write(b"2026-11-28T10:00:00.000000+00:00 app[web.1]: seq 1 torn")  # what got out
    log._drop([format_line("app", "web.1", "seq 1"), format_line("app", "web.1", "seq 2")],
              written=20, err=OSError(28, "No space left on device"))
    assert log.dropped == 2 and log.torn
    log.write("app", "web.1", "seq 3")
    lines = log.read(10)
    assert lines[1].endswith("seq 1 torn\n")
    assert "-- 2 lines dropped: No space left on device --" in lines[2]
    assert _numbers([lines[3]]) == [3]


def _read_by_a_blocked_follower(tmp_path: Path, total: int) -> list[str]:
    """What a follower of a 4000-byte-rotated log saw of `total` lines written while it was
    blocked (2 s, a stalled ssh channel) on the first one."""
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=4000)
    seen: list[str] = []
    done = threading.Event()
    started = threading.Event()

    def follow():
        for line in log.follow(stop=done.is_set, poll=0.01):
            seen.append(line)
            if len(seen) == 1:
                started.set()
                time.sleep(2.0)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.2)
    log.write("app", "web.1", "seq 0")
    started.wait(5)
    for i in range(1, total):
        log.write("app", "web.1", f"seq {i}")
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    while total - 1 not in _numbers(seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    thread.join()
    return seen


def test_a_follower_blocked_across_two_rotations_loses_no_line(tmp_path: Path):
    seen = _read_by_a_blocked_follower(tmp_path, 250)  # ~3.2 files: the log rotates 3 times
    assert not [line for line in seen if "dropped" in line]
    assert _numbers(seen) == list(range(250))


def test_a_follower_too_far_behind_says_how_many_lines_it_skipped(tmp_path: Path):
    total = 400  # ~8 files: more than the follower keeps
    seen = _read_by_a_blocked_follower(tmp_path, total)
    numbers = _numbers(seen)
    markers = [line for line in seen if "lines dropped" in line]
    skipped = sum(int(line.split()[1]) for line in markers)
    assert numbers == sorted(numbers) and numbers[-1] == total - 1
    assert markers and skipped == total - len(numbers)


def test_platform_lines_dropped_by_separate_writers_are_counted_together(tmp_path):
    """The daemon writes an app's platform lines from several places (supervisor, deploys,
    commands): they share one writer, so every line a full disk dropped is in one marker."""
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "app.log"
    AppLog.shared(path, 10**6).write("pushd", "web.1", "before")
    real = folder / "real.log"
    os.replace(path, real)
    path.symlink_to("/dev/full")
    AppLog.shared(path, 10**6).write("pushd", "web.1", "State changed from starting to up")
    AppLog.shared(path, 10**6).write("pushd", "api", "Release v2 created by user alice")
    path.unlink()
    os.replace(real, path)
    AppLog.shared(path, 10**6).write("pushd", "web.1", "after")
    lines = AppLog(path).read(10)
    assert "-- 2 lines dropped: No space left on device --" in lines[1]
    assert lines[2].endswith("pushd[web.1]: after\n")
