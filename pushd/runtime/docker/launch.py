"""One dyno's launch (its release image, its container, the pasta in front of it) in a
process of its own, so that a daemon killed meanwhile never leaves it half done: a child of
the warm launcher (`forkserver.py`, whose target `launch_dyno` is), or one-shot:

    python -m pushd.runtime.docker.launch STATE_DIR DYNO_ID

Importing this module imports everything a launch needs (the docker SDK among it), so the
forkserver's children start with it all loaded. The daemon follows the container's output
once it runs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import docker  # noqa: F401  (loaded before the fork: a launch's children need it)
import docker.errors  # noqa: F401
import docker.types  # noqa: F401

from ...paths import Paths
from ...settings import Settings
from . import images, network  # noqa: F401
from .runtime import DockerRuntime


def launch_dyno(root: Path, dyno_id: str) -> None:
    settings = dataclasses.replace(Settings(), state_dir=root, firewall=False)
    DockerRuntime(settings, Paths(root)).launch(dyno_id)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m pushd.runtime.docker.launch STATE_DIR DYNO_ID", file=sys.stderr)
        return 2
    launch_dyno(Path(argv[1]), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
