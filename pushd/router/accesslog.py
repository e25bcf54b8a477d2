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

from ..logs import AppLog, format_line

log = logging.getLogger("pushd.router")

RATE = 500.0
BURST = 2000.0
FLUSH = 0.2
DESCRIPTIONS = {"H10": "App crashed", "H12": "Request timeout",
                "H13": "Connection closed without response", "H14": "No web dynos running",
                "H80": "Maintenance mode"}
FIELDS = ("method", "path", "host", "request_id", "fwd", "dyno", "connect", "service",
          "status", "bytes", "protocol")
QUOTED = {"path", "fwd", "desc"}


def router_line(entry: dict[str, str]) -> str:
    """The message of a router line from nginx's JSON fields (values from the request are
    quoted where they may hold spaces, their quotes escaped)."""
    code = entry.get("code", "")
    head = "at=info" if not code else f'at=error code={code} desc="{DESCRIPTIONS.get(code, "")}"'
    parts = [head]
    for name in FIELDS:
        value = str(entry.get(name, "")).replace('"', "%22") or "-"
        parts.append(f'{name}="{value}"' if name in QUOTED else f"{name}={value.replace(' ', '')}")
    return " ".join(parts)


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
        if self._buckets[app].take():
            self._pending[app].append(format_line("pushd", "router", router_line(entry)))

    def flush(self) -> None:
        for app, bucket in self._buckets.items():
            if bucket.dropped:
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
