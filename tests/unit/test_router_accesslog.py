"""Router lines and metrics from nginx's records: Heroku's shape, request values that cannot
break the line or forge a field, requests counted by kind in batches, the per-app rate bound."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from pushd import metrics
from pushd.router import accesslog
from pushd.router.accesslog import RouterLogReceiver
from pushd.router.records import Kind, line_of, millis, parse_kind, router_line
from pushd.router.stats import AppStats

ENTRY = {"app": "myapp", "code": "", "method": "GET", "path": '/x?q="a b"',
         "host": "myapp.localhost", "request_id": "abc", "fwd": "127.0.0.1", "dyno": "web.2",
         "connect": "0ms",
         "service": "12ms", "status": "200", "bytes": "1234", "protocol": "http"}
HEADER = b"<190>Nov 28 14:00:00 pushd: "


def record(app: bytes = b"myapp", status: bytes = b"200", dyno: bytes = b"web.2",
           code: bytes = b"", upstream: bytes = b"0.012", path: bytes = b"/x") -> bytes:
    """A datagram as nginx's `pushd_router_tsv` format sends it."""
    return (HEADER + b"\t".join((app, status, dyno, code, upstream)) + b"\n" + b"\t".join((
        b"GET", path, b"myapp.localhost", b"abc", b"127.0.0.1", b"0.000", b"1234", b"http")))


def feed(receiver: RouterLogReceiver, datagrams: list[bytes]) -> None:
    """Through a real datagram socket (its queue is short: drained after each send)."""
    sender, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.setblocking(False)
    with sender, reader:
        for data in datagrams:
            sender.send(data)
            receiver.drain(reader.recv, math.inf)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> metrics.RouterCounts:
    fresh = metrics.RouterCounts()
    monkeypatch.setattr(metrics, "router", fresh)
    return fresh


def samples(counts: metrics.RouterCounts) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in counts.collect() for s in family.samples}


def receiver_at(tmp_path: Path) -> tuple[RouterLogReceiver, Path]:
    log_path = tmp_path / "logs" / "app.log"
    log_path.parent.mkdir()
    return RouterLogReceiver(tmp_path / "s.sock", lambda name: 7 if name == "myapp" else None,
                             lambda app_id: log_path, 1 << 20, None), log_path


def test_lines_have_herokus_shape():
    assert router_line(ENTRY) == (
        'at=info method=GET path="/x?q=%22a b%22" host=myapp.localhost request_id=abc '
        'fwd="127.0.0.1" dyno=web.2 connect=0ms service=12ms status=200 bytes=1234 '
        'protocol=http')
    timeout = router_line({**ENTRY, "code": "H12", "status": "503", "dyno": "-"})
    assert timeout.startswith('at=error code=H12 desc="Request timeout" method=GET')


def test_kinds_are_parsed_and_junk_ignored():
    assert parse_kind(b"myapp\t503\t-\tH12\t30.001") == Kind("myapp", "503", "-", "H12", 30.001,
                                                                "30001ms")
    assert parse_kind(b"myapp\t200\tweb.1\t\t0.001, 0.004") == Kind("myapp", "200", "web.1", "",
                                                                    0.004, "0.001, 0.004")
    assert parse_kind(b"myapp\t503\t-\tH14\t-") == Kind("myapp", "503", "-", "H14", None, "0ms")
    assert [millis(v) for v in ("0.012", "0.000", "0.100", "1.234", "", "-")] == [
        "12ms", "0ms", "100ms", "1234ms", "0ms", "0ms"]
    assert parse_kind(b"myapp\t200\tweb.1\t") is None  # a field short
    assert parse_kind(b"\t200\tweb.1\t\t0.1") is None  # no app


def test_request_values_cannot_forge_fields_or_lines(tmp_path: Path, counts):
    """nginx writes a quote as \\x22; a value that still held a tab, newline, quote or
    non-UTF-8 byte gives no line with shifted fields and no second line."""
    kind = Kind("myapp", "200", "web.2", "", 0.012, "12ms")
    data = record(path=b'/a?b=c\\x22d"e')
    line = line_of(kind, data, data.index(b"\n") + 1)
    assert line is not None and 'path="/a?b=c%22d%22e" host=myapp.localhost' in line
    for hostile in (b"/a\tstatus=500", b"/a\tb\tc\td\te\tf\tg\th\ti\tj"):
        data = record(path=hostile)
        assert line_of(kind, data, data.index(b"\n") + 1) is None
    receiver, log_path = receiver_at(tmp_path)
    feed(receiver, [record(path=b"/\xff\xfe\x1b[31m\r\nX pushd[router]: at=info")])
    receiver.flush()
    lines = log_path.read_bytes().split(b"\n")
    assert len(lines) == 2 and lines[1] == b"" and b"\x1b" not in lines[0]
    assert b'path="/\xef\xbf\xbd\xef\xbf\xbd\\x1b[31m\\x0d X pushd[router]: at=info" ' in lines[0]


def test_requests_are_counted_by_kind_into_metrics_and_lines(tmp_path: Path, counts):
    receiver, log_path = receiver_at(tmp_path)
    feed(receiver, [record()] * 3 + [record(dyno=b"web.1", upstream=b"0.3")]
         + [record(status=b"503", dyno=b"-", code=b"H12", upstream=b"30.001")]
         + [b"<190>junk", b"<190>x: no newline", record(app=b"gone")])
    receiver.flush()
    got = samples(counts)
    assert got[("pushd_router_requests_total",
                (("app", "myapp"), ("dyno", "web.2"), ("status_class", "2xx")))] == 3
    assert got[("pushd_router_requests_total",
                (("app", "myapp"), ("dyno", "web.1"), ("status_class", "2xx")))] == 1
    assert got[("pushd_router_errors_total", (("app", "myapp"), ("code", "H12")))] == 1
    assert got[("pushd_router_service_seconds_bucket", (("app", "myapp"), ("le", "0.025")))] == 3
    assert got[("pushd_router_service_seconds_bucket", (("app", "myapp"), ("le", "+Inf")))] == 5
    assert got[("pushd_router_service_seconds_count", (("app", "myapp"),))] == 5
    assert got[("pushd_router_service_seconds_sum", (("app", "myapp"),))] == pytest.approx(
        3 * 0.012 + 0.3 + 30.001)
    lines = log_path.read_text().splitlines()
    assert len(lines) == 5
    assert 'at=error code=H12 desc="Request timeout" method=GET path="/x"' in lines[4]
    assert " dyno=-" in lines[4] and " status=503 " in lines[4]
    assert lines[0].endswith(" connect=0ms service=12ms status=200 bytes=1234 protocol=http")
    receiver.flush()  # counted once
    assert samples(counts) == got


def test_per_app_figures_add_a_batch_at_once(tmp_path: Path):
    stats = AppStats()
    stats.add("200", 12.0, now=120, n=40)
    stats.add("503", None, now=130, n=2)
    assert stats.minutes[2][:2] == [42, 2] and sum(stats.minutes[2][2]) == 40


def test_volume_is_bounded_per_app_and_the_rest_counted(tmp_path: Path, monkeypatch, counts):
    monkeypatch.setattr(accesslog, "BURST", 5.0)
    monkeypatch.setattr(accesslog, "RATE", 0.001)
    receiver, log_path = receiver_at(tmp_path)
    feed(receiver, [record()] * 12 + [record(app=b"gone")])
    receiver.flush()
    lines = log_path.read_text().splitlines()
    assert len(lines) == 6
    assert all(" pushd[router]: at=info " in line for line in lines[:5])
    assert lines[5].endswith("pushd[router]: -- 7 router lines dropped: over 0 a second --")
    assert sum(v for (name, _), v in samples(counts).items()
               if name == "pushd_router_requests_total") == 13  # all counted


def test_the_datagram_queue_is_raised_to_systemds_default_never_lowered(tmp_path):
    setting = tmp_path / "max_dgram_qlen"
    setting.write_text("10\n")  # Linux's default: a burst of requests loses records
    assert accesslog.raise_queue_length(setting) == accesslog.QLEN_WANTED == 512
    assert setting.read_text().strip() == "512"
    setting.write_text("4096\n")  # an operator's larger queue stays
    assert accesslog.raise_queue_length(setting) == 4096
    assert setting.read_text().strip() == "4096"
