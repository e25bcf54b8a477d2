"""Host loopback ports for web dyno endpoints (pasta binds them, forwarding to $PORT in the
dyno's own network): handed out round-robin from settings.port_range, each checked free by
binding it, so a port a dyno just released is not reused at once."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from .errors import RuntimeFailure


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    def __init__(self, port_range: tuple[int, int], host: str = "127.0.0.1") -> None:
        self.low, self.high = port_range
        self.host = host
        # a random start: two pushd instances on one machine (tests, staging) rarely pick the
        # same free port at the same moment, which would let one's dyno look "up" for the other
        self._next = random.randint(self.low, self.high)

    def allocate(self, exclude: set[int]) -> int:
        span = self.high - self.low + 1
        for step in range(span):
            port = self.low + (self._next - self.low + step) % span
            if port not in exclude and port_free(port, self.host):
                self._next = port + 1 if port < self.high else self.low
                return port
        raise RuntimeFailure(f"No free port left in {self.low}-{self.high}")


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def kernel_ephemeral_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int] | None:
    """The ports the kernel hands out to outgoing connections (net.ipv4.ip_local_port_range);
    None where it cannot be read."""
    try:
        low, high = (int(word) for word in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def ephemeral_clash(port_range: tuple[int, int], ephemeral: tuple[int, int] | None) -> str | None:
    """Why `port_range` cannot hold dyno endpoints next to these ephemeral ports, or None: any
    outgoing connection on the host (a dyno's, nginx's, a build's) may take one of its ports,
    and the dyno given that port then cannot bind its endpoint."""
    if ephemeral is None:
        return None
    low, high = port_range
    first, last = ephemeral
    if high < first or low > last:
        return None
    return (f"port_range {low}-{high} overlaps the kernel's ephemeral ports {first}-{last} "
            f"(net.ipv4.ip_local_port_range): set port_range in pushd.yaml outside "
            f"{first}-{last}, or narrow that sysctl")
