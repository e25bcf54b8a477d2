"""Router lines in each app's log and the router's metrics: nginx sends one record per app
request (router/records.py) as a syslog datagram to `nginx/router-log.sock`; this receiver (a
daemon thread) counts each in the metrics and per-app figures and turns it into Heroku's router
line in the app's log:

    pushd[router]: at=info method=GET path="/x" host=myapp.localhost request_id=… fwd="127.0.0.1"
    dyno=web.2 connect=0ms service=12ms status=200 bytes=1234 protocol=http

and for errors `at=error code=H12 desc="Request timeout" …`. nginx never waits on it: a
datagram nobody reads is dropped. Volume is bounded per app (`RATE` lines per second, bursts
up to `BURST`); what is over is counted and reported in one line per flush.

A request costs one `recv` and one dictionary lookup here: requests are counted by kind (app,
status, dyno, code, answer time), and metrics, figures and log lines are written once per
batch (`FLUSH`), so the router's throughput barely notices (`scripts/bench --observability`)."""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import metrics
from ..logs import AppLog, format_line
from .records import Kind, line_of, parse_kind
from .stats import AppStats

log = logging.getLogger("pushd.router")

STATS_EVERY = 5.0  # seconds between two writes of an app's router-stats.json
STATS_FILE = "router-stats.json"
RATE = 500.0
BURST = 2000.0
FLUSH = 0.2  # seconds between two writes of the lines, metrics and figures taken
RECV_SIZE = 16384  # a record is at most a few KB (nginx's request line limit)
KINDS_KEPT = 10_000  # kinds remembered between batches (answer times make new ones)


QLEN = Path("/proc/sys/net/unix/max_dgram_qlen")
QLEN_WANTED = 512  # systemd's default: nginx drops a record it cannot queue (Linux's is 10)


def queue_length(setting: Path = QLEN) -> int:
    """How many datagrams a unix socket queues before a sender's are dropped (read by the
    kernel when a socket is made)."""
    try:
        return int(setting.read_text())
    except (OSError, ValueError):
        return 10


def raise_queue_length(setting: Path = QLEN, wanted: int = QLEN_WANTED) -> int:
    """Raise the host's unix datagram queue to `wanted` (never lower it), as systemd does at
    boot, before the receiver's socket is made: at Linux's default of 10 a burst of requests
    loses router lines and counts. The length now in force."""
    now = queue_length(setting)
    if now < wanted:
        try:
            setting.write_text(f"{wanted}\n")
        except OSError as err:
            log.warning("router lines may be dropped in bursts: could not raise %s from %d to "
                        "%d: %s", setting, now, wanted, err)
            return now
        log.info("raised %s from %d to %d for the router's records", setting, now, wanted)
    return queue_length(setting)


def pause_for(queue: int) -> float:
    """How long the receiver lets datagrams queue between two takes: less than Linux's
    default queue of 10 fills at ~10,000 requests/s; longer with systemd's 512."""
    return 0.001 if queue < 64 else 0.005


class _App:
    """One app's share of the receiver: its line budget, lines to write, figures."""

    __slots__ = ("tokens", "dropped", "records", "stats")

    def __init__(self) -> None:
        self.tokens, self.dropped = BURST, 0
        self.records: list[tuple[Kind, bytes, int]] = []
        self.stats: AppStats | None = None


class _Tally:
    """Requests of one kind taken since the last flush."""

    __slots__ = ("kind", "app", "n")

    def __init__(self, kind: Kind, app: _App) -> None:
        self.kind, self.app, self.n = kind, app, 0


class RouterLogReceiver:
    """Bind the socket (root's and the nginx workers' group's), then write lines until
    `stop` is set."""

    def __init__(self, socket_path: Path, app_ids: Any, log_file: Any, max_bytes: int,
                 group: int | None) -> None:
        self.path, self.app_ids, self.log_file = socket_path, app_ids, log_file
        self.max_bytes, self.group = max_bytes, group
        self.lines_written = 0
        self._apps: dict[str, _App] = {}
        self._tallies: dict[bytes, _Tally] = {}
        self._changed: set[str] = set()
        self._stats_written = 0.0
        self._refilled = time.monotonic()

    def bind(self) -> socket.socket:
        """A blocking socket whose `recv` gives up after FLUSH (SO_RCVTIMEO): one system call
        per datagram, and a wake-up to flush when nothing comes."""
        self.path.unlink(missing_ok=True)
        raise_queue_length()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        if self.group is not None:
            os.chown(self.path, 0, self.group)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", 0, int(FLUSH * 1_000_000)))
        return sock

    def run(self, stop: threading.Event) -> None:
        try:
            sock = self.bind()
        except OSError as err:
            log.error("router lines will not reach app logs: %s: %s", self.path, err)
            return
        pause = pause_for(queue_length())

        def queued(size: int) -> bytes:
            return sock.recv(size, socket.MSG_DONTWAIT)
        with sock:
            while not stop.is_set():
                until = time.monotonic() + FLUSH
                # Woken by one datagram, then asleep while more queue: a datagram sent while
                # this sleeps wakes nobody (cheaper for nginx too), and one wake-up takes many.
                while self.drain(sock.recv, until, most=1) and time.monotonic() < until:
                    time.sleep(pause)
                    self.drain(queued, until)
                self.flush()
        self.flush()

    def drain(self, recv: Callable[[int], bytes], until: float, most: int = 1 << 30) -> int:
        """Take up to `most` datagrams until `until` or until none comes (`recv` raises
        BlockingIOError or TimeoutError): count each by its kind, keep those within their
        app's budget."""
        tallies, monotonic, taken = self._tallies, time.monotonic, 0
        while taken < most:
            try:
                data = recv(RECV_SIZE)
            except (BlockingIOError, TimeoutError):
                return taken
            except OSError as err:
                log.warning("router log socket: %s", err)
                return taken
            taken += 1
            start = data.find(b": ") + 2
            end = data.find(b"\n", start)
            if start > 1 and end > 0:
                tally = tallies.get(data[start:end])
                if tally is None:
                    tally = self._tally(data[start:end])
                if tally is not None:
                    tally.n += 1
                    app = tally.app
                    if app.tokens >= 1.0:
                        app.tokens -= 1.0
                        app.records.append((tally.kind, data, end + 1))
                    else:
                        app.dropped += 1
            if monotonic() >= until:
                return taken
        return taken

    def _tally(self, key: bytes) -> _Tally | None:
        kind = parse_kind(key)
        if kind is None:
            return None
        if len(self._tallies) >= KINDS_KEPT:
            self._count()
            self._tallies.clear()
        app = self._apps.get(kind.app)
        if app is None:
            app = self._apps[kind.app] = _App()
        tally = self._tallies[key] = _Tally(kind, app)
        return tally

    def _count(self) -> None:
        """What the tallies hold, into the metrics and each app's figures."""
        for tally in self._tallies.values():
            if not tally.n:
                continue
            kind, n = tally.kind, tally.n
            tally.n = 0
            metrics.router.add(kind.app, kind.status, kind.dyno, kind.code, kind.seconds, n)
            app = tally.app
            if app.stats is None:
                app_id = self.app_ids(kind.app)
                app.stats = (AppStats() if app_id is None else
                             AppStats.load(self.log_file(app_id).with_name(STATS_FILE)))
            app.stats.add(kind.status, None if kind.seconds is None else kind.seconds * 1000,
                          n=n)
            self._changed.add(kind.app)

    def flush(self) -> None:
        """Counts into the metrics and figures, kept records into log lines, budgets refilled."""
        self._count()
        now = time.monotonic()
        refill, self._refilled = (now - self._refilled) * RATE, now
        for name, app in self._apps.items():
            lines = [line for kind, data, rest in app.records
                     if (line := self._line(kind, data, rest)) is not None]
            app.records = []
            if app.dropped:
                metrics.router_lines_dropped.labels(name).inc(app.dropped)
                lines.append(format_line("pushd", "router", f"-- {app.dropped} router lines "
                                         f"dropped: over {RATE:.0f} a second --"))
                app.dropped = 0
            app.tokens = min(BURST, app.tokens + refill)
            if lines:
                self._write(name, lines)
        if now - self._stats_written >= STATS_EVERY:
            self._stats_written = now
            changed, self._changed = self._changed, set()
            for name in changed:
                app_id = self.app_ids(name)
                stats = self._apps[name].stats
                if app_id is not None and stats is not None:
                    try:
                        stats.write(self.log_file(app_id).with_name(STATS_FILE))
                    except OSError as err:
                        log.warning("router figures of %s not written: %s", name, err)

    @staticmethod
    def _line(kind: Kind, data: bytes, rest: int) -> str | None:
        message = line_of(kind, data, rest)
        return None if message is None else format_line("pushd", "router", message)

    def _write(self, name: str, lines: list[str]) -> None:
        app_id = self.app_ids(name)
        if app_id is None:
            return
        try:
            AppLog.shared(self.log_file(app_id), self.max_bytes).write_lines(lines)
            self.lines_written += len(lines)
        except OSError as err:
            log.warning("router lines of %s not written: %s", name, err)
