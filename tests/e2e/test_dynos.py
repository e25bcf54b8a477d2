"""Issue: dynos and router. Real ssh, git, nginx, bubblewrap sandboxes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from ..polling import wait_until
from .harness import Poller, PushdUnderTest, python_app


def deploy(pushd: PushdUnderTest, name: str, files: dict[str, str]):
    repo = pushd.new_app_repo(name, files)
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    return repo


def dynos_seen(pushd: PushdUnderTest, app: str, tries: int = 60) -> set[str]:
    seen = set()
    for _ in range(tries):
        body = pushd.http(app).body
        seen.add(body.split("dyno=")[-1])
    return seen


def test_push_serves_new_code_and_scale_spreads_requests(pushd: PushdUnderTest):
    repo = deploy(pushd, "scaly", python_app("v-one"))
    assert pushd.http("scaly").body.startswith("v-one")
    pushd.commit(repo, python_app("v-two"))
    assert pushd.push(repo).returncode == 0
    assert pushd.http("scaly").body.startswith("v-two")  # serving as soon as git exits
    result = pushd.ssh("ps:scale", "scaly", "web=3")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: dynos_seen(pushd, "scaly") == {"web.1", "web.2", "web.3"})
    # the status snapshot `ps` reads is written after the router switched: it may lag a pass
    ps = wait_until(lambda: (lambda out: out if out.count(": up ") == 3 else None)(
        pushd.ssh("ps", "scaly").stdout))
    assert "=== web (3): python3 app.py" in ps


def test_worker_output_reaches_logs(pushd: PushdUnderTest):
    files = python_app("w")
    files["worker.py"] = ("import time\nwhile True:\n    print('tick from the worker', "
                          "flush=True)\n    time.sleep(0.5)\n")
    files["Procfile"] = "web: python3 app.py\nworker: python3 worker.py\n"
    deploy(pushd, "workery", files)
    assert pushd.ssh("ps:scale", "workery", "worker=1").returncode == 0
    logs = wait_until(lambda: (lambda out: out if "tick from the worker" in out else None)(
        pushd.ssh("logs", "workery", "-p", "worker").stdout))
    assert "app[worker.1]: tick from the worker" in logs
    assert "web.1" not in logs
    platform_lines = pushd.ssh("logs", "workery", "-s", "pushd", "-n", "200").stdout
    assert "State changed from starting to up" in platform_lines


def test_killed_dyno_is_restarted(pushd: PushdUnderTest):
    deploy(pushd, "phoenix", python_app("alive"))
    # find the web dyno's processes (by the dyno folder their /app is from) and kill -9 them
    victims = dyno_pids(pushd.state, "phoenix")
    assert victims
    for pid in victims:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: pushd.http("phoenix").status == 200 and
               pushd.http("phoenix", "/boot").body != "", timeout=30)
    logs = pushd.ssh("logs", "phoenix", "-s", "pushd").stdout
    assert "crashed" in logs or "exited" in logs


def _env_has(pid: str, needle: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return needle.encode() in fh.read().split(b"\0")
    except OSError:
        return False


def test_config_change_reaches_the_app(pushd: PushdUnderTest):
    deploy(pushd, "configured", python_app("c"))
    assert pushd.http("configured", "/env/GREETING").body == "<unset>"
    assert pushd.ssh("config:set", "configured", "GREETING=bonjour").returncode == 0
    assert pushd.http("configured", "/env/GREETING").body == "bonjour"


def test_run_one_off_passes_output_and_status(pushd: PushdUnderTest):
    deploy(pushd, "oneoff", python_app("o", {"data.txt": "from the slug"}))
    result = pushd.ssh("run", "oneoff", "python3", "-c",
                       "'import os,sys; print(open(\"data.txt\").read(), os.environ[\"DYNO\"]);"
                       " sys.exit(3)'")
    assert result.returncode == 3
    assert "from the slug run." in result.stdout


def test_dyno_cannot_read_other_apps_or_state(pushd: PushdUnderTest):
    deploy(pushd, "nosy", python_app("n"))
    deploy(pushd, "secretive", python_app("s", {"secret.txt": "top secret"}))
    state = str(pushd.state)
    probe = ("import glob,os;"
             "print(sorted(glob.glob('/app/*'))); "
             f"print('STATE', os.path.exists({state!r}), os.path.exists({state + '/pushd.db'!r}));"
             "print('SECRETS', [os.path.join(d, f) for top in ('/app', '/tmp', '/usr', '/opt',"
             " '/etc', '/run') for d, _, fs in os.walk(top) for f in fs if f == 'secret.txt'])")
    result = pushd.ssh("run", "nosy", "python3", "-c", f'"{probe}"')
    assert result.returncode == 0, result.stderr
    assert "STATE False False" in result.stdout
    assert "SECRETS []" in result.stdout
    assert "/app/app.py" in result.stdout


def test_app_that_never_binds_port_fails_the_push(pushd: PushdUnderTest):
    repo = deploy(pushd, "sleepy", python_app("still serving"))
    pushd.commit(repo, {"Procfile": "web: sleep 1000\n"})
    result = pushd.push(repo)
    assert result.returncode != 0
    assert "failed" in result.stderr
    assert pushd.http("sleepy").body.startswith("still serving")
    releases = pushd.ssh("releases", "sleepy").stdout
    assert "(failed)" in releases
    logs = pushd.ssh("logs", "sleepy", "-s", "pushd", "-n", "300").stdout
    assert "R10" in logs


def test_domains_route_and_bad_ones_are_refused(pushd: PushdUnderTest):
    deploy(pushd, "domainy", python_app("via custom domain"))
    assert pushd.ssh("domains:add", "domainy", "www.example.test").returncode == 0
    wait_until(lambda: pushd.http("x", host="www.example.test").body.startswith(
        "via custom domain"))
    assert "www.example.test" in pushd.ssh("domains", "domainy").stdout
    bad = pushd.ssh("domains:add", "domainy", "'bad domain;'")
    assert bad.returncode != 0 and "Invalid domain" in bad.stderr
    assert pushd.http("domainy").status == 200
    assert pushd.ssh("domains:remove", "domainy", "www.example.test").returncode == 0
    wait_until(lambda: pushd.http("x", host="www.example.test").status == 404)


def test_unknown_host_is_404_and_no_web_is_503(pushd: PushdUnderTest):
    assert pushd.http("nosuchapp").status == 404
    assert pushd.ssh("apps:create", "idle").returncode == 0
    response = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        pushd.http("idle")))
    assert "H14" in response.body


def test_router_headers(pushd: PushdUnderTest):
    deploy(pushd, "headers", python_app("h"))
    sent = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "req-abc-123"}
    # replaced: the client is no trusted proxy (kept from one: tests/e2e/test_https.py)
    assert pushd.http("headers", "/header/X-Forwarded-For", headers=sent).body == "127.0.0.1"
    assert pushd.http("headers", "/header/X-Request-Id", headers=sent).body == "req-abc-123"
    generated = pushd.http("headers", "/header/X-Request-Id").body
    assert generated not in ("<none>", "") and len(generated) >= 16
    start = pushd.http("headers", "/header/X-Request-Start").body
    assert abs(int(start) - time.time() * 1000) < 60_000
    assert pushd.http("headers", "/header/X-Forwarded-Proto").body == "http"
    assert pushd.http("headers", "/header/X-Forwarded-Port").body == str(pushd.http_port)


def dyno_pids(state: Path, app: str, dyno: str = "web.1") -> set[str]:
    """The processes inside `app`'s `dyno` sandboxes (their /app is from its dyno folder)."""
    folders = []
    for folder in (state / "dynos").iterdir():
        try:
            spec = json.loads((folder / "spec.json").read_text())["spec"]
        except (OSError, ValueError, KeyError):
            continue
        if spec["app"] == app and f"{spec['process_type']}.{spec['index']}" == dyno:
            folders.append(folder)
    return {p for p in os.listdir("/proc") if p.isdigit()
            and any(_app_mount_from(p, folder) for folder in folders)}


def app_web_pids(uid: int, state: Path) -> set[str]:
    """Every process of the app's uid that runs as a web dyno of this pushd (its /app comes
    from this state dir), whatever its port: a duplicate on another port would show here."""
    return {p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == uid
            and _env_has(p, "DYNO=web.1") and _app_mount_from(p, state)}


def _app_mount_from(pid: str, state: Path) -> bool:
    try:
        mounts = Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False
    return any(" /app " in line and f"={state}/" in line for line in mounts.splitlines())


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_daemon_death_keeps_dynos_serving_and_up_adopts_them(pushd: PushdUnderTest):
    deploy(pushd, "survivor", python_app("still here"))
    # the dyno's processes inside its sandbox
    before = dyno_pids(pushd.state, "survivor")
    assert before
    uid = _uid_of(next(iter(before)))
    all_before = app_web_pids(uid, pushd.state)
    assert all_before == before
    with Poller(pushd, "survivor") as poll:
        os.kill(pushd.daemon_pid(), signal.SIGKILL)
        time.sleep(1.5)
        assert pushd.http("survivor").body.startswith("still here")
        pushd.up()
        time.sleep(1.5)
        pushd.stop(everything=False)  # a clean `pushd down` leaves them serving too
        time.sleep(0.5)
        pushd.up()
        time.sleep(1.0)
    assert poll.failures == [], poll.failures[:5]
    assert poll.total > 50
    assert dyno_pids(pushd.state, "survivor") == before  # adopted
    assert app_web_pids(uid, pushd.state) == before  # and no duplicate on another port
    ps = pushd.ssh("ps", "survivor").stdout
    assert "=== web (1)" in ps and "web.1: up" in ps
    # the new daemon supervises the adopted dyno: a crash is restarted
    for pid in before:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: app_web_pids(uid, pushd.state) - before
               and pushd.http("survivor").status == 200, timeout=30)
