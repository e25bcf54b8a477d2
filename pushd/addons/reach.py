"""Where a dyno's add-ons are reached: each add-on server also listens on a unix socket in a
folder of its own per port, `addons/sockets/PORT/` (`socket_dir`), and a dyno's forwarder
(`pushd-netfwd`, reach mode) listens on 127.0.0.1:PORT inside the dyno's network namespace
and relays each connection to that socket. A unix socket belongs to no network namespace:
dynos never reach the host's loopback, so the firewall refuses app uids every host address
but their own web endpoints, add-on ports included.

The folder is the service user's, mode 0711 (entered, never listed); the socket in it is
0777 (the server's own password check is what admits a client). The forwarder opens the
folder as root (O_PATH, `targets`) before it drops to the app's uid, so no other folder of
the state dir needs to let app uids through. Which ports an app reaches is
`dynospec.reachable_ports`, the one place that says so."""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("pushd.addons")

NAME_FILE = "socket-name"  # the socket's file name in its folder (postgres picks its own)


def socket_dir(root: Path, port: int) -> Path:
    """The folder of the unix socket an add-on serving `port` listens on (`root`: the
    state dir)."""
    return root / "addons" / "sockets" / str(int(port))


def make_socket_dir(root: Path, port: int, user: str, name: str) -> Path:
    """The socket folder for `port`, made (or put right) for the server running as `user`,
    which names its socket `name` in it."""
    folder = socket_dir(root, port)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder.parent, 0o755)
    os.chmod(folder, 0o711)
    (folder / NAME_FILE).write_text(name)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def targets(root: Path, ports: Iterable[int]) -> list[tuple[int, Path, str]]:
    """(port, socket folder, socket name) for each of `ports` that has a socket folder (an
    add-on on an external server has none: skipped, and logged)."""
    found = []
    for port in ports:
        folder = socket_dir(root, port)
        try:
            name = (folder / NAME_FILE).read_text().strip()
        except OSError:
            log.warning("add-on port %s has no socket folder: not reachable from dynos", port)
            continue
        if name and "/" not in name:
            found.append((int(port), folder, name))
    return found
