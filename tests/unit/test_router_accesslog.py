"""Router lines from nginx's JSON records: Heroku's shape, request values that cannot break
the line, the per-app rate bound."""

from __future__ import annotations

import json
from pathlib import Path

from pushd.router import accesslog
from pushd.router.accesslog import RouterLogReceiver, parse_datagram, router_line

ENTRY = {"app": "myapp", "code": "", "method": "GET", "path": '/x?q="a b"',
         "host": "myapp.localhost", "request_id": "abc", "fwd": "127.0.0.1", "dyno": "web.2",
         "connect": "0ms",
         "service": "12ms", "status": "200", "bytes": "1234", "protocol": "http"}


def test_lines_have_herokus_shape():
    assert router_line(ENTRY) == (
        'at=info method=GET path="/x?q=%22a b%22" host=myapp.localhost request_id=abc '
        'fwd="127.0.0.1" dyno=web.2 connect=0ms service=12ms status=200 bytes=1234 '
        'protocol=http')
    timeout = router_line({**ENTRY, "code": "H12", "status": "503", "dyno": "-"})
    assert timeout.startswith('at=error code=H12 desc="Request timeout" method=GET')


def test_datagrams_are_parsed_and_junk_ignored():
    data = b"<190>Nov 28 14:00:00 pushd: " + json.dumps(ENTRY).encode()
    assert parse_datagram(data) == ENTRY
    assert parse_datagram(b"<190>no json here") is None
    assert parse_datagram(b"<190>x: {broken") is None
    assert parse_datagram(b"<190>x: [1, 2]") is None


def test_volume_is_bounded_per_app_and_the_rest_counted(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(accesslog, "BURST", 5.0)
    monkeypatch.setattr(accesslog, "RATE", 0.001)
    log_path = tmp_path / "app.log"
    receiver = RouterLogReceiver(tmp_path / "s.sock", lambda name: 7 if name == "myapp" else None,
                                 lambda app_id: log_path, 1 << 20, None)
    for _ in range(12):
        receiver._take(b"<190>x: " + json.dumps(ENTRY).encode())
    receiver._take(b"<190>x: " + json.dumps({**ENTRY, "app": "gone"}).encode())
    receiver.flush()
    lines = log_path.read_text().splitlines()
    assert len(lines) == 6
    assert all(" pushd[router]: at=info " in line for line in lines[:5])
    assert lines[5].endswith("pushd[router]: -- 7 router lines dropped: over 0 a second --")
