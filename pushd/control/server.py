"""The daemon's end of the control socket: each connection is one session, served by the same
`Session` code as an SSH exec request, as the local admin. A connection that opens with
`GET /metrics` gets the Prometheus text instead (`curl --unix-socket control.sock`)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import threading
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import metrics
from ..gitserver.session import Session
from ..models import LOCAL_ADMIN
from ..platform import Platform
from . import frames
from .channel import SocketChannel

log = logging.getLogger("pushd.control")
SOCKET_NAME = "control.sock"


def socket_path(root: Path) -> Path:
    return root / SOCKET_NAME


class ControlServer:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.path = socket_path(platform.paths.root)
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # root's alone from the first moment
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(64)

    def serve(self, stop: threading.Event) -> None:
        self.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(None)
            threading.Thread(target=self._session, args=(conn,), daemon=True,
                             name="control-session").start()
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def _session(self, conn: socket.socket) -> None:
        try:
            if conn.recv(4, socket.MSG_PEEK) == b"GET ":
                self._metrics(conn)
                return
            frame = frames.receive(conn)
            if frame is None or frame[0] != frames.HELLO:
                conn.close()
                return
            hello = json.loads(frame[1])
            argv = [str(arg) for arg in hello.get("argv", [])]
        except (OSError, ValueError, AttributeError):
            conn.close()
            return
        session = Session(self.platform)
        session.user = LOCAL_ADMIN
        session.command = shlex.join(argv).encode() if argv else None
        session.tty = bool(hello.get("tty"))
        session.term = hello.get("term") if isinstance(hello.get("term"), str) else None
        size = hello.get("size")
        if session.tty and isinstance(size, list) and len(size) == 2:
            session.term_size = (int(size[0]), int(size[1]))

        def window(columns: int, rows: int) -> None:
            session.term_size = (columns, rows)
        session.serve(SocketChannel(conn, window))

    @staticmethod
    def _metrics(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request: only GET /metrics is answered, whatever it asks
            body = generate_latest(metrics.REGISTRY)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: " + CONTENT_TYPE_LATEST.encode()
                         + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                         + body)
