"""`python -m pushd.runtime.docker.launch STATE_DIR DYNO_ID`: one dyno's launch (its
release image, its container, the pasta in front of it), in a short-lived process of its own
so that a daemon killed meanwhile never leaves it half done. The daemon follows the
container's output once it runs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ...paths import Paths
from ...settings import Settings
from .runtime import DockerRuntime


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m pushd.runtime.docker.launch STATE_DIR DYNO_ID", file=sys.stderr)
        return 2
    root, dyno_id = Path(argv[1]), argv[2]
    settings = dataclasses.replace(Settings(), state_dir=root, firewall=False)
    DockerRuntime(settings, Paths(root)).launch(dyno_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
