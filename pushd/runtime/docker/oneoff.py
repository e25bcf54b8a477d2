"""One-off dynos of the docker runtime (`run`): a container of the release image, created
as a dyno's is, wired to its client through the engine's attach stream (a tty when the
client asked for one), removed when it ends. Its network: a pasta of its own, and a
forwarder for its app's add-ons (127.0.0.1:PORT inside, as a dyno's).

The process running `run` owns the container: its pid and start time are a label
(`io.pushd.oneoff`), so `sweep()` removes what a dead daemon or CLI left. The client going
away stops it: SIGHUP first, then the engine's SIGTERM, SIGKILL after the stop timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any

from ...procs import owner_token
from .. import shimbin
from ..netns import Attachment, NetnsError, attach, detach, forward, reach_of
from ..records import DynoSpec, OneOffIO
from ..sandboxio import CLIENT_POLL, ClientEnd, background
from .client import ONEOFF, DockerFailure, one_line

if TYPE_CHECKING:
    from .runtime import DockerRuntime

HANGUP_GRACE = 1.0
OUTPUT_DRAIN = 5.0  # for the last output to reach the client once the container ended
STDOUT, STDERR = 1, 2


def run_oneoff(runtime: DockerRuntime, spec: DynoSpec, io: OneOffIO) -> int:
    api = runtime.client.api
    kwargs = runtime.create_kwargs(spec, runtime.image(spec))
    kwargs["labels"][ONEOFF] = owner_token()
    container = runtime.client.containers.create(**kwargs, stdin_open=True, tty=io.tty)
    network: list[Attachment] = []
    client = ClientEnd(io)
    try:
        stream = api.attach_socket(container.id, params={
            "stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw = _raw_socket(stream)
        container.start()
        if io.tty:
            cols, rows = client.term_size()
            with contextlib.suppress(Exception):
                api.resize(container.id, height=rows, width=cols)
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if pid:
            with contextlib.suppress(NetnsError):  # offline rather than not at all
                network.append(attach(pid, spec.uid))
                reach = reach_of(runtime.paths.root, spec.reach)  # its app's add-ons
                if reach:
                    network.append(forward(pid, spec.uid, None, str(shimbin.ensure(
                        runtime.paths, shimbin.FORWARDER)), reach=reach))
        background(client.feed, raw.sendall, lambda: _end_input(raw))
        output = background(_copy_out, stream, io.tty, client)
        status = _wait(api, container.id, client, spec)
        output.join(OUTPUT_DRAIN)
        return status
    except DockerFailure:
        raise
    except Exception as err:
        raise DockerFailure(f"Could not run {spec.dyno}: {one_line(err)}") from None
    finally:
        for helper in network:
            detach(helper)
        with contextlib.suppress(Exception):
            api.remove_container(container.id, v=True, force=True)


def _raw_socket(stream: Any) -> socket.socket:
    return getattr(stream, "_sock", stream)


def _end_input(raw: socket.socket) -> None:
    """The client's input ended: the container's stdin closes (it was created StdinOnce)."""
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


def _copy_out(stream: Any, tty: bool, client: ClientEnd) -> None:
    from docker.utils.socket import frames_iter

    out = client.sender(client.io.write)
    err = client.sender(client.io.write_err)
    with contextlib.suppress(Exception):
        for kind, data in frames_iter(stream, tty):
            (err if kind == STDERR and not tty else out)(data)


def _wait(api: Any, container_id: str, client: ClientEnd, spec: DynoSpec) -> int:
    """The one-off's exit status; if its client goes away first, SIGHUP, then the engine's
    stop (SIGTERM, SIGKILL after the stop timeout)."""
    result: dict[str, int] = {}
    done = threading.Event()

    def waiter() -> None:
        while "status" not in result:
            try:
                result["status"] = int(api.wait(container_id)["StatusCode"])
            except Exception:  # the client's read timeout on a long one-off: wait again
                try:
                    state = api.inspect_container(container_id)["State"]
                except Exception:  # removed from outside
                    result["status"] = 255
                else:
                    if not state["Running"]:
                        result["status"] = int(state["ExitCode"])
        done.set()

    background(waiter)
    while not done.wait(CLIENT_POLL):
        if client.gone():
            with contextlib.suppress(Exception):
                api.kill(container_id, signal="SIGHUP")
            if not done.wait(HANGUP_GRACE):
                with contextlib.suppress(Exception):
                    api.stop(container_id, timeout=max(1, round(spec.stop_timeout)))
            done.wait()
            break
    return result.get("status", 255)
