"""The local CLI's way to the daemon: a unix socket in the state dir (root's only) carrying the
same sessions the SSH server runs (`gitserver/session.py`), so a command behaves the same from
`pushd …` as from `ssh platform …`. `frames.py` is the wire format, `server.py` the daemon's
side (which also answers `GET /metrics`), `client.py` the CLI's."""
