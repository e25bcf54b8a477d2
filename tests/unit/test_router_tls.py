"""The router's HTTPS text: SNI per certificate, HTTP/2, redirects, trusted proxies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pushd.errors import RouterError
from pushd.router.base import Route, TLSSite
from pushd.router.render import RenderOptions, render

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
HTTPS = RenderOptions(
    nginx_dir=Path("/var/lib/pushd/nginx"), listen=("0.0.0.0:80",),
    https_listen=("0.0.0.0:443",), https_port=443,
    platform_cert=("/var/lib/pushd/certs/platform/p.crt", "/var/lib/pushd/certs/platform/p.key"),
    trusted_proxies=("10.1.2.3", "192.168.0.0/24"), acme_dir=Path("/var/lib/pushd/nginx/acme"))
UP = (("127.0.0.1", 20001, "web.1"),)


def blocks(text: str, host: str) -> list[str]:
    """The server { } blocks whose server_name names `host`."""
    return [b for b in re.split(r"\n *server \{", text)[1:]
            if re.search(rf"server_name [^;]*(?<![\w.-]){re.escape(host)}[ ;]", b)]


def test_own_certificate_for_covered_hosts_platform_one_for_the_rest():
    site = TLSSite(("www.example.com",), "/c/app.crt", "/c/app.key", staple=True)
    text = render([Route("web", ("web.localhost", "www.example.com"), UP, tls=(site,))],
                  HTTPS, TEMPLATES)
    own = blocks(text, "www.example.com")
    assert len(own) == 2  # HTTP and HTTPS
    tls = next(b for b in own if "ssl http2" in b)
    assert "listen 0.0.0.0:443 ssl http2;" in tls
    assert "ssl_certificate /c/app.crt;" in tls and "ssl_certificate_key /c/app.key;" in tls
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls
    assert "proxy_pass http://pushd_app_web;" in tls
    platform = next(b for b in blocks(text, "web.localhost") if "ssl http2" in b)
    assert "server_name web.localhost;" in platform
    assert "ssl_certificate /var/lib/pushd/certs/platform/p.crt;" in platform
    assert "listen 0.0.0.0:443 ssl http2 default_server;" in text


def test_stapling_only_with_a_responder_and_a_resolver():
    site = TLSSite(("www.example.com",), "/c/app.crt", "/c/app.key", staple=True)
    route = Route("web", ("web.localhost", "www.example.com"), UP, tls=(site,))
    assert "ssl_stapling on;" not in render([route], HTTPS, TEMPLATES)
    from dataclasses import replace
    text = render([route], replace(HTTPS, resolver="127.0.0.53"), TEMPLATES)
    assert text.count("ssl_stapling on;") == 1 and "resolver 127.0.0.53 valid=300s;" in text


def test_redirect_https_and_hsts():
    text = render([Route("web", ("web.localhost",), UP, redirect_https=True, hsts=True)],
                  HTTPS, TEMPLATES)
    http, https = blocks(text, "web.localhost")
    assert "return 301 https://$host$request_uri;" in http  # 443: no port shown
    assert "Strict-Transport-Security" not in http
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in https
    assert "location ^~ /.well-known/acme-challenge/" in http  # never redirected
    assert '"~^http:/\\.well-known/acme-challenge/" 0;' in text
    from dataclasses import replace
    other = render([Route("web", ("web.localhost",), UP, redirect_https=True)],
                   replace(HTTPS, https_port=8443), TEMPLATES)
    assert "return 301 https://$host:8443$request_uri;" in other


def test_forwarded_headers_kept_only_from_trusted_proxies():
    text = render([Route("web", ("web.localhost",), UP)], HTTPS, TEMPLATES)
    geo = text.split("geo $pushd_trusted_proxy {")[1].split("}")[0]
    assert "default 0;" in geo and "10.1.2.3/32 1;" in geo and "192.168.0.0/24 1;" in geo
    assert '"~^1:(?<pushd_fwd_p>https?)$" $pushd_fwd_p;' in text
    assert "default $scheme;" in text and "default $remote_addr;" in text
    with pytest.raises(RouterError, match="trusted proxy"):
        from dataclasses import replace
        render([], replace(HTTPS, trusted_proxies=("10.0.0.1; evil",)), TEMPLATES)


def test_no_https_without_a_port_and_bad_paths_refused():
    plain = RenderOptions(nginx_dir=Path("/n"), listen=("0.0.0.0:80",))
    text = render([Route("web", ("web.localhost",), UP, redirect_https=True)], plain, TEMPLATES)
    assert "ssl_" not in text and " ssl " not in text and "return 301" not in text
    evil = TLSSite(("web.localhost",), "/c/x.crt; include /etc/shadow", "/c/x.key")
    with pytest.raises(RouterError, match="certificate path"):
        render([Route("web", ("web.localhost",), UP, tls=(evil,))], HTTPS, TEMPLATES)
    stranger = TLSSite(("other.example.com",), "/c/x.crt", "/c/x.key")
    with pytest.raises(RouterError, match="outside"):
        render([Route("web", ("web.localhost",), UP, tls=(stranger,))], HTTPS, TEMPLATES)
