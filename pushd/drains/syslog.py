"""pushd log lines as RFC 5424 syslog messages, octet-counted (RFC 6587) as Heroku sends them:
`<190>1 TIMESTAMP APP SOURCE DYNO - MESSAGE` (facility local7, severity info)."""

from __future__ import annotations

import re

PRI = "<190>1"
_LINE = re.compile(r"^(?P<ts>\S+) (?P<source>[A-Za-z0-9_.-]+)\[(?P<dyno>[^\]\s]*)\]: "
                   r"(?P<message>.*)$", re.S)


def message(app: str, line: str) -> bytes:
    """One log line (`TIMESTAMP source[dyno]: text`) as a framed syslog message. A line
    that does not have that shape (a dropped-lines marker) is sent from `pushd[drain]`."""
    line = line.rstrip("\n")
    match = _LINE.match(line)
    if match:
        ts, source, dyno, text = match.group("ts", "source", "dyno", "message")
    else:
        ts, source, dyno, text = "-", "pushd", "drain", line
    body = f"{PRI} {ts} {app} {source} {dyno or '-'} - {text}".encode()
    return b"%d %s" % (len(body), body)
