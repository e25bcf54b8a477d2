"""Drain URLs, syslog framing and a shipper against a real loopback listener (no daemon)."""

from __future__ import annotations

import socket
import threading

import pytest

from pushd.drains import shipper as shipper_mod
from pushd.drains import syslog, urls
from pushd.errors import InvalidValue
from pushd.logs import format_line
from tests.polling import wait_until


def test_drain_urls_are_validated():
    assert urls.parse("syslog+tcp://logs.example.com:514").port == 514
    assert urls.parse("https://logs.example.com/x?token=1").port == 443
    for bad, says in [("ftp://x", "Unsupported drain"), ("syslog+tcp://host", "needs a port"),
                      ("syslog+tcp://h:1/path", "without a path"), ("https://", "no host"),
                      ("https://h:99999/", "Invalid port"), ("https://a b", "printable"),
                      ("https://h/" + "x" * 600, "at most 512")]:
        with pytest.raises(InvalidValue, match=says):
            urls.parse(bad)
    shown = urls.parse("https://user:pw@logs.example.com/").shown
    assert "pw" not in shown and "user:[redacted]@" in shown


def test_only_admins_drain_to_internal_addresses():
    for target in ("syslog+tcp://127.0.0.1:514", "https://localhost/", "https://[::1]/",
                   "https://10.1.2.3/", "https://169.254.169.254/latest"):
        with pytest.raises(InvalidValue, match="needs an admin key"):
            urls.check_target(urls.parse(target), admin=False)
        urls.check_target(urls.parse(target), admin=True)
    urls.check_target(urls.parse("https://93.184.216.34/"), admin=False)


def test_syslog_framing_is_octet_counted_rfc5424():
    line = format_line("app", "web.1", "héllo")
    framed = syslog.message("myapp", line)
    length, _, body = framed.partition(b" ")
    assert int(length) == len(body)
    assert body.startswith(b"<190>1 ") and body.endswith(" myapp app web.1 - héllo".encode())
    assert syslog.message("myapp", "-- 3 lines dropped --\n").endswith(
        b" - myapp pushd drain - -- 3 lines dropped --")


def frames(data: bytes) -> list[bytes]:
    """Octet-counted messages, each checked against its length."""
    out = []
    while data:
        length, _, rest = data.partition(b" ")
        out.append(rest[:int(length)])
        data = rest[int(length):]
    return out


def listener() -> tuple[socket.socket, list[bytes]]:
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                got.append(data)
    threading.Thread(target=serve, daemon=True).start()
    return server, got


def test_a_drain_that_is_down_drops_the_oldest_and_never_blocks(monkeypatch):
    monkeypatch.setattr(shipper_mod, "BUFFER_LINES", 50)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    down = shipper_mod.Shipper("myapp", urls.parse(f"syslog+tcp://127.0.0.1:{port}"),
                               admin_added=True).start()
    try:
        for n in range(80):
            down.offer(format_line("app", "web.1", f"line {n}"))
        assert down.stats.dropped == 30
        wait_until(lambda: down.stats.error != "", timeout=10)
        assert "refused" in down.stats.error.lower()
    finally:
        down.stop()


def test_lines_reach_a_syslog_listener_in_order():
    server, got = listener()
    port = server.getsockname()[1]
    drain = shipper_mod.Shipper("myapp", urls.parse(f"syslog+tcp://127.0.0.1:{port}"),
                                admin_added=True).start()
    try:
        for n in range(20):
            drain.offer(format_line("app", "web.1", f"line {n}"))
        wait_until(lambda: b"".join(got).count(b"<190>1") == 20, timeout=10)
        messages = frames(b"".join(got))
        assert [m.rsplit(b" - line ", 1)[1] for m in messages] == [
            str(n).encode() for n in range(20)]
        assert drain.stats.sent == 20 and drain.stats.dropped == 0
    finally:
        drain.stop()
        server.close()
