"""One drain's sender: a bounded buffer the log follower fills, a thread that empties it.

A drain that is down or slow blocks nobody: `offer` never waits; past `BUFFER_LINES` waiting
lines the oldest are dropped and counted. Connection failures back off (1 s doubling to 60 s);
lines stay buffered meanwhile. Syslog drains get one octet-counted message per line over a
kept TCP connection; HTTP(S) drains get batched POSTs in Heroku's `application/logplex-1`
body (the same framed messages), `Logplex-Msg-Count` and `Logplex-Drain-Token` headers."""

from __future__ import annotations

import base64
import collections
import http.client
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import InvalidValue
from . import syslog, urls

log = logging.getLogger("pushd.drains")

BUFFER_LINES = 10_000
BATCH_LINES = 500
TIMEOUT = 10.0
MAX_BACKOFF = 60.0


@dataclass
class DrainStats:
    sent: int = 0
    dropped: int = 0
    error: str = ""
    since: float = field(default_factory=time.time)


class Shipper:
    def __init__(self, app: str, drain: urls.DrainURL, admin_added: bool) -> None:
        self.app, self.drain, self.admin_added = app, drain, admin_added
        self.stats = DrainStats()
        self._lines: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"drain-{drain.token}")

    def start(self) -> Shipper:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._close()

    def offer(self, line: str) -> None:
        """Queue one log line; never blocks (the oldest go when the buffer is full)."""
        framed = syslog.message(self.app, line)
        with self._cond:
            if len(self._lines) >= BUFFER_LINES:
                self._lines.popleft()
                self.stats.dropped += 1
            self._lines.append(framed)
            self._cond.notify()

    def _take(self) -> list[bytes] | None:
        with self._cond:
            while not self._lines and not self._stop:
                self._cond.wait(1.0)
            if self._stop:
                return None
            return [self._lines.popleft() for _ in range(min(BATCH_LINES, len(self._lines)))]

    def _putback(self, batch: list[bytes]) -> None:
        with self._cond:
            self._lines.extendleft(reversed(batch))
            while len(self._lines) > BUFFER_LINES:
                self._lines.popleft()
                self.stats.dropped += 1

    def _run(self) -> None:
        backoff = 1.0
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._send(batch)
            except (OSError, http.client.HTTPException, InvalidValue) as err:
                self._putback(batch)
                self._close()
                reason = str(err) or type(err).__name__
                if reason != self.stats.error:
                    log.warning("drain %s of %s: %s", self.drain.shown, self.app, reason)
                self.stats.error = reason
                with self._cond:
                    self._cond.wait_for(lambda: self._stop, timeout=backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.stats.sent += len(batch)
            self.stats.error = ""
            backoff = 1.0

    def _check_address(self) -> None:
        if not self.admin_added:
            urls.check_target(self.drain, admin=False)

    def _send(self, batch: list[bytes]) -> None:
        if self.drain.scheme == "syslog+tcp":
            if self._sock is None:
                self._check_address()
                self._sock = socket.create_connection((self.drain.host, self.drain.port),
                                                      timeout=TIMEOUT)
            self._sock.sendall(b"".join(batch))
            return
        self._check_address()
        cls = (http.client.HTTPSConnection if self.drain.scheme == "https"
               else http.client.HTTPConnection)
        extra = {"context": ssl.create_default_context()} if self.drain.scheme == "https" else {}
        conn = cls(self.drain.host, self.drain.port, timeout=TIMEOUT, **extra)
        try:
            parts = urlsplit(self.drain.url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {"Content-Type": "application/logplex-1",
                       "Logplex-Msg-Count": str(len(batch)),
                       "Logplex-Drain-Token": self.drain.token, "User-Agent": "pushd-drain"}
            if parts.username is not None:
                pair = f"{parts.username}:{parts.password or ''}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            conn.request("POST", path, body=b"".join(batch), headers=headers)
            answer = conn.getresponse()
            answer.read(4096)
            if answer.status >= 300:
                raise http.client.HTTPException(f"HTTP {answer.status} from the drain")
        finally:
            conn.close()

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
