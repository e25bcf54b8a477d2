"""Live line streaming and the deadline, with real (unsandboxed) processes."""

import time

import pytest

from pushd.build.process import BuildTimeout, describe_seconds, run_streaming


def test_lines_arrive_as_they_are_printed(tmp_path):
    # the process prints its second line only once the first has reached us: if lines
    # waited for the process (or its output buffer), it would give up and exit 3
    seen = []
    heard = tmp_path / "heard"
    script = ("import os, sys, time\nprint('one', flush=True)\n"
              f"for _ in range(300):\n    if os.path.exists({str(heard)!r}): break\n"
              "    time.sleep(0.05)\nelse:\n    sys.exit(3)\nprint('two', end='')\n")

    def on_line(line: str) -> None:
        seen.append(line)
        heard.touch()

    status = run_streaming(["python3", "-c", script], on_line, time.monotonic() + 30, "compile")
    assert status == 0
    assert seen == ["one\n", "two\n"]


def test_exit_status_and_stderr_merged():
    lines = []
    status = run_streaming(["sh", "-c", "echo out; echo err >&2; exit 7"], lines.append,
                           time.monotonic() + 10, "compile")
    assert status == 7
    assert sorted(lines) == ["err\n", "out\n"]


def test_timeout_kills_the_whole_group(tmp_path):
    marker = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {marker}; echo started; wait"
    start = time.monotonic()
    with pytest.raises(BuildTimeout) as err:
        run_streaming(["sh", "-c", script], lambda line: None, time.monotonic() + 1,
                      "compile", timeout_label="1 second")
    assert time.monotonic() - start < 20  # it did not wait for the 30 s sleep
    assert err.value.phase == "compile"
    child = int(marker.read_text())
    time.sleep(0.2)
    assert not alive(child)  # the background grandchild died with its group


def alive(pid):
    """Running, not a zombie waiting for an init that may not reap here."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_describe_seconds():
    assert describe_seconds(900) == "15 minutes"
    assert describe_seconds(60) == "1 minute"
    assert describe_seconds(2) == "2 seconds"
    assert describe_seconds(1.5) == "1.5 seconds"


def test_an_endless_line_is_cut_and_the_rest_of_it_dropped():
    from pushd.build.process import MAX_LINE, TRUNCATED, LineSplitter

    seen: list[str] = []
    lines = LineSplitter(seen.append)
    lines.feed(b"first\nx")
    for _ in range(2000):  # 128 MB without a newline, fed as a pipe would
        lines.feed(b"x" * 65536)
        assert len(lines.pending) <= MAX_LINE + 65536  # never the whole line in memory
    lines.feed(b"x\nnext line\ntail")
    lines.close()
    assert seen == ["first\n", "x" * MAX_LINE + TRUNCATED + "\n", "next line\n", "tail\n"]


def test_collected_lines_stop_at_their_limit():
    from pushd.build.process import Collected

    kept = Collected(limit=10)
    for line in ("abcd\n", "efgh\n", "ijkl\n"):
        kept.append(line)
    assert kept.lines == ["abcd\n", "efgh\n"] and kept.overflow
