"""A service of the test's own on the host's loopback, to prove a sandbox cannot reach it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def loopback_service() -> Iterator[tuple[int, list[object]]]:
    """(port, what was accepted on it) of a listener on 127.0.0.1, closed on exit."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[object] = []

    def accept_all() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept())

    threading.Thread(target=accept_all, daemon=True).start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()
