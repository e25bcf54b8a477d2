"""A stand-in daemon for the adoption test: `python -m tests.contract.daemon RUNTIME ROOT`
runs a real Supervisor over a harness's state (its store, its runtime) until it is killed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pushd.store import Store
from pushd.supervisor import Supervisor

from .conftest import HARNESSES


class Router:
    """Routes go nowhere: the test reads the endpoints from the runtime."""

    def apply(self, routes: list) -> None:
        self.routes = routes


def main(argv: list[str]) -> int:
    harness = HARNESSES[argv[1]](Path(argv[2]))
    supervisor = Supervisor(Store(harness.paths.db), harness.runtime, Router(),
                            harness.settings, harness.paths)
    supervisor.run(threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
