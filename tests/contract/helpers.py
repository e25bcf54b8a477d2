"""What the contract tests share: a tiny web app, HTTP to an endpoint, the app log, a real
pipe client for one-offs."""

from __future__ import annotations

import os
import re
import threading
import urllib.request
from typing import TYPE_CHECKING

from pushd.logs import AppLog
from pushd.runtime.base import Runtime
from pushd.runtime.records import DynoInfo, Endpoint

if TYPE_CHECKING:
    from .conftest import Harness

# answers with a token drawn at boot (the same token: the same process) and the $PORT it bound
SERVER = """
import http.server, os
TOKEN = os.urandom(8).hex()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{TOKEN} {os.environ['PORT']}".encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
print("listening", flush=True)
http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
"""
LINE = re.compile(r"^\S+ (?P<source>\w+)\[(?P<dyno>[^\]]+)\]: (?P<text>.*)$")


def get(endpoint: Endpoint) -> str | None:
    """The body the endpoint answers with, or None while nothing answers."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    try:
        with urllib.request.urlopen(f"http://{host}:{endpoint.port}/", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def listed(runtime: Runtime, dyno_id: str) -> DynoInfo | None:
    return next((i for i in runtime.list() if i.spec.id == dyno_id), None)


def exited(runtime: Runtime, dyno_id: str) -> DynoInfo | None:
    """The dyno's info once it is reported exited (None while it runs)."""
    info = listed(runtime, dyno_id)
    return info if info is not None and not info.running else None


def log_texts(harness: Harness, app_id: int, dyno: str, source: str = "app") -> list[str]:
    """The messages of `source[dyno]` in the app log, as `logs` reads it."""
    return [text for _, text in log_entries(harness, app_id, dyno, source)]


def log_entries(harness: Harness, app_id: int, dyno: str, source: str = "pushd"
                ) -> list[tuple[str, str]]:
    """(timestamp, message) of the `source[dyno]` lines in the app log, oldest first."""
    lines = AppLog(harness.paths.log_file(app_id), harness.settings.log_max_bytes).read(2000)
    found = []
    for line in lines:
        match = LINE.match(line.rstrip("\n"))
        if match and match["source"] == source and match["dyno"] == dyno:
            found.append((line.split(" ", 1)[0], match["text"]))
    return found


class PipeClient:
    """A one-off's client over real pipes, as an SSH channel is one: its input is written
    into a pipe and ends, its output and errors come out of two others."""

    tty = False
    term_size = None

    def __init__(self, given: bytes) -> None:
        self._input, feed = os.pipe()
        os.write(feed, given)  # small: fits in the pipe
        os.close(feed)
        out_r, self._out = os.pipe()
        err_r, self._err = os.pipe()
        self.out = bytearray()
        self.err = bytearray()
        self._readers = [self._drain(out_r, self.out), self._drain(err_r, self.err)]

    @staticmethod
    def _drain(fd: int, into: bytearray) -> threading.Thread:
        def loop() -> None:
            with os.fdopen(fd, "rb", buffering=0) as stream:
                for chunk in iter(lambda: stream.read(65536), b""):
                    into.extend(chunk)
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def read(self, size: int) -> bytes:
        return os.read(self._input, size)

    def write(self, data: bytes) -> None:
        self._send(self._out, data)

    def write_err(self, data: bytes) -> None:
        self._send(self._err, data)

    @staticmethod
    def _send(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def close(self) -> None:
        """The client hangs up: everything written so far is in `out` and `err`."""
        for fd in (self._input, self._out, self._err):
            os.close(fd)
        for reader in self._readers:
            reader.join(10)
