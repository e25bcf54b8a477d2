"""Building the router's nginx text from routes: pure functions, no nginx, no files written.
Running nginx with that text is nginx.py's job."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import names
from ..errors import InvalidName, RouterError
from .base import Route, TLSSite

MAIN_TEMPLATE = "nginx.conf.j2"
HTTP_TEMPLATE = "nginx_http.conf.j2"
PAGES = {
    "not_found": "router_404.html",
    "no_web": "router_503_h14.html",
    "maintenance": "router_503_maintenance.html",
    "timeout": "router_503_h12.html",
    "app_error": "router_503_h10.html",
}

# Names are validated upstream (pushd.names); these checks only keep a bad value from ever
# becoming nginx syntax.
_UPSTREAM_HOST_RE = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_DYNO_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LISTEN_RE = re.compile(r"([0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}")
_PATH_RE = re.compile(r"/[A-Za-z0-9_./+@:-]*")


@dataclass(frozen=True)
class RenderOptions:
    """Everything besides the routes that the text depends on."""

    nginx_dir: Path  # pid, logs, temp dirs, status socket
    listen: tuple[str, ...]  # e.g. ("0.0.0.0:8080", "[::]:8080")
    standalone: bool = True  # False: an include file for the system's nginx (http level)
    user: str | None = None  # worker user (and group), only when the master runs as root
    workers: int = 2
    worker_connections: int = 8192  # per worker, client and upstream connections together
    header_timeout: int = 10  # seconds for a client's whole request header
    request_timeout: int = 30  # seconds to the app's first byte, then H12
    router_logs: bool = True  # app requests sent to the router-log socket
    body_timeout: int = 30  # seconds between two reads of a body, or two writes of an answer
    keepalive_timeout: int = 20  # seconds an idle client connection is kept
    conns_per_client: int = 256  # connections one address may have with requests in progress
    upstream_keepalive: int = 16  # idle connections kept per app and worker
    https_listen: tuple[str, ...] = ()  # empty: no HTTPS
    https_port: int = 443  # for redirects (no port shown when 443)
    platform_cert: tuple[str, str] | None = None  # (fullchain, key) for *.DOMAIN and the rest
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-* are kept
    acme_dir: Path | None = None  # HTTP-01 challenge files, served on every HTTP host
    resolver: str | None = None  # for OCSP stapling

    @property
    def status_socket(self) -> Path:
        return self.nginx_dir / "status.sock"

    @property
    def router_log_socket(self) -> Path:
        """Where nginx sends each app request's line (router/accesslog.py reads it)."""
        return self.nginx_dir / "router-log.sock"


LIMITS = ("worker_connections", "header_timeout", "request_timeout", "body_timeout",
          "keepalive_timeout", "conns_per_client", "upstream_keepalive")


def _valid(check: Callable[[str], object], value: str) -> str:
    """The same validation as at the boundary (pushd.names), as a RouterError here."""
    try:
        check(value)
    except InvalidName as err:
        raise RouterError(f"Refusing to route: {err}") from None
    return value


def _checked(regex: re.Pattern[str], value: object, what: str) -> str:
    text = str(value)
    if not regex.fullmatch(text):
        raise RouterError(f"Refusing to route invalid {what} {text[:60]!r}")
    return text


def nginx_quote(text: str) -> str:
    """A single-quoted nginx string. `$name` stays a variable on purpose (pages show the
    request id); quotes and backslashes are escaped."""
    escaped = text.strip().replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + escaped + "'"


@functools.lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    """Cached: the supervisor renders often, and compiling the templates is the slow part."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=False,  # nginx text, not HTML; every value is checked before it gets here
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nginx_quote"] = nginx_quote
    return env


def _clean_routes(routes: list[Route]) -> list[Route]:
    clean: list[Route] = []
    seen: set[str] = set()
    for route in sorted(routes, key=lambda r: r.app):
        app = _valid(names.app_name, route.app)
        if app in seen:
            raise RouterError(f"Two routes for app {app!r}")
        seen.add(app)
        hosts = tuple(_valid(names.domain, h) for h in route.hosts)
        if not hosts:
            raise RouterError(f"App {app!r} has no host name to route")
        upstreams = tuple(
            (
                _checked(_UPSTREAM_HOST_RE, host, "upstream host"),
                int(_checked(re.compile(r"[0-9]{1,5}"), port, "upstream port")),
                _checked(_DYNO_RE, dyno, "dyno name"),
            )
            for host, port, dyno in route.upstreams
        )
        for _, port, _ in upstreams:
            if not 0 < port < 65536:
                raise RouterError(f"Refusing to route invalid upstream port {port}")
        sites = tuple(_clean_site(site, hosts) for site in route.tls)
        clean.append(Route(app, hosts, upstreams, bool(route.maintenance), bool(route.crashed),
                           sites, bool(route.redirect_https), bool(route.hsts)))
    return clean


def _clean_site(site: TLSSite, hosts: tuple[str, ...]) -> TLSSite:
    if not site.hosts or any(host not in hosts for host in site.hosts):
        raise RouterError(f"Refusing to route TLS hosts {site.hosts!r} outside {hosts!r}")
    return TLSSite(site.hosts, _checked(_PATH_RE, site.cert, "certificate path"),
                   _checked(_PATH_RE, site.key, "key path"), bool(site.staple))


def _https_sites(route: Route, platform_cert: tuple[str, str]) -> list[TLSSite]:
    """One HTTPS server per certificate: the app's own for the hosts they cover, the
    platform's for the others (APP.DOMAIN, custom domains without a certificate yet)."""
    own = {host for site in route.tls for host in site.hosts}
    rest = tuple(host for host in route.hosts if host not in own)
    sites = list(route.tls)
    if rest:
        sites.append(TLSSite(rest, *platform_cert, False))
    return sites


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise RouterError(f"Refusing to route: trusted proxy {value[:60]!r} is not an "
                          "address or network") from None


def render(routes: list[Route], options: RenderOptions, templates_dir: Path) -> str:
    """The complete nginx text for `routes`: nginx.conf for pushd's own nginx, or the include
    file for a system nginx. Deterministic: the same routes give the same text, whose
    generation marker is a hash of the rest of it."""
    routes = _clean_routes(routes)
    for address in options.listen:
        _checked(_LISTEN_RE, address, "listen address")
    _checked(_PATH_RE, options.nginx_dir, "nginx dir")
    if options.user is not None:
        _checked(re.compile(r"[a-z_][a-z0-9_-]{0,31}( [a-z_][a-z0-9_-]{0,31})?"), options.user,
                 "user")
    https = bool(options.https_listen)
    for address in options.https_listen:
        _checked(_LISTEN_RE, address, "listen address")
    platform_cert = options.platform_cert or ("", "")
    if https:
        if not options.platform_cert:
            raise RouterError("HTTPS needs the platform certificate")
        for path in platform_cert:
            _checked(_PATH_RE, path, "certificate path")
    if options.acme_dir is not None:
        _checked(_PATH_RE, options.acme_dir, "ACME challenge dir")
    if options.resolver is not None:
        _checked(re.compile(r"[0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]"), options.resolver,
                 "resolver")
    env = _environment(templates_dir)
    pages = {key: env.get_template(name).render() for key, name in PAGES.items()}
    dynos = sorted(
        {(f"{host}:{port}", dyno) for route in routes for host, port, dyno in route.upstreams}
    )
    context = {
        "routes": routes,
        "dynos": dynos,
        "pages": pages,
        "listen": list(options.listen),
        "standalone": options.standalone,
        "user": options.user,
        "workers": int(options.workers),
        **{name: int(getattr(options, name)) for name in LIMITS},
        "nginx_dir": str(options.nginx_dir),
        "status_socket": str(options.status_socket),
        "https_listen": list(options.https_listen),
        "https_suffix": "" if options.https_port == 443 else f":{int(options.https_port)}",
        "platform_cert": platform_cert[0],
        "platform_key": platform_cert[1],
        "sites": {route.app: _https_sites(route, platform_cert) if https else []
                  for route in routes},
        "trusted_proxies": [_network(n) for n in options.trusted_proxies],
        "acme_dir": str(options.acme_dir) if options.acme_dir else "",
        "resolver": options.resolver or "",
        "router_log_socket": str(options.router_log_socket),
        "router_logs": bool(options.router_logs),
    }
    template = env.get_template(MAIN_TEMPLATE if options.standalone else HTTP_TEMPLATE)
    draft = template.render(context, generation="0")
    generation = hashlib.sha256(draft.encode()).hexdigest()[:16]
    return template.render(context, generation=generation)


GENERATION_RE = re.compile(r"# pushd router \(generation ([0-9a-f]+)\)")


def generation_of(text: str) -> str | None:
    """The generation marker in rendered text (what the status socket answers once live)."""
    match = GENERATION_RE.search(text)
    return match.group(1) if match else None
