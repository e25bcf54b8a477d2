"""What the supervisor's state is published to after each pass: the router (routes), the
dyno port guard (firewall rules), and the status snapshot other processes read (`ps`,
`domains:add`). Each is sent only when it changed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .dynostatus import DynoStatus, write_status
from .errors import RouterError
from .paths import Paths
from .router.base import Route, Router

log = logging.getLogger("pushd.supervisor")

Guard = Callable[[frozenset[tuple[int, int]]], None]


class Publisher:
    def __init__(self, router: Router, paths: Paths, *, guard: Guard | None = None,
                 write_snapshot: bool = True) -> None:
        self.router, self.paths = router, paths
        self.guard = guard  # told the (port, uid) of every web dyno when they change
        self.write_snapshot = write_snapshot
        self.routes: list[Route] | None = None  # what the router serves now
        self.router_error: str | None = None
        self._own: frozenset[tuple[int, int]] | None = None
        self._snapshot: tuple | None = None

    def switch(self, routes: list[Route]) -> None:
        """Apply routes now; RouterError (nginx refused them) goes to the caller."""
        self.router.apply(routes)
        self.routes, self.router_error = routes, None

    def routes_changed(self, routes: list[Route]) -> None:
        """Apply routes if they changed; a refusal is kept (and logged once), not raised."""
        if routes == self.routes:
            return
        try:
            self.switch(routes)
        except RouterError as err:
            if str(err) != self.router_error:
                log.error("router refused the configuration: %s", err)
            self.router_error = str(err)

    def ports_changed(self, own: frozenset[tuple[int, int]]) -> None:
        if self.guard is None or own == self._own:
            return
        try:
            self.guard(own)
        except Exception as err:  # the dynos run either way; tried again next pass
            log.error("dyno port rules not updated: %s", err)
            return
        self._own = own

    def reguard(self) -> None:
        """Send the port rules again on the next pass (they were flushed from outside)."""
        self._own = None

    def status_changed(self, rows: dict[int, list[DynoStatus]]) -> None:
        hosts = sorted(h for route in self.routes or [] for h in route.hosts)
        snapshot = (rows, {"hosts": hosts, "error": self.router_error})
        if snapshot != self._snapshot and self.write_snapshot:
            write_status(self.paths, *snapshot)
        self._snapshot = snapshot
