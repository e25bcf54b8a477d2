"""A worker dyno's lifecycle reads in order in `logs`, as on Heroku."""

from __future__ import annotations

import time

from .harness import PushdUnderTest, python_app


def test_worker_lines_come_in_lifecycle_order(pushd: PushdUnderTest):
    worker = {"worker.py": "import time\nprint('working', flush=True)\ntime.sleep(600)\n",
              "Procfile": "web: python3 app.py\nworker: python3 worker.py\n"}
    repo = pushd.new_app_repo("orderly", python_app("orderly", worker))
    assert pushd.push(repo).returncode == 0
    deadline = time.monotonic() + 30
    while True:
        lines = pushd.ssh("logs", "orderly", "-d", "worker.1", "-n", "50").stdout.splitlines()
        if any("app[worker.1]: working" in line for line in lines):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
    starting = next(i for i, line in enumerate(lines) if "Starting process with command" in line)
    up = next(i for i, line in enumerate(lines) if "State changed from starting to up" in line)
    assert starting < up, lines
