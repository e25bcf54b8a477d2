"""Frames on the control socket: one type byte, a 4-byte big-endian length, the payload.

The client opens with a HELLO frame (JSON: argv, tty, term, size); then it sends STDIN data,
STDIN_EOF and WINDOW (JSON [columns, rows]) frames, and the server sends STDOUT, STDERR and
finally EXIT (the status as text)."""

from __future__ import annotations

import socket
import struct

HELLO, STDIN, STDIN_EOF, WINDOW = b"h", b"i", b"e", b"w"
STDOUT, STDERR, EXIT = b"o", b"r", b"x"
MAX_FRAME = 1 << 20
_HEAD = struct.Struct(">cI")


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    for start in range(0, max(len(payload), 1), MAX_FRAME):
        piece = payload[start:start + MAX_FRAME]
        sock.sendall(_HEAD.pack(kind, len(piece)) + piece)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        data = sock.recv(left)
        if not data:
            return None
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next frame, or None when the peer closed the socket (or sent nonsense)."""
    head = _exactly(sock, _HEAD.size)
    if head is None:
        return None
    kind, size = _HEAD.unpack(head)
    if size > MAX_FRAME:
        return None
    payload = _exactly(sock, size) if size else b""
    return None if payload is None else (kind, payload)
