"""Log drains: an app's log stream shipped to syslog (RFC 5424 over TCP, octet-counted) or
HTTP(S) endpoints (batched POSTs). `urls.py` validates a drain's URL, `syslog.py` formats
lines, `shipper.py` sends one drain's lines (bounded buffer, backoff, dropped-lines count),
`manager.py` follows each app's log in the daemon and feeds its drains."""
