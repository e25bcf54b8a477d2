"""Putting a certificate live for an app: the checks (cryptography, then `nginx -t` with the
candidate files), then the files, then the supervisor is woken to reload the router. Shared
by `certs:add` and the ACME renewer."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ..models import App
from ..router.base import Route, TLSSite
from . import certs
from .files import Installed

if TYPE_CHECKING:
    from ..platform import Platform


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def app_hosts(platform: Platform, app: App) -> list[str]:
    return [f"{app.name}.{platform.settings.domain}", *platform.store.domains(app.id)]


def install(platform: Platform, app: App, chain: bytes, key: bytes, source: str) -> Installed:
    info = certs.check_pair(chain, key, now())
    hosts = certs.check_domains(info, app_hosts(platform, app))
    if platform.settings.https_port:  # a certificate nginx refuses never reaches the config
        cert_path, key_path = platform.certs.stage(app.id, chain, key)
        try:
            platform.router.check([Route(app.name, tuple(app_hosts(platform, app)), (), tls=(
                TLSSite(tuple(hosts), str(cert_path), str(key_path)),))])
        finally:
            platform.certs.discard(app.id)
    installed = platform.certs.install_app(app.id, chain, key, source)
    platform.notify()
    return installed
