"""Torn pushes (issue 8): kill the daemon or the pusher at each step of a push; afterwards
the branch (`git ls-remote`), `releases` and the served body agree, and the next push works.

The push waits at the step named in the state dir's `test-pause` (a pause point live only
with `test_hooks: true`, see pushd/testpause.py), the test kills there, then lets go."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.harness import Poller, PushdUnderTest, new_root, python_app, sh
from ..polling import wait_until
from .conftest import FAST, report

STEPS = {"before-build": "bb", "during-build": "db", "after-launching": "al",
         "after-router-switch": "rs"}


@pytest.fixture(scope="module")
def platform() -> Iterator[PushdUnderTest]:
    root = new_root("pushd-faults-torn-")
    under_test = PushdUnderTest(root, settings={**FAST, "test_hooks": True})
    under_test.start()
    yield under_test
    under_test.stop(everything=True)
    if not os.environ.get("PUSHD_FAULTS_KEEP"):  # set it to read a failed run's logs
        shutil.rmtree(root, ignore_errors=True)


def branch_sha(platform: PushdUnderTest, repo: Path) -> str:
    out = sh(["git", "ls-remote", "platform", "refs/heads/main"], cwd=repo,
             env=platform.env()).stdout
    return out.split()[0] if out.strip() else ""


def current_release(platform: PushdUnderTest, app: str) -> tuple[str, str]:
    """(vN, commit prefix) of the release marked current in `releases`."""
    out = platform.ssh("releases", app).stdout
    line = next(x for x in out.splitlines() if x.endswith("(current)"))
    found = re.match(r"(v\d+)\s+Deploy ([0-9a-f]{7})\s", line)
    assert found, out
    return found.group(1), found.group(2)


def settled(platform: PushdUnderTest, app: str) -> bool:
    return "(deploying)" not in platform.ssh("releases", app).stdout


def start_push(platform: PushdUnderTest, repo: Path) -> subprocess.Popen:
    return subprocess.Popen(["git", "push", "platform", "main"], cwd=repo, env=platform.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("victim", ["daemon", "pusher"])
def test_branch_releases_and_served_code_agree_after_a_kill(
        platform: PushdUnderTest, victim: str, step: str):
    app = f"torn-{victim[0]}-{STEPS[step]}"
    repo = platform.deploy(app, python_app("body one"))
    one = sh(["git", "rev-parse", "HEAD"], cwd=repo, env=platform.env()).stdout.strip()
    platform.wait_for(app, "body one")
    two = platform.commit(repo, python_app("body two"))
    control, arrived = platform.state / "test-pause", platform.state / "test-paused"
    arrived.unlink(missing_ok=True)
    control.write_text(step)
    with Poller(platform, app, body="body ", every=0.01, timeout=2) as downtime:
        push = start_push(platform, repo)
        try:
            wait_until(lambda: arrived.exists() and arrived.read_text() == step, timeout=120)
            if victim == "daemon":
                daemon = platform.daemon_pid()
                os.kill(daemon, signal.SIGKILL)
                wait_until(lambda: not Path(f"/proc/{daemon}").exists()
                           or " Z " in Path(f"/proc/{daemon}/stat").read_text())
                control.unlink()
                seen = push.communicate(timeout=120)[0]
                platform.up()  # the operator starts pushd again
            else:
                os.killpg(push.pid, signal.SIGKILL)  # the pusher and its ssh vanish
                seen = push.communicate(timeout=60)[0]
                control.unlink()
        finally:
            control.unlink(missing_ok=True)
            if push.poll() is None:
                os.killpg(push.pid, signal.SIGKILL)
                push.wait()
        # a push whose pusher vanished goes on to its end (its release goes live); one the
        # daemon died in ends there, unless its release was already live
        live = two if victim == "pusher" or step == "after-router-switch" else one
        served = "body two" if live == two else "body one"
        wait_until(lambda: settled(platform, app) and branch_sha(platform, repo) == live
                   and current_release(platform, app)[1] == live[:7], timeout=120,
                   interval=0.5)
        platform.wait_for(app, served)
    version, commit = current_release(platform, app)
    assert branch_sha(platform, repo) == live and commit == live[:7]
    assert platform.http(app).body.startswith(served)

    three = platform.commit(repo, python_app("body three"))
    again = platform.push(repo)
    assert again.returncode == 0, again.stdout + again.stderr
    platform.wait_for(app, "body three")
    assert branch_sha(platform, repo) == three
    assert current_release(platform, app)[1] == three[:7]
    last = [x for x in seen.splitlines() if x.strip()][-1:] or ["(nothing)"]
    report(f"kill -9 {victim} at {step}", downtime.seconds, "none",
           f"push ended with {last[0].strip()!r}; then branch {commit} = {version} serving "
           f"{served!r}")
