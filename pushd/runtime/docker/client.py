"""The Docker engine as the docker runtime sees it: one client, the labels every container
and image pushd makes carries, and the label that keeps two pushd instances (two state dirs:
staging beside production, parallel test runs) from ever seeing each other's containers."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import socket
import threading
from collections.abc import Callable
from typing import Any

from ...errors import RuntimeFailure
from .labels import (  # noqa: F401  (the labels' one home; re-exported for the runtime)
    APP,
    APP_ID,
    DYNO,
    ID,
    INSTANCE,
    ONEOFF,
    RELEASE,
    SLUG,
    TYPE,
)
from .labels import instance as instance_id  # noqa: F401


class DockerFailure(RuntimeFailure):
    """The engine refused or is not there; the message is one line."""


def connect(fail: Callable[[str], Exception] = DockerFailure, **options: Any) -> Any:
    """A client of the local engine (`options`: `docker.from_env`'s), or `fail(one line)`
    raised when none answers: the one way pushd's runtime, builds and hooks reach the engine,
    each with its own layer's error."""
    from ... import stack

    try:
        return stack.engine(**options)
    except stack.StackError as err:
        raise fail(str(err)) from None


def one_line(err: BaseException) -> str:
    text = str(getattr(err, "explanation", None) or err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:200]


def container_name(app: str, process_type: str, index: int, release: int, dyno_id: str) -> str:
    """`pushd.<app>.<type>.<n>.v<release>.<suffix>`: the suffix (from the dyno id) keeps a
    successor and a second instance of the same slot apart."""
    suffix = dyno_id.rsplit("-", 1)[-1]
    return f"pushd.{app}.{process_type}.{index}.v{release}.{suffix}"


def docker_time(stamp: str | None) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, `Z`) as seconds; 0.0 for Go's zero time."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    return nanoseconds(stamp) / 1e9


def nanoseconds(stamp: str) -> int:
    """`2026-11-28T10:17:46.932097451Z` as integer nanoseconds since the epoch (exactly: a
    float cannot tell two log lines a few nanoseconds apart)."""
    stamp = stamp.strip()
    zone = "+00:00"
    if stamp.endswith("Z"):
        stamp = stamp[:-1]
    elif len(stamp) > 6 and stamp[-6] in "+-":
        stamp, zone = stamp[:-6], stamp[-6:]
    whole, _, fraction = stamp.partition(".")
    moment = dt.datetime.fromisoformat(whole + zone)
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9])


def request_stop(api: Any, container_id: str, timeout: int) -> None:
    """Ask the engine to stop a container (SIGTERM, SIGKILL after `timeout` seconds) and
    return once the request is sent, not done: the engine carries the escalation out even if
    this process dies meanwhile. The answer is read (and dropped) by a thread."""
    adapter = api.adapters.get("http+docker://")
    path = getattr(adapter, "socket_path", None)
    if not path:  # not a local socket (DOCKER_HOST=tcp://...): the SDK's call, in a thread
        threading.Thread(target=_quietly, args=(api.stop, container_id, timeout),
                         daemon=True).start()
        return
    conn = _UnixHTTPConnection(path)
    try:
        conn.request("POST", f"/v{api._version}/containers/{container_id}/stop?t={timeout}",
                     headers={"Content-Length": "0"})
    except OSError as err:
        conn.close()
        raise DockerFailure(f"Could not ask the engine to stop a container: {err}") from None
    threading.Thread(target=_answer, args=(conn,), daemon=True).start()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=None)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        self.sock = sock


def _answer(conn: http.client.HTTPConnection) -> None:
    with contextlib.suppress(Exception):
        conn.getresponse().read()
    conn.close()


def _quietly(call: Any, *args: Any) -> None:
    with contextlib.suppress(Exception):
        call(*args)
