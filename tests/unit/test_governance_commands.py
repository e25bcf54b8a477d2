"""quotas, quotas:set, policies, policies:check and the hooks in commands, through `dispatch`
on a real store in a temp dir (no daemon)."""

from __future__ import annotations

import os

import pytest

from tests.unit.test_command_dispatch import ADMIN, ALICE, BOB, Harness

POLICIES = """\
rules:
  - name: max-web-dynos
    message: at most 4 web dynos
    max_dynos: {web: 4}
  - name: no-debug
    message: DEBUG is not allowed
    forbidden_config: [DEBUG]
  - name: own-domains
    message: custom domains under your own zone
    allowed_domains: {alice: ["*.alice.example"]}
  - name: trusted-buildpacks
    message: buildpacks from github.com/heroku only
    buildpack_sources: ["https://github.com/heroku/"]
"""


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path).deployed({"web": 1, "worker": 0})


def write_policies(h: Harness, text: str) -> None:
    (h.platform.paths.root / "policies.yaml").write_text(text)


def test_a_user_cannot_set_quotas_an_admin_can(h: Harness):
    assert h.run("quotas:set", "alice", "apps=10", user=ALICE) == 1
    assert h.err == " !    quotas:set is for admins only\n"
    assert h.platform.store.quotas("alice") == {}
    assert h.run("quotas:set", "alice", "apps=10", "dynos=20", "memory=4g") == 0, h.err
    assert h.out == "Quotas of alice set: apps=10 dynos=20 memory=4 GB\n"
    assert h.platform.store.quotas("alice") == {"apps": 10, "dynos": 20, "memory": 4096}
    assert h.run("quotas:set", "alice", "dynos=unlimited") == 0
    assert h.platform.store.quotas("alice") == {"apps": 10, "memory": 4096}
    assert h.run("quotas:set", "nobody", "apps=1") == 1 and "No key named nobody" in h.err
    assert h.run("quotas:set", "alice", "cpus=1") == 2 and "Unknown quota 'cpus'" in h.err
    assert h.run("quotas:set", "bob", "apps=0") == 0
    assert h.run("keys:remove", "bob") == 0
    h.platform.store.add_key(BOB)
    assert h.platform.store.quotas("bob") == {}  # a new key of the same name starts afresh


def test_quotas_show_limits_and_usage_to_the_user_and_admins(h: Harness):
    h.platform.store.set_quotas("alice", {"dynos": 20, "memory": 2048})
    h.platform.store.set_formation(h.app.id, {"web": 2, "worker": 1})
    assert h.run("quotas", user=ALICE) == 0, h.err
    lines = h.out.splitlines()
    assert lines[0] == "=== alice Quotas"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["apps"][:2] == ["unlimited", "1"]
    assert rows["dynos"][:2] == ["20", "3"]
    assert rows["memory"][:4] == ["2", "GB", "1536", "MB"]  # 3 dynos x 512 MB
    assert "not enforced yet" in lines[-1] and lines[-1].startswith("addons")
    assert h.run("quotas", "alice", user=BOB) == 1
    assert "Only admins can see other users' quotas" in h.err
    assert h.run("quotas", "alice", user=ADMIN) == 0 and "=== alice Quotas" in h.out


def test_apps_quota_refuses_a_new_app(h: Harness):
    h.platform.store.set_quotas("alice", {"apps": 1})
    assert h.run("apps:create", "second", user=ALICE) == 1
    assert h.err == (" !    Quota exceeded: apps 1 of 1 in use "
                     "(quotas:set alice apps=N to raise)\n")
    assert [a.name for a in h.platform.store.apps()] == ["myapp"]
    assert h.run("apps:create", "second", user=BOB) == 0, h.err  # bob has no quota


def test_dynos_and_memory_quotas_refuse_ps_scale(h: Harness):
    h.platform.store.set_quotas("alice", {"dynos": 3})
    assert h.run("ps:scale", "myapp", "web=3", user=ALICE) == 0, h.err
    assert h.run("ps:scale", "myapp", "worker=1", user=BOB) == 1  # bob: no access
    h.run("access:add", "myapp", "bob", user=ALICE)
    assert h.run("ps:scale", "myapp", "worker=1", user=BOB) == 1  # the owner's quota counts
    assert h.err == (" !    Quota exceeded: dynos 3 of 3 in use "
                     "(quotas:set alice dynos=N to raise)\n")
    assert h.run("ps:scale", "myapp", "web=1", "worker=2", user=ALICE) == 0, h.err
    h.platform.store.set_quotas("alice", {"dynos": None, "memory": 1024})
    assert h.run("ps:scale", "myapp", "web=2", user=ALICE) == 1
    assert "Quota exceeded: memory 1536 MB of 1 GB in use" in h.err
    assert h.platform.store.formation(h.app.id) == {"web": 1, "worker": 2}
    assert h.run("ps:scale", "myapp", "worker=0", user=ALICE) == 0, h.err  # giving back


def test_oneoffs_quota_counts_running_oneoffs(h: Harness):
    h.platform.store.set_quotas("alice", {"oneoffs": 1})
    running = h.platform.paths.dynos_dir / f"{h.app.id}-run.1234-v1-abcdef"
    running.mkdir(parents=True)
    (running / "oneoff.json").write_text(f'{{"pid": {os.getpid()}, "layer": ""}}')
    assert h.run("run", "myapp", "true", user=ALICE) == 1
    assert h.err == (" !    Quota exceeded: oneoffs 1 of 1 in use "
                     "(quotas:set alice oneoffs=N to raise)\n")
    assert h.run("quotas", user=ALICE) == 0
    assert h.out.splitlines()[5].split()[:3] == ["oneoffs", "1", "1"]


def test_policies_list_check_and_refusals(h: Harness):
    assert h.run("policies", user=ALICE) == 0 and "No policies" in h.out
    write_policies(h, POLICIES)
    assert h.run("policies", user=ALICE) == 0, h.err
    assert h.out.splitlines()[:3] == [
        "=== Policies", "name                kind               message",
        "max-web-dynos       max_dynos          at most 4 web dynos"]
    assert h.run("ps:scale", "myapp", "web=5", user=ALICE) == 1
    assert h.err == (" !    Refused by policy max-web-dynos: at most 4 web dynos "
                     "(web=5, at most 4)\n")
    assert h.run("config:set", "myapp", "DEBUG=1", user=ALICE) == 1
    assert "Refused by policy no-debug: DEBUG is not allowed" in h.err
    assert "DEBUG" not in h.platform.store.config(h.app.id)
    assert h.run("domains:add", "myapp", "www.bob.example", user=ALICE) == 1
    assert "Refused by policy own-domains" in h.err
    assert h.run("buildpacks:set", "myapp", "https://evil.example/bp.git", user=ALICE) == 1
    assert "Refused by policy trusted-buildpacks" in h.err
    assert h.run("config:set", "myapp", "BUILDPACK_URL=https://evil.example/bp.git") == 1
    assert "trusted-buildpacks" in h.err  # admins too: policies bind every key
    assert h.platform.store.app("myapp").buildpacks == ()


def test_policies_check_reports_each_rule(h: Harness):
    h.platform.store.create_release(h.app.id, description="Set", user="alice",
                                    config_set={"DEBUG": "1"})
    h.platform.store.set_formation(h.app.id, {"web": 6})
    write_policies(h, POLICIES)
    assert h.run("policies:check", "myapp", user=ALICE) == 1
    assert h.out.splitlines() == [
        "=== myapp Policies",
        "FAIL  max-web-dynos:      at most 4 web dynos (web=6, at most 4)",
        "FAIL  no-debug:           DEBUG is not allowed (DEBUG is set)",
        "pass  own-domains",
        "pass  trusted-buildpacks",
        "2 of 4 failed"]
    # what is already over a rule does not block unrelated changes
    assert h.run("ps:scale", "myapp", "worker=1", user=ALICE) == 0, h.err


def test_an_invalid_policies_file_refuses_changes_and_says_so(h: Harness):
    write_policies(h, "rules:\n  - name: x\n")
    assert h.run("policies", user=ALICE) == 1
    assert h.err.startswith(" !    policies.yaml is invalid (rule x: message must be one line")
    assert h.run("ps:scale", "myapp", "web=2", user=ALICE) == 1
    assert "policies.yaml is invalid" in h.err and "until an admin fixes it" in h.err
    assert h.run("apps:create", "another", user=ALICE) == 1
    assert h.run("ps", "myapp", user=ALICE) == 0  # reading still works
    write_policies(h, POLICIES)  # fixed in place: no restart
    assert h.run("ps:scale", "myapp", "web=2", user=ALICE) == 0, h.err


def test_a_rollback_is_judged_on_what_it_brings_back(h: Harness):
    store = h.platform.store
    store.create_release(h.app.id, description="Set", user="alice", config_set={"DEBUG": "1"})
    store.create_release(h.app.id, description="Remove", user="alice", config_unset=["DEBUG"])
    write_policies(h, POLICIES)
    assert h.run("rollback", "myapp", "v2", user=ALICE) == 1
    assert "Refused by policy no-debug: DEBUG is not allowed (DEBUG is set)" in h.err
    assert "DEBUG" not in store.config(h.app.id)
    assert h.run("rollback", "myapp", "v1", user=ALICE) == 0, h.err


def test_builds_at_once_are_admitted_in_one_transaction(h: Harness):
    from pushd.errors import Refused
    from pushd.governance import quotas

    store = h.platform.store
    live = {os.getpid()}

    def start(build_id: str, pid: int) -> None:
        store.start_build(build_id, h.app.id, "alice", pid, live.__contains__,
                          lambda running: quotas.check("alice", "builds", {"builds": 2},
                                                       running, 1))

    start("a", os.getpid())
    start("b", os.getpid())
    with pytest.raises(Refused, match="Quota exceeded: builds 2 of 2 in use"):
        start("c", os.getpid())
    store.end_build("a")
    start("c", os.getpid())
    live.clear()  # the daemon that ran them died: its rows count no more
    start("d", 12345)
    assert store.running_builds("alice") == [12345]
