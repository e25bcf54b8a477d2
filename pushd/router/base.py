"""The router interface: the supervisor hands it every app's hosts and up web dynos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .accesslog import RouterLogReceiver


@dataclass(frozen=True)
class TLSSite:
    """Hosts of one app served over HTTPS with the app's own certificate (files by content,
    so a new certificate is a new route and a reload)."""

    hosts: tuple[str, ...]
    cert: str  # fullchain PEM path
    key: str  # private key PEM path (root's, 0600)
    staple: bool = False  # the certificate names an OCSP responder


@dataclass(frozen=True)
class Route:
    app: str
    hosts: tuple[str, ...]  # "myapp.localhost" first, then custom domains
    upstreams: tuple[tuple[str, int, str], ...]  # (host, port, dyno name) of up web dynos
    maintenance: bool = False
    crashed: bool = False  # no upstream because the web dynos crashed: H10, not H14
    tls: tuple[TLSSite, ...] = ()  # hosts with their own certificate; the rest: the platform's
    redirect_https: bool = False  # HTTP -> HTTPS 301 (`features:enable APP redirect-https`)
    hsts: bool = False  # Strict-Transport-Security on HTTPS answers


class Router(Protocol):
    def start(self) -> None:
        """Make sure the router runs (start it, or adopt the one already running)."""

    def apply(self, routes: list[Route]) -> None:
        """Render, validate (nginx -t) and reload. Raises RouterError with nginx's message and
        keeps the working config if validation fails. A no-op when nothing changed."""

    def check(self, routes: list[Route]) -> None:
        """Validate without applying (raise RouterError on a config nginx refuses)."""

    def stop(self) -> None: ...

    def alive(self) -> bool:
        """Whether the router's own process runs (what the watch in watch.py restarts)."""

    def rotate_logs(self, max_bytes: int) -> None:
        """Keep the router's own log files bounded (one rotated copy each)."""

    def describe(self) -> str:
        """One line for `pushd status`: what runs and where (or that it does not)."""

    def log_receiver(self, app_ids: Callable[[str], int | None], log_file: Callable[[int], Path],
                     max_bytes: int) -> RouterLogReceiver:
        """What turns the router's per-request records into `pushd[router]` lines of each
        app's log (`run(stop)` on a daemon thread)."""
