"""A drain's URL: parsed, validated, and judged against who adds it.

Only `syslog+tcp://HOST:PORT`, `https://…` and `http://…` are drains. The daemon (root) makes
the connections, so a drain to this host's loopback or to a private, link-local or otherwise
non-public address could reach services tenants must not talk to: only an admin key may add
one (the address is judged again at each connect, so a name that later resolves elsewhere is
refused too)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import InvalidValue

SCHEMES = ("syslog+tcp", "https", "http")
MAX_URL = 512


@dataclass(frozen=True)
class DrainURL:
    url: str
    scheme: str
    host: str
    port: int

    @property
    def token(self) -> str:
        """Heroku's drain token shape: `d.` and a stable digest of the URL."""
        import hashlib

        return "d." + hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @property
    def shown(self) -> str:
        """The URL without any password (for listings and the daemon log)."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":[redacted]@", 1)
        return parts._replace(netloc=netloc).geturl()


def parse(url: str) -> DrainURL:
    """The drain at `url`, or InvalidValue saying what a good one is."""
    if len(url) > MAX_URL or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidValue("A drain URL is at most 512 printable characters without spaces")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidValue(f"Unsupported drain {url.split('://')[0]!r}: use "
                           "syslog+tcp://HOST:PORT or https://HOST/PATH")
    try:
        port = parts.port
    except ValueError:
        raise InvalidValue(f"Invalid port in drain URL {url!r}") from None
    host = parts.hostname or ""
    if not host:
        raise InvalidValue(f"Drain URL {url!r} has no host")
    if parts.scheme == "syslog+tcp":
        if port is None:
            raise InvalidValue("A syslog drain needs a port: syslog+tcp://HOST:PORT")
        if parts.path not in ("", "/") or parts.query:
            raise InvalidValue("A syslog drain is syslog+tcp://HOST:PORT, without a path")
    port = port or (443 if parts.scheme == "https" else 80)
    return DrainURL(url, parts.scheme, host, port)


def internal_address(host: str) -> str | None:
    """Why `host` is not a public address (loopback, private, …), or None if it is. A name
    is resolved; one that does not resolve is judged when it is used."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        for kind in ("loopback", "private", "link_local", "multicast", "reserved",
                     "unspecified"):
            if getattr(address, f"is_{kind}"):
                return f"{address} (a {kind.replace('_', '-')} address)"
    return None


def check_target(drain: DrainURL, admin: bool) -> None:
    """Refuse a non-admin's drain to an address that is not public."""
    why = None if admin else internal_address(drain.host)
    if why is not None:
        raise InvalidValue(f"A drain to {why} needs an admin key")
