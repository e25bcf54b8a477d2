"""A container dyno's network: `network_mode="none"` in the engine; from the host, the
container's namespace joined to the platform's egress namespace (`egress.join`: its way out,
one pasta for every dyno) and, for a web dyno, `pushd-netfwd` relaying its host loopback
endpoint to $PORT inside (`netns.forward`); never a published port, host networking or a
bridge address.

Ownership of the forwarder: started by the runtime in a session of its own, with no death
signal (`outlive=True`), so it keeps serving while the daemon is down; its pid and start time
are kept in the dyno's state file (under the keys `pasta`, `pasta_start`, which named the
dyno's pasta before), so a restarted daemon finds it again. It must not outlive its
container: whoever next lists or removes the dyno (`list()`, `remove()`) and sees the
container exited or gone ends it (`release`).

The forwarder joins the container's namespace once and then runs as the app's uid with no
capability (no_new_privs). The veth pair goes with the container's namespace.
"""

from __future__ import annotations

from pathlib import Path

from ...paths import Paths
from ...procs import live_stat
from .. import egress, shimbin
from ..netns import Attachment, Forward, detach, forward


def connect(pid: int, uid: int, endpoint: int | None, port: int | None,
            root: Path, egress_uid: int) -> Attachment | None:
    """The container whose init is `pid` joined to the egress namespace (outbound access),
    and for a web dyno the host loopback `endpoint` relayed to $PORT inside: the forwarder's
    handle (None for a dyno without an endpoint). Raises NetnsError."""
    egress.join(root, egress_uid, pid)
    if not (endpoint and port):
        return None
    binary = str(shimbin.ensure(Paths(root), shimbin.FORWARDER))
    return forward(pid, uid, Forward(endpoint, port), binary, outlive=True)


def reforward(pid: int, uid: int, endpoint: int, port: int | None, root: Path) -> Attachment:
    """The endpoint's forwarder started again (the old one died; the container runs on)."""
    binary = str(shimbin.ensure(Paths(root), shimbin.FORWARDER))
    return forward(pid, uid, Forward(endpoint, port or 0), binary, outlive=True)


def pasta_alive(pid: int | None, start: int | None) -> bool:
    if not pid or not start:
        return False
    stat = live_stat(pid)
    return stat is not None and stat.start == start


def release(pid: int | None, start: int | None) -> None:
    """End a container's pasta (if it still runs: a recycled pid is never signalled)."""
    if pid and start:
        detach(Attachment(pid, start))
