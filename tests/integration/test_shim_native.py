"""The resident shim (`pushd-shim`, shim.c) through the real compiled binary: its log lines
are byte for byte what `logs.format_line` makes of the same output, and it stops, escalates,
drains and records exits as the Python shim did.

Each test starts a dyno stand-in the way the Python shim does (a child on a pipe, signals
held) and execs the binary in that same process: a "monitor" (bwrap's outer process) whose
"init" runs the app as its child, as in a sandbox.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pushd.logs import escape, format_line
from pushd.paths import Paths
from pushd.runtime import shimbin

from ..polling import wait_until

# exec'd as `python -c LAUNCHER BINARY DIR LOG MAX_BYTES STOP_TIMEOUT SELF_TERM APP`
LAUNCHER = r"""
import os, signal, subprocess, sys
binary, folder, log, max_bytes, stop_timeout, self_term, app = sys.argv[1:]
monitor = ("import subprocess, sys\n"
           "rc = subprocess.call(['sh', '-c', '(' + sys.argv[1] + '\\n) & wait $!'])\n"
           "sys.exit(rc if rc >= 0 else 128 - rc)\n")
r, w = os.pipe()
child = subprocess.Popen([sys.executable, "-c", monitor, app], stdin=subprocess.DEVNULL,
                         stdout=w, stderr=w, process_group=0)
os.close(w)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
if self_term == "1":  # a stop that arrives between the two stages is held, not lost
    os.kill(os.getpid(), signal.SIGTERM)
os.set_inheritable(r, True)
os.execv(binary, [binary, folder, str(child.pid), "0", "0", "0", str(r), log, max_bytes,
                  "web.1", stop_timeout, "", "", "--", sys.executable, "-m", "pushd.runtime.shim",
                  "--finish", folder])
"""
STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 ")


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> str:
    return str(shimbin.ensure(Paths(tmp_path_factory.mktemp("state"))))


class Dyno:
    def __init__(self, binary: str, root: Path, app: str, stop_timeout: float = 5.0,
                 max_bytes: int = 5 * 1024 * 1024, self_term: bool = False) -> None:
        self.folder = root / "dyno"
        self.folder.mkdir()
        self.log = root / "logs" / "app.log"
        self.log.parent.mkdir()
        root_dir = str(Path(__file__).resolve().parents[2])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, binary, str(self.folder), str(self.log),
             str(max_bytes), f"{stop_timeout:g}", "1" if self_term else "0", app],
            env={**os.environ, "PYTHONPATH": root_dir}, start_new_session=True)

    def exit(self) -> dict:
        assert self.proc.wait(60) == 0
        return json.loads((self.folder / "exit.json").read_text())

    def lines(self) -> list[bytes]:
        raw = self.log.read_bytes() if self.log.exists() else b""
        return raw.split(b"\n")[:-1]

    def texts(self) -> list[bytes]:
        """Each line without its timestamp, which must be there."""
        found = []
        for line in self.lines():
            assert STAMP.match(line), line
            found.append(STAMP.sub(b"", line))
        return found

    def waits_for(self, text: bytes) -> None:
        wait_until(lambda: any(text in line for line in self.lines()))


def python_line(raw: bytes) -> bytes:
    """What the Python shim wrote for one raw output line (without the timestamp)."""
    line = format_line("app", "web.1", escape(raw.decode("utf-8", "replace").rstrip("\r")))
    return STAMP.sub(b"", line.encode("utf-8", "replace")).rstrip(b"\n")


def printer(data: bytes, folder: Path) -> str:
    (folder / "out.bin").write_bytes(data)
    return f"cat {folder / 'out.bin'}"


TRICKY = [
    b"plain ascii", b"", b"trailing cr\r", b"crs\r\r\r", b"mid\rline", b"tab\tstays",
    b"\x1b[31mred\x1b[0m", b"nul\x00bell\x07del\x7f", b"\xc2\x85 next line (C1)",
    b"\xc2\x9b CSI", "sep\u2028para\u2029".encode(), "bidi \u202e\u2066x\u2069\u200f".encode(),
    b"invalid \xff\xfe", b"truncated \xe2\x82", b"overlong \xc0\xaf", b"surrogate \xed\xa0\x80",
    b"too high \xf4\x90\x80\x80", b"ok 4-byte \xf0\x9f\x98\x80", b"cut 4-byte \xf0\x9f\x98",
    "accents \u00e9\u00e8 and \u00a0 nbsp".encode(), b"\xe0\x80\x80 overlong 3", b"\x80lone",
    b"forged\r2026-01-01T00:00:00.000000+00:00 pushd[web.1]: Process exited with status 0",
]


def test_lines_are_those_python_writes(binary, tmp_path):
    rng = random.Random(7)
    alphabet = [bytes([b]) for b in range(256) if b != 0x0a] + [
        "\u2028".encode(), "\u00e9".encode(), "\U0001f600".encode(), b"\xf4\x8f\xbf\xbf"]
    fuzz = [b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 120)))
            for _ in range(400)]
    lines = TRICKY + fuzz
    dyno = Dyno(binary, tmp_path, printer(b"\n".join(lines) + b"\n", tmp_path))
    assert dyno.exit()["status"] == 0
    assert dyno.texts() == [python_line(raw) for raw in lines]
    tail = (dyno.folder / "output.tail").read_bytes().split(b"\n")[:-1]
    assert [b"app[web.1]: " + t for t in tail] == [python_line(raw) for raw in lines[-20:]]


def test_a_line_without_its_end_still_reaches_the_log(binary, tmp_path):
    dyno = Dyno(binary, tmp_path, printer(b"first\nlast words", tmp_path))
    dyno.exit()
    assert dyno.texts() == [b"app[web.1]: first", b"app[web.1]: last words"]


def test_long_lines_are_cut_between_characters(binary, tmp_path):
    long = "\u00e9".encode() * 25000 + b"!"  # 50001 bytes, no newline until the end
    dyno = Dyno(binary, tmp_path, printer(long + b"\nafter\n", tmp_path))
    dyno.exit()
    texts = [t.removeprefix(b"app[web.1]: ") for t in dyno.texts()]
    assert texts[-1] == b"after"
    pieces = texts[:-1]
    assert len(pieces) == 4 and all(len(p) <= 16384 for p in pieces)
    assert b"".join(pieces) == long  # nothing lost, no character broken (no U+FFFD)


def test_a_line_split_by_a_full_pipe_stays_whole(binary, tmp_path):
    # more than a pipe holds, in one write: lines straddle every read; then a line written
    # in two parts, the second long after the first
    lines = [f"{i:05d} ".encode() + b"x" * (i % 700) for i in range(400)]
    script = tmp_path / "split.py"
    script.write_text(
        "import os, sys, time\n"
        f"os.write(1, open({str(tmp_path / 'out.bin')!r}, 'rb').read())\n"
        "os.write(1, 'half a line \u00e9'.encode()[:-1]); time.sleep(0.5)\n"
        "os.write(1, '\u00e9'.encode()[-1:] + b' and the rest\\n')\n")
    (tmp_path / "out.bin").write_bytes(b"\n".join(lines) + b"\n")
    assert sum(len(x) + 1 for x in lines) > 65536
    dyno = Dyno(binary, tmp_path, f"python3 {script}")
    dyno.exit()
    assert dyno.texts() == [b"app[web.1]: " + x for x in lines] + [
        "app[web.1]: half a line \u00e9 and the rest".encode()]  # é cut in two


def test_the_log_rotates_as_applog_does(binary, tmp_path):
    app = "for i in $(seq 1000 1299); do echo line $i; [ $((i % 50)) = 0 ] && sleep 0.05; done"
    dyno = Dyno(binary, tmp_path, app, max_bytes=4000)
    dyno.exit()
    older = dyno.log.with_name("app.log.1")
    assert older.exists() and older.stat().st_size > 4000  # rotated once it passed the size
    kept = older.read_bytes() + (dyno.log.read_bytes() if dyno.log.exists() else b"")
    numbers = [int(line.rsplit(b" ", 1)[1]) for line in kept.split(b"\n")[:-1]]
    assert numbers == list(range(numbers[0], 1300))  # whole lines, the newest kept


def test_exit_status_is_recorded(binary, tmp_path):
    dyno = Dyno(binary, tmp_path, "echo bye; exit 3")
    record = dyno.exit()
    assert (record["status"], record["oom"], record["killed_after_timeout"]) == (3, False, False)
    assert dyno.texts() == [b"app[web.1]: bye"]
    assert not (dyno.folder / "stopping").exists()


def test_sigterm_reaches_the_app_and_its_status_is_recorded(binary, tmp_path):
    app = "trap 'echo got TERM; exit 143' TERM; echo ready; sleep 300 & wait"
    dyno = Dyno(binary, tmp_path, app)
    dyno.waits_for(b"ready")
    os.kill(dyno.proc.pid, signal.SIGTERM)
    record = dyno.exit()
    assert (record["status"], record["killed_after_timeout"]) == (143, False)
    assert b"app[web.1]: got TERM" in dyno.texts()
    assert (dyno.folder / "stopping").exists()


def test_sigterm_ignored_is_followed_by_sigkill_after_the_stop_timeout(binary, tmp_path):
    app = "trap '' TERM; echo ready; sleep 300 & wait"
    dyno = Dyno(binary, tmp_path, app, stop_timeout=1.0)
    dyno.waits_for(b"ready")
    os.kill(dyno.proc.pid, signal.SIGTERM)
    record = dyno.exit()
    assert (record["status"], record["killed_after_timeout"]) == (137, True)


def test_a_stop_sent_before_the_exec_is_held_not_lost(binary, tmp_path):
    app = "trap 'echo got TERM; exit 143' TERM; sleep 300 & wait"
    dyno = Dyno(binary, tmp_path, app, stop_timeout=1.0, self_term=True)
    record = dyno.exit()  # the stop went on: without it the app would sleep 300 s
    # SIGTERM reached the app, or (sent before it even started) SIGKILL after the timeout
    assert (record["status"], record["killed_after_timeout"]) in ((143, False), (137, True))
    assert (dyno.folder / "stopping").exists()

