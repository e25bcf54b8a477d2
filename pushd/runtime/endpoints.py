"""Host endpoints of web dynos, for any runtime that puts them on this host's loopback: a
free port from `settings.port_range` for each (`ports.PortAllocator`), and the firewall's
(endpoint port, app uid) pairs kept equal to what the runtime reports (`firewall.apply`), so
that only the router, and the app itself, reach a dyno's endpoint.

A runtime holds one `HostEndpoints`, asks it for an endpoint as it starts a web dyno and
calls `guard` with its dynos whenever they change (started, removed). The supervisor never
sees a port but `DynoInfo.endpoint`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable

from .. import firewall
from ..ports import PortAllocator
from ..settings import Settings
from .records import DynoInfo, Endpoint

log = logging.getLogger("pushd.runtime")

Pairs = frozenset[tuple[int, int]]


def endpoint_pairs(infos: Iterable[DynoInfo]) -> Pairs:
    """(endpoint port, app uid) of every running dyno with a loopback endpoint."""
    return frozenset((i.endpoint.port, i.spec.uid) for i in infos
                     if i.running and i.endpoint is not None)


class HostEndpoints:
    def __init__(self, settings: Settings, allocator: PortAllocator | None = None,
                 apply: Callable[[Pairs], None] | None = None) -> None:
        self.host = "127.0.0.1"
        self.allocator = allocator or PortAllocator(settings.port_range, self.host)
        if apply is None and settings.firewall:
            apply = functools.partial(firewall.apply, settings)
        self._apply = apply  # None: no firewall (`firewall: false`)
        self._sent: Pairs | None = None
        self._lock = threading.Lock()

    def allocate(self, known: Iterable[DynoInfo]) -> Endpoint:
        """A free endpoint for a new web dyno, none of the `known` dynos' (alive or exited
        but not removed). RuntimeFailure ("No free port left in …") when the range is full."""
        used = {i.endpoint.port for i in known if i.endpoint is not None}
        with self._lock:
            return Endpoint(self.host, self.allocator.allocate(used))

    def guard(self, infos: Iterable[DynoInfo], adding: Pairs = frozenset()) -> None:
        """Give the firewall the runtime's endpoints (and `adding`, about to be bound) if
        they changed. A refusal is logged, never raised: the dynos run either way, and the
        next change (or the daemon's check that the table is there) sends them again."""
        pairs = endpoint_pairs(infos) | adding
        with self._lock:
            if self._apply is None or pairs == self._sent:
                return
            try:
                self._apply(pairs)
            except Exception as err:
                log.error("dyno endpoint rules not updated: %s", err)
                self._sent = None
                return
            self._sent = pairs
