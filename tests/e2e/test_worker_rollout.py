"""Workers in a deploy (issue 10): a new release's worker must keep running its uptime check
(app.json `healthchecks.worker`, `uptime`; default 10 s) before the release serves, and one
that exits fails the deploy like a failed web check; `checks:set worker-overlap=false` makes
a singleton worker's generations take turns (the old one stops before the new one starts)."""

from __future__ import annotations

import json

from ..polling import wait_until
from .harness import PushdUnderTest, python_app

APP = "release-workers"
WORKER = "import os, time\nprint('working', os.environ['PUSHD_RELEASE_VERSION'], flush=True)\n" \
         "time.sleep(600)\n"
APP_JSON = json.dumps({"formation": {"worker": {"quantity": 1}},
                       "healthchecks": {"worker": [{"type": "startup", "uptime": 1}]}})


def _worker_lines(pushd: PushdUnderTest) -> list[str]:
    return pushd.ssh("logs", APP, "-d", "worker.1", "-n", "300").stdout.splitlines()


def test_worker_uptime_gates_the_deploy_and_overlap_false_takes_turns(pushd: PushdUnderTest):
    files = python_app("workers one", {"worker.py": WORKER, "app.json": APP_JSON,
                                       "Procfile": "web: python3 app.py\n"
                                                   "worker: python3 worker.py\n"})
    repo = pushd.deploy(APP, files)
    wait_until(lambda: any("working v1" in line for line in _worker_lines(pushd)))

    # a worker that exits within its uptime check (the default, 10 s: a busy host may take
    # a second to run it) fails the deploy; v1 keeps serving
    pushd.commit(repo, {"Procfile": "web: python3 app.py\n"
                                    "worker: echo cannot reach the queue; exit 3\n",
                        "app.py": python_app("workers two")["app.py"],
                        "app.json": json.dumps({"formation": {"worker": {"quantity": 1}}})})
    failed = pushd.push(repo)
    assert failed.returncode != 0
    assert "Release v2 failed: worker.1 exited with status 3" in failed.stderr, failed.stderr
    assert "cannot reach the queue" in failed.stderr
    assert pushd.http(APP).body.startswith("workers one")

    # worker-overlap=false: v1's worker is gone before v3's starts
    assert pushd.ssh("checks:set", APP, "worker-overlap=false").returncode == 0
    assert "Worker overlap:  false" in pushd.ssh("checks", APP).stdout
    before = set(_worker_lines(pushd))  # v1's worker runs (v2's crashed)
    assert pushd.ssh("config:set", APP, "SWITCH=1").returncode == 0
    lines = wait_until(lambda: (found := _worker_lines(pushd)) and any(
        "working v3" in line for line in found) and found)
    running, most = 1, 1  # worker.1 generations running at once, by its platform lines
    for line in (line for line in lines if line not in before):
        if "pushd[worker.1]: Starting process" in line:
            running += 1
        elif "pushd[worker.1]: State changed from" in line and line.endswith(("to down",
                                                                             "to crashed")):
            running -= 1
        most = max(most, running)
    assert most == 1, "\n".join(lines)
