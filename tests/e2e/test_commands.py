"""Admin commands over real OpenSSH: help, logs -t, interactive run, ps:*, rename, keys."""

from __future__ import annotations

import re
import subprocess
import time

from .harness import PushdUnderTest, python_app


def deploy(pushd: PushdUnderTest, name: str, files: dict[str, str]) -> None:
    result = pushd.push(pushd.new_app_repo(name, files))
    assert result.returncode == 0, result.stderr


def test_bare_ssh_prints_help_and_bad_usage_prints_usage(pushd: PushdUnderTest):
    bare = pushd.ssh()
    assert bare.returncode == 0
    assert "config:set" in bare.stdout and "ps:scale" in bare.stdout
    wrong = pushd.ssh("config:get")
    assert wrong.returncode == 2 and "Usage: config:get" in wrong.stderr
    one = pushd.ssh("help", "rollback")
    assert one.stdout.startswith("Usage: rollback APP [vN]")


def test_logs_tail_streams_new_lines(pushd: PushdUnderTest):
    deploy(pushd, "tailed", python_app("t"))
    argv = ["ssh", "-F", str(pushd.ssh_config), "platform", "logs", "tailed", "-t", "-n", "1"]
    tail = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=pushd.env())
    try:
        tail.stdout.readline()  # the one old line: the stream is open
        assert pushd.ssh("config:set", "tailed", "MARK=1").returncode == 0
        deadline = time.monotonic() + 30
        seen = ""
        while "Set MARK config vars" not in seen and time.monotonic() < deadline:
            seen += tail.stdout.readline()
        assert "pushd[api]: Release v2 created by user admin: Set MARK config vars" in seen
    finally:
        tail.terminate()
        tail.wait(10)


def test_interactive_run_gets_a_terminal(pushd: PushdUnderTest):
    deploy(pushd, "console", python_app("c"))
    script = "echo answer=$((6*7)); [ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 5\n"
    result = pushd.ssh("run", "console", "bash", tty=True, input=script, timeout=60)
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "answer=42" in result.stdout
    assert "\non-a-tty" in result.stdout.replace("\r", "")


def test_ps_restart_stop_start(pushd: PushdUnderTest):
    deploy(pushd, "cycled", python_app("cycled"))
    pid_before = pushd.http("cycled", "/env/PS").body
    assert pid_before == "web.1"
    boot_before = pushd.http("cycled", "/boot").body
    assert pushd.ssh("ps:restart", "cycled", "web").returncode == 0
    deadline = time.monotonic() + 30
    while pushd.http("cycled", "/boot").body == boot_before:
        assert time.monotonic() < deadline, "web.1 was not replaced"
        time.sleep(0.2)
    assert pushd.ssh("ps:stop", "cycled").returncode == 0
    deadline = time.monotonic() + 30
    while pushd.http("cycled").status != 503:
        assert time.monotonic() < deadline, "ps:stop left the app serving"
        time.sleep(0.2)
    assert "stopped" in pushd.ssh("ps", "cycled").stdout
    assert pushd.ssh("ps:start", "cycled").returncode == 0
    pushd.wait_for("cycled", "cycled", timeout=30)


def test_rename_moves_the_url(pushd: PushdUnderTest):
    deploy(pushd, "oldname", python_app("renamed"))
    result = pushd.ssh("apps:rename", "oldname", "newname")
    assert result.returncode == 0, result.stderr
    pushd.wait_for("newname", "renamed", timeout=30)
    assert "newname" in pushd.ssh("apps").stdout
    assert pushd.ssh("apps:info", "oldname").returncode != 0


def test_keys_can_be_added_and_removed_by_admins(pushd: PushdUnderTest):
    pub = pushd.make_key("carol")
    added = pushd.ssh("keys:add", "carol", input=(pub.parent / "carol.pub").read_text())
    assert added.returncode == 0, added.stderr
    assert "carol  user" in pushd.ssh("keys").stdout
    garbage = pushd.ssh("keys:add", "dave", input="not a key\n")
    assert garbage.returncode != 0 and "public key" in garbage.stderr
    assert pushd.ssh("keys:remove", "carol").returncode == 0
    assert "carol" not in pushd.ssh("keys").stdout


def test_an_options_value_is_not_taken_for_the_app(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "optioned").returncode == 0
    assert pushd.ssh("config:set", "optioned", "A=1", "--no-wait").returncode == 0
    releases = pushd.ssh("releases", "-n", "5", "optioned")
    assert releases.returncode == 0, releases.stderr
    assert releases.stdout.startswith("=== optioned Releases\nv1  Set A config vars  admin")
    logs = pushd.ssh("logs", "-n", "100", "optioned")
    assert logs.returncode == 0, logs.stderr
    assert "Set A config vars" in logs.stdout
    added = pushd.ssh("buildpacks:add", "-i", "1", "optioned", "heroku/python")
    assert added.returncode == 0, added.stderr
    assert "1. heroku/python" in added.stdout


def test_config_views_have_heroku_shapes(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "shapes").returncode == 0
    assert pushd.ssh("config:set", "shapes", "A=1", "LONG_NAME='two words'").returncode == 0
    view = pushd.ssh("config", "shapes")
    assert view.stdout == "=== shapes Config Vars\nA:         1\nLONG_NAME: two words\n"
    shell = pushd.ssh("config", "shapes", "-s")
    assert shell.stdout == "A=1\nLONG_NAME='two words'\n"


def test_access_lists_and_removes_collaborators(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "crowded", user="alice").returncode == 0
    added = pushd.ssh("access:add", "crowded", "bob", user="alice")
    assert added.stdout == "Adding bob access to crowded... done\n"
    listing = pushd.ssh("access", "crowded", user="bob")
    assert listing.stdout == "=== crowded Access\nalice  owner\nbob  collaborator\n"
    removed = pushd.ssh("access:remove", "crowded", "bob", user="alice")
    assert removed.returncode == 0
    assert removed.stdout == "Removing bob access from crowded... done\n"
    assert pushd.ssh("access", "crowded", user="alice").stdout.endswith("alice  owner\n")
    gone = pushd.ssh("access", "crowded", user="bob")
    assert gone.returncode == 1 and "do not have access" in gone.stderr


def test_releases_info_and_rollback_to_the_previous_release(pushd: PushdUnderTest):
    deploy(pushd, "versioned", python_app("v1 body"))
    assert pushd.ssh("config:set", "versioned", "STAGE=two").returncode == 0
    info = pushd.ssh("releases:info", "versioned", "v1")
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert lines[0] == "=== Release v1"
    fields = dict(line.split(":", 1) for line in lines[1:lines.index("")])
    assert sorted(fields) == sorted(["Add-ons", "By", "Change", "Commit", "Status", "When",
                                     "Process types", "Slug"])
    assert fields["By"].strip() == "admin" and fields["Status"].strip() == "succeeded"
    assert re.fullmatch(r"Deploy [0-9a-f]{7}", fields["Change"].strip())
    assert re.fullmatch(r"[0-9a-f]{40}", fields["Commit"].strip())
    assert fields["Process types"].strip() == "web"
    assert lines[lines.index("") + 1] == "=== v1 Config vars"
    rolled = pushd.ssh("rollback", "versioned")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout == "Rolling back versioned to v1... done, v3\n"
    assert "STAGE" not in pushd.ssh("config", "versioned").stdout
    newest = pushd.ssh("releases", "versioned").stdout.splitlines()[1]
    assert re.match(r"v3\s+Rollback to v1\s+admin\s", newest), newest


def test_a_key_that_owns_apps_cannot_be_removed(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "alices-own", user="alice").returncode == 0
    refused = pushd.ssh("keys:remove", "alice")
    assert refused.returncode == 1
    assert refused.stderr.startswith(" !    alice still owns ")
    assert "alices-own" in refused.stderr and refused.stderr.endswith(" first\n")
    assert "alice  user" in pushd.ssh("keys").stdout
    assert pushd.ssh("apps", user="alice").returncode == 0


def test_events_is_the_audit_trail_over_ssh(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "audited", user="alice").returncode == 0
    secret = "s3cret-value-audit"
    assert pushd.ssh("config:set", "audited", f"TOKEN={secret}", user="alice").returncode == 0
    assert pushd.ssh("config:get", "TOKEN", "-a", "audited", user="bob").returncode == 1
    mine = pushd.ssh("events", "-a", "audited", user="alice")
    assert mine.returncode == 0, mine.stderr
    shown = mine.stdout.splitlines()
    assert [line.split("  ", 2)[2] for line in shown] == [
        "apps:create audited  app=audited  ok",
        "config:set audited TOKEN=[redacted]  app=audited  ok",
        "config:get TOKEN -a audited  app=audited  failed (status 1)"]
    assert "alice (SHA256:" in shown[0] and "bob (SHA256:" in shown[2]
    assert "audited" not in pushd.ssh("events", user="bob").stdout.replace(
        "config:get TOKEN -a audited", "")  # bob sees his own try, no app of alice's
    everything = pushd.ssh("events", "-n", "500")
    assert "config:set audited TOKEN=[redacted]" in everything.stdout
    for path in pushd.state.rglob("*.log*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
