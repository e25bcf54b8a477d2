"""Router lines in each app's log: nginx sends one JSON object per app request as a syslog
datagram to `nginx/router-log.sock`; this receiver (a daemon thread) turns each into
Heroku's router line and appends it to the app's log:

    pushd[router]: at=info method=GET path="/x" host=myapp.localhost request_id=… fwd="127.0.0.1"
    dyno=web.2 connect=0ms service=12ms status=200 bytes=1234 protocol=http

and for errors `at=error code=H12 desc="Request timeout" …`. nginx never waits on it: a
datagram nobody reads is dropped. Volume is bounded per app (`RATE` lines per second, bursts
up to `BURST`); what is over is counted and reported in one line per second."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .. import metrics
from ..logs import AppLog, format_line
from .stats import AppStats

log = logging.getLogger("pushd.router")

STATS_EVERY = 5.0  # seconds between two writes of an app's router-stats.json
STATS_FILE = "router-stats.json"
RATE = 500.0
BURST = 2000.0
FLUSH = 0.2
DESCRIPTIONS = {"H10": "App crashed", "H12": "Request timeout",
                "H13": "Connection closed without response", "H14": "No web dynos running",
                "H80": "Maintenance mode"}


def router_line(entry: dict[str, str]) -> str:
    """The message of a router line from nginx's JSON fields: the request's own values
    (path, forwarded-for) quoted with their quotes escaped, the rest without spaces."""
    get = entry.get
    code = get("code", "")
    head = "at=info" if not code else f'at=error code={code} desc="{DESCRIPTIONS.get(code, "")}"'

    def word(name: str) -> str:
        return str(get(name, "")).replace(" ", "").replace('"', "%22") or "-"

    def quoted(name: str) -> str:
        return str(get(name, "")).replace('"', "%22") or "-"
    return (f'{head} method={word("method")} path="{quoted("path")}" host={word("host")} '
            f'request_id={word("request_id")} fwd="{quoted("fwd")}" dyno={word("dyno")} '
            f'connect={word("connect")} service={word("service")} status={word("status")} '
            f'bytes={word("bytes")} protocol={word("protocol")}')


def parse_datagram(data: bytes) -> dict[str, str] | None:
    """The JSON object of one syslog datagram (`<190>Nov 28 14:00:00 pushd: {...}`)."""
    start = data.find(b"{")
    if start < 0:
        return None
    try:
        entry = json.loads(data[start:].decode("utf-8", "replace"))
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def service_seconds(entry: dict[str, str]) -> float | None:
    """The last upstream's response time (nginx lists one per upstream tried), if any."""
    value = str(entry.get("rt", "")).replace(":", ",").split(",")[-1].strip()
    try:
        return float(value)
    except ValueError:
        return None  # "-": no upstream answered


_children: dict[tuple, object] = {}  # label values -> metric child: labels() costs per call


def _child(metric: object, *values: str):  # noqa: ANN202
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        if len(_children) > 10_000:
            _children.clear()
        child = _children[key] = metric.labels(*values)  # type: ignore[attr-defined]
    return child


def count(app: str, entry: dict[str, str], seconds: float | None) -> None:
    """The request in the router metrics (labels: the app, status class, dyno, H-code)."""
    status = str(entry.get("status", ""))
    _child(metrics.router_requests, app, metrics.status_class(status),
           str(entry.get("dyno", "-"))).inc()
    code = str(entry.get("code", ""))
    if code in DESCRIPTIONS:
        _child(metrics.router_errors, app, code).inc()
    if seconds is not None:
        _child(metrics.router_service, app).observe(seconds)


class _Bucket:
    def __init__(self) -> None:
        self.tokens, self.at, self.dropped = BURST, time.monotonic(), 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.at) * RATE)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


class RouterLogReceiver:
    """Bind the socket (root's and the nginx workers' group's), then write lines until
    `stop` is set."""

    def __init__(self, socket_path: Path, app_ids: Any, log_file: Any, max_bytes: int,
                 group: int | None) -> None:
        self.path, self.app_ids, self.log_file = socket_path, app_ids, log_file
        self.max_bytes, self.group = max_bytes, group
        self.lines_written = 0
        self._buckets: dict[str, _Bucket] = defaultdict(_Bucket)
        self._pending: dict[str, list[str]] = defaultdict(list)
        self._stats: dict[str, AppStats] = {}
        self._changed: set[str] = set()
        self._stats_written = 0.0

    def bind(self) -> socket.socket:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        if self.group is not None:
            os.chown(self.path, 0, self.group)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(FLUSH)
        return sock

    def run(self, stop: threading.Event) -> None:
        try:
            sock = self.bind()
        except OSError as err:
            log.error("router lines will not reach app logs: %s: %s", self.path, err)
            return
        last_flush = time.monotonic()
        with sock:
            while not stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    data = b""
                except OSError as err:
                    log.warning("router log socket: %s", err)
                    data = b""
                if data:
                    self._take(data)
                if time.monotonic() - last_flush >= FLUSH:
                    self.flush()
                    last_flush = time.monotonic()
        self.flush()

    def _take(self, data: bytes) -> None:
        entry = parse_datagram(data)
        if entry is None or not entry.get("app"):
            return
        app = str(entry["app"])
        seconds = service_seconds(entry)
        count(app, entry, seconds)
        if app not in self._stats:
            app_id = self.app_ids(app)
            self._stats[app] = (AppStats() if app_id is None else
                                AppStats.load(self.log_file(app_id).with_name(STATS_FILE)))
        self._stats[app].add(str(entry.get("status", "")),
                             None if seconds is None else seconds * 1000)
        self._changed.add(app)
        if self._buckets[app].take():
            self._pending[app].append(format_line("pushd", "router", router_line(entry)))

    def flush(self) -> None:
        for app, bucket in self._buckets.items():
            if bucket.dropped:
                metrics.router_lines_dropped.labels(app).inc(bucket.dropped)
                self._pending[app].append(format_line(
                    "pushd", "router", f"-- {bucket.dropped} router lines dropped: over "
                    f"{RATE:.0f} a second --"))
                bucket.dropped = 0
        pending, self._pending = self._pending, defaultdict(list)
        for app, lines in pending.items():
            app_id = self.app_ids(app)
            if app_id is None or not lines:
                continue
            try:
                AppLog.shared(self.log_file(app_id), self.max_bytes).write_lines(lines)
                self.lines_written += len(lines)
            except OSError as err:
                log.warning("router lines of %s not written: %s", app, err)
        if time.monotonic() - self._stats_written >= STATS_EVERY:
            self._stats_written = time.monotonic()
            changed, self._changed = self._changed, set()
            for app in changed:
                app_id = self.app_ids(app)
                if app_id is not None:
                    try:
                        self._stats[app].write(self.log_file(app_id).with_name(STATS_FILE))
                    except OSError as err:
                        log.warning("router figures of %s not written: %s", app, err)
