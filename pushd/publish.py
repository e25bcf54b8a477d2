"""What the supervisor's state is published to after each pass: the router (routes) and the
status snapshot other processes read (`ps`, `domains:add`). Each is sent only when it
changed. (The firewall's view of dyno endpoints is the runtime's: `runtime/endpoints.py`.)"""

from __future__ import annotations

import logging

from .dynostatus import DynoStatus, write_status
from .errors import RouterError
from .paths import Paths
from .router.base import Route, Router

log = logging.getLogger("pushd.supervisor")

class Publisher:
    def __init__(self, router: Router, paths: Paths, *, write_snapshot: bool = True) -> None:
        self.router, self.paths = router, paths
        self.write_snapshot = write_snapshot
        self.routes: list[Route] | None = None  # what the router serves now
        self.router_error: str | None = None
        self._snapshot: tuple | None = None

    def switch(self, routes: list[Route]) -> None:
        """Apply routes now; RouterError (nginx refused them) goes to the caller."""
        self.router.apply(routes)
        self.routes, self.router_error = routes, None

    def draining(self) -> bool:
        """The router still finishes requests it took under routes it no longer has."""
        return bool(getattr(self.router, "draining", lambda: False)())

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

    def status_changed(self, rows: dict[int, list[DynoStatus]]) -> None:
        hosts = sorted(h for route in self.routes or [] for h in route.hosts)
        snapshot = (rows, {"hosts": hosts, "error": self.router_error})
        if snapshot != self._snapshot and self.write_snapshot:
            write_status(self.paths, *snapshot)
        self._snapshot = snapshot
