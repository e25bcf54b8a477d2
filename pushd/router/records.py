"""The record nginx sends for each app request (`log_format pushd_router_tsv` in
templates/nginx_http.conf.j2), after the syslog header `<190>Nov 28 14:00:00 pushd: `:

    app TAB status TAB dyno TAB code TAB upstream_response_time NEWLINE
    method TAB path TAB host TAB request_id TAB fwd TAB upstream_connect_time TAB bytes TAB protocol

nginx (escape=default) writes every `"`, `\\`, control byte and byte above 0x7e of a value as
`\\xHH`, so no value holds a tab, a newline or a quote: a request cannot forge a field or a
line, and the record is plain ASCII. The first line is the request's *kind*: everything the
metrics and per-app figures need. Requests of one kind are counted together, so a request
costs a dictionary lookup; the second line is read only for requests that become log lines
(times in milliseconds are made here, not by a regex in nginx for every request)."""

from __future__ import annotations

import re
from dataclasses import dataclass

DESCRIPTIONS = {"H10": "App crashed", "H12": "Request timeout",
                "H13": "Connection closed without response", "H14": "No web dynos running",
                "H80": "Maintenance mode"}
LINE_FIELDS = ("method", "path", "host", "request_id", "fwd", "connect", "bytes", "protocol")
_SECONDS_RE = re.compile(r"0\.0*([0-9]+)|([1-9][0-9]*)\.([0-9]{3})")


@dataclass(frozen=True)
class Kind:
    """What requests with the same first record line share."""

    app: str
    status: str
    dyno: str
    code: str
    seconds: float | None  # the app's answer time (None: no upstream answered)
    service: str = "0ms"  # as the line shows it


def millis(value: str) -> str:
    """nginx's `0.012` as `12ms` (`1.234`: `1234ms`); none: `0ms`; several upstreams' times
    as nginx lists them."""
    if value in ("", "-"):
        return "0ms"
    match = _SECONDS_RE.fullmatch(value)
    if match is None:
        return value
    return f"{match[1]}ms" if match[1] is not None else f"{match[2]}{match[3]}ms"


def service_seconds(value: str) -> float | None:
    """The last upstream's response time (nginx lists one per upstream tried), if any."""
    value = value.replace(":", ",").split(",")[-1].strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # "-": no upstream answered
    return seconds if seconds >= 0 and seconds == seconds else None


def split(data: bytes) -> tuple[bytes, int] | None:
    """The kind's bytes of a datagram and where its second line starts (junk: None)."""
    start = data.find(b": ") + 2
    end = data.find(b"\n", start)
    if start < 2 or end < 0:
        return None
    return data[start:end], end + 1


def parse_kind(key: bytes) -> Kind | None:
    fields = key.decode("ascii", "replace").split("\t")
    if len(fields) != 5 or not fields[0] or fields[0] == "-":
        return None
    app, status, dyno, code, upstream = fields
    return Kind(app, status, dyno or "-", "" if code == "-" else code,
                service_seconds(upstream), millis(upstream))


def line_fields(rest: bytes) -> dict[str, str] | None:
    """The second record line's fields (a wrong count: None, never shifted fields)."""
    values = rest.decode("ascii", "replace").split("\t")
    if len(values) != len(LINE_FIELDS):
        return None
    return dict(zip(LINE_FIELDS, values, strict=True))


def router_line(entry: dict[str, str]) -> str:
    """Heroku's router line: the request's own values (path, forwarded-for) quoted, a quote in
    them shown as %22, the rest without spaces; an empty value is `-`."""
    get = entry.get
    code = word(get("code", ""))
    head = "at=info" if code in ("", "-") else (
        f'at=error code={code} desc="{DESCRIPTIONS.get(code, "")}"')
    return (f'{head} method={word(get("method"))} path="{quoted(get("path"))}" '
            f'host={word(get("host"))} request_id={word(get("request_id"))} '
            f'fwd="{quoted(get("fwd"))}" dyno={word(get("dyno"))} '
            f'connect={word(get("connect"))} service={word(get("service"))} '
            f'status={word(get("status"))} bytes={word(get("bytes"))} '
            f'protocol={word(get("protocol"))}')


def quoted(value: str | None) -> str:
    return (value or "").replace('"', "%22").replace("\\x22", "%22") or "-"


def word(value: str | None) -> str:
    return quoted(value).replace(" ", "")


def line_of(kind: Kind, data: bytes, rest: int) -> str | None:
    """The router line of one datagram of `kind` (a malformed second line: None)."""
    fields = line_fields(data[rest:])
    if fields is None:
        return None
    return router_line({**fields, "connect": millis(fields["connect"]), "service": kind.service,
                        "code": kind.code, "dyno": kind.dyno, "status": kind.status})
