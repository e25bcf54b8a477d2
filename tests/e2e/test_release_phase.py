"""What a deploy promises (issue 10): the release phase runs before the new dynos and a
failing one keeps the old release serving; health checks (app.json's, else GET / below 500)
gate the switch; app.json's scripts run; a malformed app.json fails the push."""

from __future__ import annotations

import json
import re

from ..polling import wait_until
from .harness import PushdUnderTest, http_app, python_app

ERRORING_APP = http_app(respond='status, text = 500, "everything is broken"')


def remote(result) -> list[str]:
    return [line.removeprefix("remote: ").rstrip() for line in result.stderr.splitlines()]


def test_release_phase_runs_first_and_a_failing_one_keeps_the_old_release(
        pushd: PushdUnderTest):
    scripts = {"scripts": {"dokku": {"predeploy": "echo PREDEPLOY-RAN"},
                           "postdeploy": "echo POSTDEPLOY-RAN"}}
    files = python_app("phase one", {
        "Procfile": "web: python3 app.py\nrelease: echo migrating $PUSHD_RELEASE_VERSION\n",
        "app.json": json.dumps(scripts)})
    repo = pushd.new_app_repo("rel-phase", files)
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    lines = remote(result)
    order = [next(i for i, line in enumerate(lines) if text in line) for text in (
        "PREDEPLOY-RAN", "Running release command…", "migrating v1",
        "POSTDEPLOY-RAN", "Released v1")]
    assert order == sorted(order), lines
    assert pushd.http("rel-phase").body.startswith("phase one")
    # the app log, which release and web dynos share, has the release's line before web.1
    log = pushd.ssh("logs", "rel-phase", "-n", "200").stdout.splitlines()
    said = next(i for i, line in enumerate(log)
                if re.search(r"app\[release\.\d+\]: migrating v1", line))
    web = next(i for i, line in enumerate(log) if "[web.1]: Starting process" in line)
    assert said < web, log

    pushd.commit(repo, {"Procfile": "web: python3 app.py\n"
                                    "release: echo cannot migrate; exit 3\n",
                        "app.py": python_app("phase two")["app.py"], "app.json": "{}"})
    failed = pushd.push(repo)
    assert failed.returncode != 0
    assert "Release v2 failed: release command exited with status 3" in failed.stderr
    assert "cannot migrate" in failed.stderr
    assert "[web.1]" not in " ".join(remote(failed))  # no v2 dyno started
    assert pushd.http("rel-phase").body.startswith("phase one")
    listing = pushd.ssh("releases", "rel-phase").stdout
    assert "(release command failed)" in listing.splitlines()[1], listing
    assert pushd.ssh("releases:output", "rel-phase", "v2").stdout == "cannot migrate\n"

    back = pushd.ssh("rollback", "rel-phase", "v1")  # runs v1's release command again
    assert back.returncode == 0, back.stderr
    assert "Running release command…" in back.stderr and "migrating v3" in back.stderr
    assert pushd.http("rel-phase").body.startswith("phase one")


def test_checks_gate_the_switch(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("rel-checks", python_app("healthy"))
    assert pushd.push(repo).returncode == 0

    pushd.commit(repo, {"app.py": ERRORING_APP})  # answers 500 on /: not live by default
    result = pushd.push(repo)
    assert result.returncode != 0
    assert ("Release v2 failed: web.1 health check 'default' failed: GET / answered 500 "
            "'everything is broken'") in result.stderr, result.stderr
    assert "the previous release keeps serving" in result.stderr
    assert pushd.http("rel-checks").body.startswith("healthy")

    checks = {"healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/env/READY",
                                        "content": "yes", "attempts": 2, "wait": 0.5}]}}
    pushd.commit(repo, {**python_app("unready"), "app.json": json.dumps(checks)})
    result = pushd.push(repo)
    assert result.returncode != 0
    assert ("web.1 health check 'ready' failed: GET /env/READY answered 200 '<unset>' after "
            "2 attempts (expected a status below 500 with 'yes' in the body)") in result.stderr
    assert pushd.http("rel-checks").body.startswith("healthy")

    pushd.commit(repo, {"app.json": '{\n  "healthchecks": {}\n  "formation": {}\n}\n'})
    result = pushd.push(repo)
    assert result.returncode != 0
    assert "app.json is not valid JSON: Expecting ',' delimiter at line 3 column 3" \
        in result.stderr, result.stderr
    assert "Launching" not in result.stderr
    assert pushd.http("rel-checks").body.startswith("healthy")


def test_formation_comes_from_app_json_else_web_only(pushd: PushdUnderTest):
    files = python_app("formed", {
        "worker.py": "import time\nprint('working', flush=True)\ntime.sleep(600)\n",
        "Procfile": "web: python3 app.py\nworker: python3 worker.py\nclock: sleep 600\n",
        "app.json": json.dumps({"formation": {"web": {"quantity": 2},
                                              "worker": {"quantity": 1}},
                                "healthchecks": {"worker": [{"uptime": 1}]}})})
    pushd.deploy("rel-formed", files)
    assert pushd.ssh("ps:scale", "rel-formed").stdout == "clock=0 web=2 worker=1\n"
    wait_until(lambda: all(f"{d}: up" in pushd.ssh("ps", "rel-formed").stdout
                           for d in ("web.1", "web.2", "worker.1")))
    assert "clock" not in pushd.ssh("ps", "rel-formed").stdout

    lone = pushd.new_app_repo("rel-noweb", {"Procfile": "worker: sleep 600\n",
                                            "requirements.txt": ""})
    result = pushd.push(lone)
    assert result.returncode == 0, result.stderr
    assert "No dyno started: only web starts by itself (ps:scale rel-noweb TYPE=1" \
        in result.stderr
    assert pushd.ssh("ps:scale", "rel-noweb").stdout == "worker=0\n"
    assert "worker" not in pushd.ssh("ps", "rel-noweb").stdout


def test_maintenance_checks_commands_and_no_restart(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("rel-maint", python_app("serving"))
    assert pushd.push(repo).returncode == 0
    assert pushd.ssh("maintenance:on", "rel-maint").returncode == 0
    page = wait_until(lambda: (r := pushd.http("rel-maint")).status == 503 and r)
    assert "Offline for maintenance" in page.body and "H80 Maintenance mode" in page.body
    assert "web.1: up" in pushd.ssh("ps", "rel-maint").stdout  # dynos keep running
    assert pushd.ssh("maintenance", "rel-maint").stdout == "on\n"
    assert pushd.ssh("maintenance:off", "rel-maint").returncode == 0
    wait_until(lambda: pushd.http("rel-maint").body.startswith("serving"))
    assert pushd.ssh("checks:run", "rel-maint").stdout == "web.1: ok\n"

    # --no-restart: no release and no restart; the next release has the value
    boot = pushd.http("rel-maint", "/boot").body
    assert pushd.ssh("config:set", "rel-maint", "READY=yes", "--no-restart").returncode == 0
    assert pushd.http("rel-maint", "/boot").body == boot
    assert pushd.http("rel-maint", "/env/READY").body == "<unset>"
    assert "v2" not in pushd.ssh("releases", "rel-maint").stdout
    checks = {"healthchecks": {"web": [{"path": "/env/READY", "content": "yes"}]}}
    pushd.commit(repo, {**python_app("ready now"), "app.json": json.dumps(checks)})
    result = pushd.push(repo)  # its content check passes: READY=yes came with it
    assert result.returncode == 0, result.stderr
    assert pushd.http("rel-maint").body.startswith("ready now")

    # checks disabled: a release answering 500 goes live as the operator asked
    assert pushd.ssh("checks:disable", "rel-maint", "web").returncode == 0
    pushd.commit(repo, {"app.py": ERRORING_APP})
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    assert pushd.http("rel-maint").status == 500


DYING_APP = http_app(head="""\
BOOT = os.urandom(8).hex()
DEAD = []
""", respond="""\
if self.path == "/die":
    DEAD.append(1)
status = 500 if self.path == "/live" and DEAD else 200
text = BOOT
""")


def test_a_web_dyno_failing_liveness_is_restarted(pushd: PushdUnderTest):
    checks = {"healthchecks": {"web": [{"type": "liveness", "name": "alive", "path": "/live",
                                        "attempts": 1}]}}
    pushd.deploy("rel-live", {"app.py": DYING_APP, "requirements.txt": "",
                              "Procfile": "web: python3 app.py\n",
                              "app.json": json.dumps(checks)})
    boot = pushd.http("rel-live").body
    assert pushd.http("rel-live", "/die").status == 200  # its liveness check now fails
    wait_until(lambda: (r := pushd.http("rel-live")).status == 200 and r.body != boot,
               timeout=60)
    log = pushd.ssh("logs", "rel-live", "-n", "100").stdout
    assert ("pushd[web.1]: Error: liveness health check 'alive' failed: GET /live answered "
            "500") in log, log
