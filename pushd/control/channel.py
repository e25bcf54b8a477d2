"""A control-socket connection seen as the SSH channel a `Session` serves: the few methods of
paramiko's Channel that sessions use (recv, sendall, sendall_stderr, send_exit_status,
shutdown_write, close, closed, get_transport)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable

from . import frames


class _Transport:
    def __init__(self, channel: SocketChannel) -> None:
        self.channel = channel

    def is_active(self) -> bool:
        return not self.channel.gone


class SocketChannel:
    def __init__(self, sock: socket.socket, on_window: Callable[[int, int], None]) -> None:
        self.sock = sock
        self.on_window = on_window
        self.closed = False
        self.gone = False  # the client went away
        self._input = bytearray()
        self._eof = False
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True, name="control-input").start()

    def _read(self) -> None:
        while True:
            frame = frames.receive(self.sock)
            if frame is None:
                break
            kind, payload = frame
            if kind == frames.STDIN:
                with self._cond:
                    self._input += payload
                    self._cond.notify_all()
            elif kind == frames.STDIN_EOF:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
            elif kind == frames.WINDOW:
                try:
                    columns, rows = json.loads(payload)
                    self.on_window(int(columns), int(rows))
                except (ValueError, TypeError):
                    pass
        with self._cond:
            self.gone = self._eof = True
            self._cond.notify_all()

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of the client's input; b"" at its end. Blocks."""
        with self._cond:
            while not self._input and not self._eof:
                self._cond.wait()
            data = bytes(self._input[:size])
            del self._input[:size]
            return data

    def _send(self, kind: bytes, data: bytes) -> None:
        if self.gone:
            raise OSError("the client went away")
        with self._send_lock:
            frames.send(self.sock, kind, data)

    def sendall(self, data: bytes) -> None:
        self._send(frames.STDOUT, data)

    def sendall_stderr(self, data: bytes) -> None:
        self._send(frames.STDERR, data)

    def send_exit_status(self, status: int) -> None:
        self._send(frames.EXIT, str(status).encode())

    def shutdown_write(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def get_transport(self) -> _Transport:
        return _Transport(self)
