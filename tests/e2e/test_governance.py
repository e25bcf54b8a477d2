"""Quotas and policies as code, through real OpenSSH and `git push` with two user keys."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.polling import wait_until

from .harness import PushdUnderTest, python_app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KINDS = ("apps", "dynos", "memory", "oneoffs", "builds", "addons")
HEALTHY = '{"healthchecks": {"web": [{"type": "startup", "path": "/"}]}}\n'


@pytest.fixture
def gov(pushd: PushdUnderTest):
    """The shared daemon, left as found: no quotas on alice and bob, no policies."""
    yield pushd
    (pushd.state / "policies.yaml").unlink(missing_ok=True)
    for user in ("alice", "bob"):
        result = pushd.ssh("quotas:set", user, *(f"{k}=unlimited" for k in KINDS))
        assert result.returncode == 0, result.stderr


def quotas(pushd: PushdUnderTest, user: str) -> dict[str, tuple[str, str]]:
    """`quotas` as `user` sees it: kind -> (limit, in use)."""
    result = pushd.ssh("quotas", user=user)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"=== {user} Quotas"
    header = lines[1]
    limit_at, used_at, counts_at = (header.index(w) for w in ("limit", "in use", "counts"))
    return {line.split()[0]: (line[limit_at:used_at].strip(), line[used_at:counts_at].strip())
            for line in lines[2:]}


def set_quotas(pushd: PushdUnderTest, user: str, *limits: str) -> None:
    result = pushd.ssh("quotas:set", user, *limits)
    assert result.returncode == 0, result.stderr


def destroy(pushd: PushdUnderTest, *apps: str) -> None:
    for app in apps:
        pushd.ssh("apps:destroy", app, "--confirm", app)


def test_a_user_sees_own_quotas_and_cannot_set_any(gov: PushdUnderTest):
    refused = gov.ssh("quotas:set", "alice", "apps=100", user="alice")
    assert refused.returncode == 1
    assert refused.stderr == " !    quotas:set is for admins only\n"
    assert gov.ssh("quotas", "bob", user="alice").stderr == (
        " !    Only admins can see other users' quotas\n")
    set_quotas(gov, "alice", "apps=10", "dynos=20", "memory=4g")
    seen = quotas(gov, "alice")
    assert (seen["apps"][0], seen["dynos"][0], seen["memory"][0]) == ("10", "20", "4 GB")
    assert seen["oneoffs"][0] == "unlimited" and seen["addons"][0] == "unlimited"
    assert quotas(gov, "bob")["apps"][0] == "unlimited"  # alice's quotas are hers


def test_apps_quota_refuses_create_and_a_first_push(gov: PushdUnderTest):
    owned = int(quotas(gov, "alice")["apps"][1])
    set_quotas(gov, "alice", f"apps={owned}")
    created = gov.ssh("apps:create", "gq-one-more", user="alice")
    assert created.returncode == 1
    assert created.stderr == (f" !    Quota exceeded: apps {owned} of {owned} in use "
                              "(quotas:set alice apps=N to raise)\n")
    pushed = gov.push(gov.new_app_repo("gq-pushed", python_app("x"), user="alice"))
    assert pushed.returncode != 0
    assert f"Quota exceeded: apps {owned} of {owned} in use" in pushed.stderr
    listed = gov.ssh("apps", user="alice").stdout.split()
    assert "gq-one-more" not in listed and "gq-pushed" not in listed
    assert gov.ssh("apps:create", "gq-bobs", user="bob").returncode == 0  # bob: no quota
    set_quotas(gov, "alice", f"apps={owned + 1}")
    assert gov.ssh("apps:create", "gq-one-more", user="alice").returncode == 0
    assert quotas(gov, "alice")["apps"][1] == str(owned + 1)
    destroy(gov, "gq-bobs", "gq-one-more")


def test_dynos_and_memory_quotas_refuse_ps_scale(gov: PushdUnderTest):
    gov.deploy("gq-scaled", python_app("scaled"), user="alice")
    wait_until(lambda: gov.http("gq-scaled").status == 200)
    dynos = int(quotas(gov, "alice")["dynos"][1])
    assert dynos >= 1
    set_quotas(gov, "alice", f"dynos={dynos}")
    # bob, a collaborator, spends the owner's quota
    assert gov.ssh("access:add", "gq-scaled", "bob", user="alice").returncode == 0
    refused = gov.ssh("ps:scale", "gq-scaled", "web=2", user="bob")
    assert refused.returncode == 1
    assert refused.stderr == (f" !    Quota exceeded: dynos {dynos} of {dynos} in use "
                              "(quotas:set alice dynos=N to raise)\n")
    assert gov.ssh("ps:scale", "gq-scaled", user="alice").stdout.strip() == "web=1"
    set_quotas(gov, "alice", "dynos=unlimited")
    memory = quotas(gov, "alice")["memory"][1]  # "N MB" or "N GB"
    set_quotas(gov, "alice", "memory=" + memory.replace(" MB", "m").replace(" GB", "g"))
    refused = gov.ssh("ps:scale", "gq-scaled", "web=2", user="alice")
    assert refused.returncode == 1
    assert f"Quota exceeded: memory {memory} of {memory} in use" in refused.stderr
    set_quotas(gov, "alice", "memory=unlimited")
    assert gov.ssh("ps:scale", "gq-scaled", "web=2", user="alice").returncode == 0
    assert quotas(gov, "alice")["dynos"][1] == str(dynos + 1)
    destroy(gov, "gq-scaled")


def test_oneoffs_quota_counts_those_running(gov: PushdUnderTest):
    gov.deploy("gq-oneoff", python_app("oneoff"), user="bob")
    set_quotas(gov, "bob", "oneoffs=1")
    argv = ["ssh", "-F", str(gov.ssh_config), "platform-bob", "run", "gq-oneoff",
            "echo started; sleep 120"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True, env=gov.env())
    try:
        assert first.stdout.readline().strip() == "started"
        assert quotas(gov, "bob")["oneoffs"] == ("1", "1")
        second = gov.ssh("run", "gq-oneoff", "echo second", user="bob")
        assert second.returncode == 1 and "second" not in second.stdout
        assert second.stderr == (" !    Quota exceeded: oneoffs 1 of 1 in use "
                                 "(quotas:set bob oneoffs=N to raise)\n")
    finally:
        first.terminate()
        first.wait(30)
    wait_until(lambda: quotas(gov, "bob")["oneoffs"][1] == "0")
    assert gov.ssh("run", "gq-oneoff", "echo second", user="bob").stdout.strip() == "second"
    destroy(gov, "gq-oneoff")


def test_builds_quota_counts_builds_while_they_run(gov: PushdUnderTest):
    for app in ("gq-slow", "gq-quick"):
        assert gov.ssh("apps:create", app, user="alice").returncode == 0
    set_quotas(gov, "alice", "builds=1")
    # the admin pushes alice's app with a buildpack that waits: it is alice's build
    waiting = FIXTURES / "buildpacks" / "waiting"
    assert gov.ssh("config:set", "gq-slow", f"BUILDPACK_URL={waiting}").returncode == 0
    slow = gov.new_app_repo("gq-slow", {"README": "slow\n"})
    first = subprocess.Popen(["git", "push", "platform", "main"], cwd=slow, env=gov.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: quotas(gov, "alice")["builds"] == ("1", "1"), timeout=120)
        quick = gov.push(gov.new_app_repo("gq-quick", python_app("quick"), user="alice"))
        assert quick.returncode != 0
        assert ("Quota exceeded: builds 1 of 1 in use (quotas:set alice builds=N to raise)"
                in quick.stderr)
        assert "[remote rejected] main -> main" in quick.stderr
    finally:  # the waiting buildpack ends once `go` is beside its `waiting` (else in 60 s)
        waiting = "apps/*/builds/build-*/cache/waiting"
        for go in wait_until(lambda: list(gov.state.glob(waiting)), timeout=60):
            (go.parent / "go").touch()
        output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert quotas(gov, "alice")["builds"][1] == "0"
    quick = gov.push(gov.new_app_repo("gq-quick", python_app("quick"), user="alice"))
    assert quick.returncode == 0, quick.stderr
    destroy(gov, "gq-slow", "gq-quick")


POLICIES = """\
rules:
  - name: max-web-dynos
    message: at most 2 web dynos
    max_dynos: {web: 2}
  - name: trusted-buildpacks
    message: buildpacks come from github.com/heroku only
    buildpack_sources: ["https://github.com/heroku/"]
  - name: web-healthcheck
    message: web apps declare healthchecks.web in app.json
    web_healthcheck: true
  - name: no-debug
    message: DEBUG is not allowed
    forbidden_config: [DEBUG, "DEBUG_*"]
"""


def write_policies(pushd: PushdUnderTest, text: str) -> None:
    (pushd.state / "policies.yaml").write_text(text)


def test_policies_refuse_pushes(gov: PushdUnderTest):
    write_policies(gov, POLICIES)
    listed = gov.ssh("policies", user="bob")
    assert listed.returncode == 0, listed.stderr
    assert "max-web-dynos       max_dynos          at most 2 web dynos" in listed.stdout
    # a forbidden buildpack source is refused before anything is fetched (loopback only)
    files = python_app("p", {"app.json": HEALTHY, ".buildpacks": "http://127.0.0.1:9/bp.git\n"})
    repo = gov.new_app_repo("gq-policed", files, user="bob")
    pushed = gov.push(repo)
    assert pushed.returncode != 0
    assert ("Refused by policy trusted-buildpacks: buildpacks come from github.com/heroku "
            "only (http://127.0.0.1:9/bp.git is not an allowed source)") in pushed.stderr
    assert "Fetching buildpack" not in pushed.stderr
    # a web app without a health check is refused after its build, and nothing serves
    gov.commit(repo, {".buildpacks": "", "app.json": "{}\n"})
    pushed = gov.push(repo)
    assert pushed.returncode != 0
    assert ("Refused by policy web-healthcheck: web apps declare healthchecks.web in app.json "
            "(app.json has no healthchecks.web)") in pushed.stderr
    assert "[remote rejected] main -> main" in pushed.stderr
    assert gov.http("gq-policed").status != 200
    gov.commit(repo, {"app.json": HEALTHY})
    pushed = gov.push(repo)
    assert pushed.returncode == 0, pushed.stderr
    gov.wait_for("gq-policed", "p dyno=web.1")
    destroy(gov, "gq-policed")


def test_policies_refuse_commands_and_edits_apply_without_a_restart(gov: PushdUnderTest):
    gov.deploy("gq-rules", python_app("rules", {"app.json": HEALTHY}), user="alice")
    pid = gov.daemon_pid()
    write_policies(gov, POLICIES)
    refused = gov.ssh("config:set", "gq-rules", "DEBUG_SQL=1", user="alice")
    assert refused.returncode == 1
    assert refused.stderr == (" !    Refused by policy no-debug: DEBUG is not allowed "
                              "(DEBUG_SQL is set)\n")
    assert "DEBUG_SQL" not in gov.ssh("config", "gq-rules", user="alice").stdout
    refused = gov.ssh("ps:scale", "gq-rules", "web=3", user="alice")
    assert refused.returncode == 1
    assert refused.stderr == (" !    Refused by policy max-web-dynos: at most 2 web dynos "
                              "(web=3, at most 2)\n")
    assert gov.ssh("ps:scale", "gq-rules", "web=2", user="alice").returncode == 0
    checked = gov.ssh("policies:check", "gq-rules", user="alice")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "=== gq-rules Policies", "pass  max-web-dynos", "pass  trusted-buildpacks",
        "pass  web-healthcheck", "pass  no-debug", "All 4 pass"]
    # an edit applies at once: the rule on DEBUG goes, a lower web maximum comes
    write_policies(gov, POLICIES.replace("2", "1").replace('[DEBUG, "DEBUG_*"]', "[SECRET_*]"))
    assert gov.ssh("config:set", "gq-rules", "DEBUG_SQL=1", user="alice").returncode == 0
    checked = gov.ssh("policies:check", "gq-rules", user="alice")
    assert checked.returncode == 1
    assert "FAIL  max-web-dynos:      at most 1 web dynos (web=2, at most 1)" in checked.stdout
    assert "1 of 4 failed" in checked.stdout
    # a broken file refuses what it governs, says why, and keeps reads working
    write_policies(gov, "rules: [\n")
    listed = gov.ssh("policies", user="alice")
    assert listed.returncode == 1
    assert listed.stderr.startswith(" !    policies.yaml is invalid (not valid YAML at line 2")
    refused = gov.ssh("ps:scale", "gq-rules", "web=1", user="alice")
    assert refused.returncode == 1 and "policies.yaml is invalid" in refused.stderr
    assert gov.ssh("ps", "gq-rules", user="alice").returncode == 0
    assert gov.daemon_pid() == pid  # all without a restart
    destroy(gov, "gq-rules")
