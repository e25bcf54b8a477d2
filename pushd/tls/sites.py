"""The router's TLS view of each app: which of its hosts its own certificate covers, and
its redirect-https / HSTS features. The supervisor passes every route it builds through
`TLSView.decorate`, so a new certificate or feature is a changed route and a reload."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..models import App
from ..router.base import Route, TLSSite
from .files import CertFiles, Installed

FEATURES = {
    "redirect-https": "Redirect HTTP requests to HTTPS (301)",
    "hsts": "Send Strict-Transport-Security on HTTPS answers",
}


class TLSView:
    def __init__(self, files: CertFiles, https: bool, domain: str) -> None:
        self.files, self.https, self.domain = files, https, domain

    def decorate(self, routes: list[Route], apps: Iterable[App]) -> list[Route]:
        if not self.https:
            return routes
        ids = {app.name: app.id for app in apps}
        platform = self.files.platform_cert(self.domain)  # in every route: a new one reloads
        return [self._route(route, ids[route.app], platform) if route.app in ids else route
                for route in routes]

    def _route(self, route: Route, app_id: int, platform: Installed) -> Route:
        state = self.files.state(app_id)
        features = state.get("features", [])
        sites: tuple[TLSSite, ...] = ()
        cert = self.files.app_cert(app_id)
        if cert is not None:
            hosts = tuple(h for h in route.hosts if cert.info.covers(h))
            if hosts:
                sites = (TLSSite(hosts, str(cert.cert_path), str(cert.key_path),
                                 cert.info.ocsp),)
        rest = tuple(h for h in route.hosts if all(h not in s.hosts for s in sites))
        if rest:
            sites += (TLSSite(rest, str(platform.cert_path), str(platform.key_path),
                              platform.info.ocsp),)
        return dataclasses.replace(route, tls=sites,
                                   redirect_https="redirect-https" in features,
                                   hsts="hsts" in features)
