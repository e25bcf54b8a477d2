"""Log drains end to end: lines of the app's log reach a syslog listener the test runs on
loopback, framed as RFC 5424; a drain that is down blocks neither the app nor pushd."""

from __future__ import annotations

import socket
import threading

from tests.e2e.harness import PushdUnderTest
from tests.polling import wait_until
from tests.unit.test_drains import frames, listener


def test_a_syslog_drain_gets_the_apps_lines_and_a_dead_one_blocks_nothing(
        pushd: PushdUnderTest):
    server, got = listener()
    live = f"syslog+tcp://127.0.0.1:{server.getsockname()[1]}"
    dead_sock = socket.create_server(("127.0.0.1", 0))
    dead = f"syslog+tcp://127.0.0.1:{dead_sock.getsockname()[1]}"
    dead_sock.close()
    try:
        assert pushd.ssh("apps:create", "drained", user="alice").returncode == 0
        refused = pushd.ssh("drains:add", "drained", live, user="alice")
        assert refused.returncode != 0
        assert "127.0.0.1 (a loopback address) needs an admin key" in refused.stderr
        for url in (dead, live):
            added = pushd.ssh("drains:add", "drained", url)
            assert added.returncode == 0, added.stderr
            assert added.stdout == f"Successfully added drain {url}\n"
        again = pushd.ssh("drains:add", "drained", live)
        assert again.returncode != 0 and "already drains to" in again.stderr

        def sent() -> list[bytes]:
            assert pushd.ssh("config:set", "drained", "N=1", user="alice").returncode == 0
            return [m for m in frames(b"".join(got)) if b"Set N config vars" in m]
        message = wait_until(sent, timeout=30, interval=1.0)[0]
        assert message.startswith(b"<190>1 ")
        assert b" drained pushd api - Release v" in message
        def failing() -> str | None:
            out = pushd.ssh("drains", "drained").stdout
            return out if "failing:" in out else None
        listing = wait_until(failing, timeout=30)
        assert f"{dead} (d." in listing and "Connection refused" in listing
        assert f"{live} (d." in listing
        logs = pushd.ssh("logs", "-n", "5", "drained", user="alice")
        assert logs.returncode == 0 and "Set N config vars" in logs.stdout
        removed = pushd.ssh("drains:remove", "drained", dead)
        assert removed.stdout == f"Successfully removed drain {dead}\n"
        assert dead not in pushd.ssh("drains", "drained").stdout
    finally:
        server.close()


def test_an_http_drain_gets_batched_logplex_posts(pushd: PushdUnderTest):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    posts: list[tuple[dict[str, str], bytes]] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/logs?app=1"
    try:
        assert pushd.ssh("apps:create", "httpdrained").returncode == 0
        assert pushd.ssh("drains:add", "httpdrained", url).returncode == 0

        def posted() -> list:
            assert pushd.ssh("config:set", "httpdrained", "M=1").returncode == 0
            return [p for p in posts if b"Set M config vars" in p[1]]
        headers, body = wait_until(posted, timeout=30, interval=1.0)[0]
        assert headers["content-type"] == "application/logplex-1"
        messages = frames(body)
        assert int(headers["logplex-msg-count"]) == len(messages) >= 1
        assert headers["logplex-drain-token"].startswith("d.")
        assert all(m.startswith(b"<190>1 ") for m in messages)
    finally:
        server.shutdown()
