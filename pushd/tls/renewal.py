"""Automatic certificates (`certs:auto:enable`): the daemon's renewer orders a certificate
for an app's custom domains when it has none from ACME, when it misses a domain, or when it
expires within `acme_renew_days`. A failure is kept with the CA's error (shown by
`certs:auto`) and retried with exponential backoff; it never touches what the router serves."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import PushdError
from .files import Installed
from .install import install

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("pushd.acme")


class Issuer(Protocol):
    def issue(self, domains: list[str]) -> tuple[bytes, bytes]: ...


def due(state: dict, cert: Installed | None, domains: list[str], now: float,
        renew_before: dt.timedelta) -> str | None:
    """Why an order is due now (None: not due): pure, for tests with fakes."""
    if not state.get("auto") or not domains:
        return None
    if float(state.get("next_attempt", 0)) > now:
        return None  # backing off after a failure
    if cert is None or cert.source != "acme":
        return "no certificate yet"
    missing = [d for d in domains if not cert.info.covers(d)]
    if missing:
        return f"not covering {', '.join(missing)}"
    left = cert.info.not_after - dt.datetime.fromtimestamp(now, dt.UTC)
    if left <= renew_before:
        return f"expires in {max(left.total_seconds(), 0) / 86400:.1f} days"
    return None


def backoff(failures: int, base: float = 60.0, most: float = 86400.0) -> float:
    return min(most, base * 2 ** max(failures - 1, 0))


class Renewer:
    def __init__(self, platform: Platform, issuer: Callable[[], Issuer],
                 clock: Callable[[], float] = time.time, every: float = 2.0) -> None:
        self.platform, self.issuer, self.clock, self.every = platform, issuer, clock, every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="acme-renewer", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # never take the daemon down; the next pass tries again
                log.exception("certificate renewal pass failed")
            self._wake.wait(self.every)
            self._wake.clear()

    def run_once(self) -> None:
        settings = self.platform.settings
        renew_before = dt.timedelta(days=settings.acme_renew_days)
        files = self.platform.certs
        for app in self.platform.store.apps():
            state = files.state(app.id)
            if not state.get("auto"):
                continue
            domains = [d for d in self.platform.store.domains(app.id) if not d.startswith("*.")]
            now = self.clock()
            reason = due(state, files.app_cert(app.id), domains, now, renew_before)
            if reason is None:
                if not domains and state.get("status") != "waiting":
                    files.update_state(app.id, status="waiting", error=None)
                continue
            log.info("ordering a certificate for %s (%s): %s", app.name, ", ".join(domains),
                     reason)
            files.update_state(app.id, status="ordering", last_attempt=now)
            try:
                chain, key = self.issuer().issue(domains)
                installed = install(self.platform, app, chain, key, "acme")
            except PushdError as err:
                failures = int(state.get("failures", 0)) + 1
                files.update_state(app.id, status="failing", error=str(err),
                                   failures=failures,
                                   next_attempt=now + backoff(failures))
                log.warning("certificate for %s failed (%d): %s", app.name, failures, err)
                continue
            files.update_state(app.id, status="ok", error=None, failures=0, next_attempt=0,
                               issued_at=now)
            log.info("certificate for %s installed, expires %s", app.name,
                     installed.info.not_after)
