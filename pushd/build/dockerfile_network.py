"""The network of a Dockerfile build: a namespace of its own with outbound access, as a
buildpack build has (`build/network.py`), never the host's nor the docker bridge.

A holder container (`network_mode="none"`, doing nothing) owns the namespace; pasta is
attached to it from the host as the app's uid (`runtime.netns.attach`: the firewall's
`meta skuid` rules apply, the host's loopback is unreachable, `--no-map-gw`), and the build's
steps join it (`network_mode="container:<holder>"`, which the engine's builder accepts). When
pasta cannot be attached the build runs offline, said in one warning line; when not even the
holder can be made, the build gets `network_mode="none"`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..runtime.netns import Attachment, NetnsError, attach, detach

HOLDER_COMMAND = ["sleep", "infinity"]


def holder_kwargs(image: str, labels: dict[str, str]) -> dict[str, Any]:
    """`containers.create` arguments of the holder: nothing to it but its namespace."""
    return {"image": image, "command": HOLDER_COMMAND, "network_mode": "none",
            "labels": {**labels, "io.pushd.build": "1"}, "user": "65534:65534",
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "read_only": True,
            "init": True, "detach": True, "mem_limit": "16m", "pids_limit": 8}


class BuildNamespace:
    def __init__(self, client: Any, uid: int, image: str, labels: dict[str, str]) -> None:
        self.client, self.uid, self.image, self.labels = client, uid, image, labels
        self.holder: Any = None
        self.pasta: Attachment | None = None

    def start(self) -> tuple[str, str | None]:
        """The build's `network_mode`, and why it is offline (None: it has outbound)."""
        try:
            self.holder = self.client.containers.create(**holder_kwargs(self.image,
                                                                        self.labels))
            self.holder.start()
            self.holder.reload()
            pid = int(self.holder.attrs["State"]["Pid"])
        except Exception as err:  # noqa: BLE001  (the engine's errors: offline, said)
            self.stop()
            return "none", f"no namespace for it: {str(err).splitlines()[0][:160]}"
        mode = f"container:{self.holder.id}"
        try:
            self.pasta = attach(pid, self.uid)
        except NetnsError as err:
            return mode, str(err)
        return mode, None

    def stop(self) -> None:
        detach(self.pasta)
        self.pasta = None
        if self.holder is not None:
            with contextlib.suppress(Exception):
                self.holder.remove(force=True)
            self.holder = None
