"""A container dyno's network: `network_mode="none"` in the engine, pasta attached from the
host (`netns.attach`), never a published port, host networking or a bridge address.

Ownership of pasta: started by the runtime in a session of its own, with no death signal
(`outlive=True`), so it keeps serving while the daemon is down; its pid and start time are
kept in the dyno's state file (`pasta`, `pasta_start`), so a restarted daemon finds it again.
It must not outlive its container: whoever next lists or removes the dyno (`list()`,
`remove()`) and sees the container exited or gone ends it (`release`).

pasta runs as the app's uid (the firewall's `meta skuid` rules apply to its outbound
traffic). A container's network namespace belongs to the host's user namespace, so pasta
joins it with CAP_SYS_ADMIN and CAP_NET_ADMIN (ambient, given by setpriv) instead of through
a user namespace of the app's own, as for the sandbox's bwrap namespaces. After its setup
pasta keeps CAP_SYS_ADMIN alone (to enter the namespace for each forwarded connection),
under its own seccomp filter and no-new-privileges: more than a sandbox dyno's pasta
holds (capabilities in the app's user namespace only).
"""

from __future__ import annotations

from ...procs import live_stat
from ..netns import Attachment, Forward, attach, detach


def connect(pid: int, uid: int, endpoint: int | None, port: int | None,
            reach: tuple[int, ...] = ()) -> Attachment:
    """pasta on the namespace of the container whose init is `pid`: outbound access, and
    for a web dyno the host loopback `endpoint` forwarded to $PORT inside."""
    forwards = [Forward(endpoint, port)] if endpoint and port else []
    return attach(pid, uid, forwards, outlive=True, reach=reach)


def pasta_alive(pid: int | None, start: int | None) -> bool:
    if not pid or not start:
        return False
    stat = live_stat(pid)
    return stat is not None and stat.start == start


def release(pid: int | None, start: int | None) -> None:
    """End a container's pasta (if it still runs: a recycled pid is never signalled)."""
    if pid and start:
        detach(Attachment(pid, start))
