"""A container dyno's network: `network_mode="none"` in the engine; from the host, the
container's namespace joined to the platform's egress namespace (`egress.join`: its way out,
one pasta for every dyno) and `pushd-netfwd` (`netns.forward`) relaying, for a web dyno, its
host loopback endpoint to $PORT inside, and the app's add-ons from 127.0.0.1:PORT inside to
their unix sockets; never a published port, host networking or a bridge address.

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

from collections.abc import Sequence
from pathlib import Path

from ...paths import Paths
from ...procs import live_stat
from .. import egress, shimbin
from ..netns import Attachment, Forward, detach, forward, reach_of


def connect(pid: int, uid: int, endpoint: int | None, port: int | None,
            root: Path, egress_uid: int, reach: Sequence[int] = ()) -> Attachment | None:
    """The container whose init is `pid` joined to the egress namespace (outbound access),
    and its forwarder: for a web dyno the host loopback `endpoint` relayed to $PORT inside,
    and the app's add-on ports (`reach`) at 127.0.0.1:PORT inside, relayed to their unix
    sockets. The forwarder's handle (None for a dyno with neither). Raises NetnsError."""
    egress.join(root, egress_uid, pid)
    return reforward(pid, uid, endpoint, port, root, reach)


def reforward(pid: int, uid: int, endpoint: int | None, port: int | None, root: Path,
              reach: Sequence[int] = ()) -> Attachment | None:
    """The forwarder started (again, when the old one died; the container runs on)."""
    targets = reach_of(root, reach)
    if not (endpoint and port) and not targets:
        return None
    binary = str(shimbin.ensure(Paths(root), shimbin.FORWARDER))
    return forward(pid, uid, Forward(endpoint, port) if endpoint and port else None, binary,
                   outlive=True, reach=targets)


def pasta_alive(pid: int | None, start: int | None) -> bool:
    if not pid or not start:
        return False
    stat = live_stat(pid)
    return stat is not None and stat.start == start


def release(pid: int | None, start: int | None) -> None:
    """End a container's pasta (if it still runs: a recycled pid is never signalled)."""
    if pid and start:
        detach(Attachment(pid, start))
