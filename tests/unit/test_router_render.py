"""The router's nginx text, asserted without running nginx."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pushd.errors import RouterError
from pushd.router.base import Route
from pushd.router.nginxhost import listen_addresses
from pushd.router.render import RenderOptions, generation_of, nginx_quote, render

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
OPTIONS = RenderOptions(
    nginx_dir=Path("/var/lib/pushd/nginx"), listen=("0.0.0.0:8080",), user="nobody nogroup"
)
# an include in the system's own nginx, instead of pushd's own nginx
SYSTEM_INCLUDE = RenderOptions(nginx_dir=Path("/var/lib/pushd/nginx"), listen=("0.0.0.0:80",),
                               standalone=False)
WEB = Route(
    "myapp",
    ("myapp.localhost", "www.example.com"),
    (("127.0.0.1", 20001, "web.1"), ("127.0.0.1", 20002, "web.2")),
)


def server_block(text: str, host: str) -> str:
    """The server { } block whose server_name line names `host`."""
    for block in text.split("\n    server {")[1:]:
        if re.search(rf"server_name [^;]*\b{re.escape(host)}\b", block):
            return block
    raise AssertionError(f"no server for {host}")


def test_hosts_and_round_robin_upstreams():
    text = render([WEB], OPTIONS, TEMPLATES)
    assert "server_name myapp.localhost www.example.com;" in text
    upstream = text.split("upstream pushd_app_myapp {")[1].split("}")[0]
    assert "server 127.0.0.1:20001" in upstream and "server 127.0.0.1:20002" in upstream
    block = server_block(text, "myapp.localhost")
    assert "proxy_pass http://pushd_app_myapp;" in block
    assert "proxy_next_upstream error timeout;" in block
    assert "listen 0.0.0.0:8080;" in block
    assert '"127.0.0.1:20002" "web.2";' in text  # dyno names for the access log


def test_forwarded_headers_and_upgrades():
    block = server_block(render([WEB], OPTIONS, TEMPLATES), "myapp.localhost")
    for header in (
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $pushd_fwd_for;",
        "proxy_set_header X-Forwarded-Proto $pushd_fwd_proto;",
        "proxy_set_header X-Forwarded-Port $pushd_fwd_port;",
        "proxy_set_header X-Request-Id $pushd_request_id;",
        "proxy_set_header X-Request-Start $pushd_request_start;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $pushd_connection;",
        "proxy_http_version 1.1;",
        "add_header X-Request-Id $pushd_request_id always;",
        "error_page 504 =503 @pushd_h12;",
    ):
        assert header in block, header
    assert "location @pushd_upgrade" in block and "proxy_read_timeout 1h;" in block


def test_request_id_and_start_maps():
    text = render([WEB], OPTIONS, TEMPLATES)
    assert "map $http_x_request_id $pushd_request_id" in text
    assert "default $request_id;" in text
    assert '"$pushd_start_s$pushd_start_ms"' in text  # plain ms, no "t=" prefix


def test_no_web_dyno_is_h14():
    text = render([Route("idle", ("idle.localhost",), ())], OPTIONS, TEMPLATES)
    block = server_block(text, "idle.localhost")
    assert "return 503 '" in block and "H14 No web processes running" in block
    assert "proxy_pass" not in block
    assert "upstream pushd_app_idle" not in text


def test_crashed_web_dynos_are_h10_not_h14():
    text = render([Route("boom", ("boom.localhost",), (), crashed=True)], OPTIONS, TEMPLATES)
    block = server_block(text, "boom.localhost")
    assert "H10 App crashed" in block and "H14" not in block
    assert "proxy_pass" not in block


def test_maintenance_wins_over_dynos():
    route = Route("myapp", ("myapp.localhost",), WEB.upstreams, maintenance=True)
    text = render([route], OPTIONS, TEMPLATES)
    block = server_block(text, "myapp.localhost")
    assert "return 503 '" in block and "maintenance" in block
    assert "proxy_pass" not in block


def test_unknown_host_is_default_404():
    block = server_block(render([], OPTIONS, TEMPLATES), "_")
    assert "listen 0.0.0.0:8080 default_server;" in block
    assert "return 404 '" in block and "No such app" in block


def test_own_nginx_main_config():
    text = render([], OPTIONS, TEMPLATES)
    assert "user nobody nogroup;" in text
    assert "pid /var/lib/pushd/nginx/nginx.pid;" in text
    assert "access_log /var/lib/pushd/nginx/access.log pushd_router;" in text
    assert "listen unix:/var/lib/pushd/nginx/status.sock;" in text
    assert "client_body_temp_path /var/lib/pushd/nginx/tmp/body;" in text


def test_system_include_is_http_level_only():
    text = render([WEB], SYSTEM_INCLUDE, TEMPLATES)
    assert "events" not in text and "user " not in text and "pid " not in text
    assert "default_server" not in text  # the system's default server stays the default
    assert "server_name myapp.localhost www.example.com;" in text


def test_generation_is_deterministic_and_follows_routes():
    first = render([WEB], OPTIONS, TEMPLATES)
    assert render([WEB], OPTIONS, TEMPLATES) == first
    other = render([Route("myapp", WEB.hosts, WEB.upstreams[:1])], OPTIONS, TEMPLATES)
    assert generation_of(first) and generation_of(other)
    assert generation_of(first) != generation_of(other)
    assert f'return 200 "{generation_of(first)} $pid";' in first


def test_route_order_does_not_matter():
    idle = Route("idle", ("idle.localhost",), ())
    assert render([WEB, idle], OPTIONS, TEMPLATES) == render([idle, WEB], OPTIONS, TEMPLATES)


@pytest.mark.parametrize(
    "route",
    [
        Route("myapp", ("evil.com; include /etc/passwd",), ()),
        Route("myapp", ("a.com\n",), ()),
        Route("my app", ("myapp.localhost",), ()),
        Route("myapp", ("myapp.localhost",), (("127.0.0.1;", 1, "web.1"),)),
        Route("myapp", ("myapp.localhost",), (("127.0.0.1", 70000, "web.1"),)),
        Route("myapp", (), ()),
    ],
)
def test_bad_values_never_become_nginx_text(route):
    with pytest.raises(RouterError):
        render([route], OPTIONS, TEMPLATES)


def test_wildcard_host_allowed():
    text = render([Route("myapp", ("*.example.com",), ())], OPTIONS, TEMPLATES)
    assert "server_name *.example.com;" in text


def test_nginx_quote():
    assert nginx_quote("it's a \\ test\nline") == "'it\\'s a \\\\ test\\nline'"


def test_listen_addresses():
    assert listen_addresses("0.0.0.0", 80, ipv6=True) == ("0.0.0.0:80", "[::]:80")
    assert listen_addresses("127.0.0.1", 80, ipv6=True) == ("127.0.0.1:80", "[::1]:80")
    assert listen_addresses("127.0.0.1", 80, ipv6=False) == ("127.0.0.1:80",)
    assert listen_addresses("10.0.0.5", 80, ipv6=True) == ("10.0.0.5:80",)


def lines(text: str) -> str:
    """`text` without indentation, to compare runs of directives at any nesting."""
    return "\n".join(line.strip() for line in text.splitlines())


def test_slow_and_greedy_clients_are_bounded_in_every_public_server():
    options = RenderOptions(nginx_dir=Path("/var/lib/pushd/nginx"), listen=("0.0.0.0:8080",),
                            user="nobody nogroup", header_timeout=7, conns_per_client=50)
    text = render([WEB], options, TEMPLATES)
    assert "limit_conn_zone $binary_remote_addr zone=pushd_per_client:10m;" in text
    limits = ("client_header_timeout 7s;\n"
              "client_body_timeout 30s;\n"
              "send_timeout 30s;\n"
              "keepalive_timeout 20s;\n"
              "reset_timedout_connection on;\n"
              "limit_conn pushd_per_client 50;\n"
              "limit_conn_status 429;\n")
    for host in ("_", "myapp.localhost"):
        assert limits in lines(server_block(text, host)), host
    assert "\nworker_rlimit_nofile 16384;\n" in text
    assert "\n    worker_connections 8192;\n" in text


def test_upstream_connections_are_kept_alive_except_upgrades():
    text = render([WEB], OPTIONS, TEMPLATES)
    upstream = lines(text.split("upstream pushd_app_myapp {")[1].split("}")[0])
    assert upstream.endswith("\nkeepalive 16;\nkeepalive_timeout 2s;\n")
    # no "Connection: close" to the app; "upgrade" only when the client asked for one
    assert ("map $http_upgrade $pushd_connection {\n"
            "default upgrade;\n"
            "'' \"\";\n"
            "}\n") in lines(text)
    block = server_block(text, "myapp.localhost")
    assert "proxy_http_version 1.1;" in block
    assert "proxy_set_header Connection $pushd_connection;" in block


def test_system_include_keeps_limits_inside_pushds_servers():
    text = render([WEB], SYSTEM_INCLUDE, TEMPLATES)
    assert "worker_connections" not in text and "worker_rlimit_nofile" not in text
    http_level = text.split("\nserver {")[0]  # the system's own http settings stay its own
    assert "client_header_timeout" not in http_level
    assert "\nkeepalive_timeout" not in http_level  # (upstreams have their own)
    app_server = next(b for b in text.split("\nserver {") if "myapp.localhost" in b)
    assert "\n    client_header_timeout 10s;\n" in app_server
