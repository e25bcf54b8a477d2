import re
import threading
import time
from pathlib import Path

from pushd.logs import LINE_RE, AppLog, LogFilter, display, format_line


def test_line_format_is_herokus():
    line = format_line("app", "web.1", "hello\n", now=1795678585.123456)
    assert line == "2026-11-26T07:36:25.123456+00:00 app[web.1]: hello\n"
    assert LINE_RE.match(line).groups()[1:] == ("app", "web.1", "hello")


def test_rotation_keeps_size_bounded_and_recent_lines_readable(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=2000)
    for i in range(500):
        log.write("app", "web.1", f"line {i}")
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == ["app.log", "app.log.1"]
    assert all(f.stat().st_size <= 2000 + 200 for f in files)
    last = log.read(5)
    assert [line.rsplit(" ", 1)[1].strip() for line in last] == ["495", "496", "497", "498",
                                                                 "499"]


def test_follow_sees_new_lines_across_rotation(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=300)
    log.write("pushd", "api", "before")
    seen: list[str] = []
    done = threading.Event()

    def follow():
        for line in log.follow(stop=done.is_set, poll=0.01):
            seen.append(line)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.1)
    for i in range(20):
        log.write("app", "web.1", f"after {i}")
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while not any("after 19" in s for s in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    thread.join()
    assert not any("before" in s for s in seen)
    assert any("after 19" in s for s in seen)


def test_a_destroyed_apps_log_is_not_recreated(tmp_path: Path):
    log = AppLog(tmp_path / "gone" / "logs" / "app.log")
    log.write("pushd", "web.1", "late line")
    assert not (tmp_path / "gone").exists()


def test_read_zero_lines_is_nothing(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log")
    for i in range(3):
        log.write("app", "web.1", f"line {i}")
    assert log.read(0) == []
    assert [line.rsplit(" ", 1)[1] for line in log.read(1)] == ["2\n"]
    assert len(log.read(100)) == 3


def _follow_some(log: AppLog, count: int, **kwargs) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + 5
    for line in log.follow(stop=lambda: len(seen) >= count or time.monotonic() > deadline,
                           poll=0.01, **kwargs):
        seen.append(line.rsplit(": ", 1)[1].strip())
    return seen


def test_follow_starts_where_tail_stopped(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log")
    log.write("app", "web.1", "old")
    lines, end = log.tail(10)
    log.write("app", "web.1", "between")  # after the read, before following starts
    log.write("app", "web.1", "later")
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["old\n"]
    assert _follow_some(log, 2, since=end) == ["between", "later"]


def test_follow_from_a_position_survives_a_rotation_in_between(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=300)
    log.write("app", "web.1", "old")
    _, end = log.tail(10)
    for i in range(8):  # enough to rotate once
        log.write("app", "web.1", f"n{i}")
    assert (tmp_path / "logs" / "app.log.1").exists()
    assert _follow_some(log, 8, since=end) == [f"n{i}" for i in range(8)]


def test_tail_leaves_a_partial_line_to_follow(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "app.log"
    log = AppLog(path)
    log.write("app", "web.1", "whole")
    with open(path, "ab") as fh:
        fh.write(b"2026-11-26T07:36:25.123456+00:00 app[web.1]: hal")
    lines, end = log.tail(10)
    assert len(lines) == 1 and lines[0].endswith("whole\n")
    with open(path, "ab") as fh:
        fh.write(b"f\n")
    assert _follow_some(log, 1, since=end) == ["half"]


def test_follow_of_a_log_that_does_not_exist_yet_misses_nothing(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log")
    _, end = log.tail(10)
    log.write("app", "web.1", "first ever")
    assert _follow_some(log, 1, since=end) == ["first ever"]


def test_tail_reads_the_rotated_file_only_when_it_needs_more_lines(tmp_path: Path,
                                                                   monkeypatch):
    import pushd.logs

    (tmp_path / "logs").mkdir()
    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=2000)
    for i in range(60):
        log.write("app", "web.1", f"line {i}")
    assert (tmp_path / "logs" / "app.log.1").exists()
    opened: list[str] = []

    def recording_open(path, *args, **kwargs):  # noqa: ANN001, ANN202
        opened.append(Path(path).name)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(pushd.logs, "open", recording_open, raising=False)
    assert [line.rsplit(" ", 1)[1] for line in log.read(3)] == ["57\n", "58\n", "59\n"]
    assert opened == ["app.log"]
    opened.clear()
    current = len((tmp_path / "logs" / "app.log").read_text().splitlines())
    lines = log.read(current + 2)  # two more than app.log holds
    assert opened == ["app.log", "app.log.1"]
    assert [line.rsplit(" ", 1)[1] for line in lines][-1] == "59\n"
    assert len(lines) == current + 2


# what a hostile app prints to start a line of its own or to drive the reader's terminal
FORGERIES = ["\r", "\x1e", "\x1c", "\x1d", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\n"]


def test_app_output_cannot_forge_a_platform_line():
    for separator in FORGERIES:
        forged = f"ok{separator}2026-11-26T07:36:25.000000+00:00 pushd[api]: Deploy v9 by admin"
        line = format_line("app", "web.1", forged, now=1795678585.0)
        assert len(line.splitlines()) == 1, repr(separator)
        assert LogFilter(source="pushd")(line) is False
        assert LOG_LINE_ESCAPED.search(line), line


LOG_LINE_ESCAPED = re.compile(r"ok\\(x[0-9a-f]{2}|u[0-9a-f]{4})2026|ok 2026")


def test_terminal_escapes_are_shown_escaped():
    line = format_line("app", "web.1", "\x1b]0;owned\x07\x1b[2J\x9b31m\x00bye")
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
    assert line.endswith(r": \x1b]0;owned\x07\x1b[2J\x9b31m\x00bye" + "\n")
    assert format_line("app", "web.1", "tab\tstays").endswith(": tab\tstays\n")
    assert format_line("app", "web.1", "\u202eevil\u2066").endswith(r": \u202eevil\u2066" + "\n")
    assert format_line("app", "web.1", "caf\u00e9 \u2603").endswith(": caf\u00e9 \u2603\n")


def test_raw_lines_already_in_a_log_are_split_at_newlines_and_shown_escaped(tmp_path: Path):
    """A log written before escaping (or by hand) still holds raw breaks and escapes: they
    neither pass `-s pushd` nor reach the terminal raw."""
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "app.log"
    forged = "2026-11-26T07:36:25.000000+00:00 pushd[api]: forged"
    path.write_bytes(("".join(f"2026-11-26T07:36:24.000000+00:00 app[web.1]: x{sep}{forged}\n"
                              for sep in FORGERIES[:-1]) + "\x1b[31mred\n").encode())
    log = AppLog(path)
    assert log.read(100, LogFilter(source="pushd")) == []
    lines = log.read(100)
    assert len(lines) == len(FORGERIES)
    shown = [display(line) for line in lines]
    assert all(len(text.splitlines()) == 1 and text.endswith("\n") for text in shown)
    assert not any("\x1b" in text or "\r" in text for text in shown)
    assert shown[-1] == r"\x1b[31mred" + "\n"


def test_timestamps_match_isoformat_across_seconds():
    import datetime as dt
    import random

    from pushd.logs import timestamp
    moments = [0.0, 1.9999995, 1_800_000_000.000001, 1_800_000_000.9999996]
    moments += [random.uniform(0, 2e9) for _ in range(2000)]
    for moment in moments:
        want = dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="microseconds")
        assert timestamp(moment) == want, moment
