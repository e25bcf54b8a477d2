"""Quotas and policies as pure functions, and policies.yaml read again when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pushd.errors import Refused, UsageError
from pushd.governance import quotas
from pushd.governance.policies import (
    AppState,
    PolicyError,
    check_all,
    host_of,
    judge,
    parse,
    source_allowed,
)
from pushd.governance.policyfile import PolicyFile

POLICIES = """\
rules:
  - name: max-web-dynos
    message: at most 4 web dynos
    max_dynos: {web: 4}
  - name: trusted-buildpacks
    message: buildpacks from github.com/heroku or our git host only
    buildpack_sources: ["https://github.com/heroku/", git.example.com]
  - name: web-healthcheck
    message: web apps declare healthchecks.web in app.json
    web_healthcheck: true
  - name: no-debug
    message: DEBUG and AWS keys are not allowed
    forbidden_config: [DEBUG, "AWS_*"]
  - name: own-domains
    message: custom domains under your own zone
    allowed_domains: {alice: ["*.alice.example"], "*": ["*.apps.example"]}
"""


# quotas
def test_limits_parse_with_units_and_unlimited():
    assert quotas.parse_assignments(["apps=10", "dynos=20", "memory=4g"]) == {
        "apps": 10, "dynos": 20, "memory": 4096}
    assert quotas.parse_limit("memory", "512m") == 512
    assert quotas.parse_limit("memory", "768") == 768
    assert quotas.parse_limit("oneoffs", "0") == 0
    assert quotas.parse_limit("builds", "unlimited") is None
    for kind, bad in (("apps", "-1"), ("apps", "ten"), ("memory", "4t"), ("dynos", "2g")):
        with pytest.raises(UsageError):
            quotas.parse_limit(kind, bad)
    with pytest.raises(UsageError, match="Unknown quota 'cpus'"):
        quotas.parse_assignments(["cpus=2"])
    with pytest.raises(UsageError):
        quotas.parse_assignments(["apps"])


def test_a_full_quota_refuses_with_limit_usage_and_how_to_raise():
    with pytest.raises(Refused) as err:
        quotas.check("alice", "dynos", {"dynos": 20}, used=20, more=1)
    assert str(err.value) == ("Quota exceeded: dynos 20 of 20 in use "
                              "(quotas:set alice dynos=N to raise)")
    with pytest.raises(Refused, match="memory 1536 MB of 2 GB in use, 1 GB more asked"):
        quotas.check("alice", "memory", {"memory": 2048}, used=1536, more=1024)


def test_within_unlimited_or_giving_back_is_allowed():
    quotas.check("alice", "dynos", {"dynos": 20}, used=19, more=1)
    quotas.check("alice", "dynos", {}, used=10_000, more=5)  # no limit set
    quotas.check("alice", "dynos", {"dynos": 2}, used=5, more=-1)  # lowered since: may shrink
    with pytest.raises(Refused):
        quotas.check("alice", "apps", {"apps": 0}, used=0, more=1)  # 0 allows none


def test_formation_memory_is_dynos_times_their_size():
    sizes = {"web": 512, "worker": 1024}
    assert quotas.formation_cost({"web": 2, "worker": 1}, sizes.__getitem__) == (3, 2048)
    usage = quotas.Usage(dynos=3, memory=2048)
    quotas.check_formation("alice", {"memory": 2560}, usage, (3, 2048), (4, 2560))
    with pytest.raises(Refused, match="Quota exceeded: memory"):
        quotas.check_formation("alice", {"memory": 2560}, usage, (3, 2048), (5, 3072))


# policies
def state(**kwargs: object) -> AppState:
    return AppState("myapp", kwargs.pop("owner", "alice"), **kwargs)


def test_policies_parse():
    rules = parse(POLICIES)
    assert [(r.name, r.kind, r.aspect) for r in rules][:2] == [
        ("max-web-dynos", "max_dynos", "formation"),
        ("trusted-buildpacks", "buildpack_sources", "buildpacks")]
    assert parse("") == () and parse("rules: []\n") == ()


@pytest.mark.parametrize("text, said", [
    ("rules: [", "not valid YAML at line 1"),
    ("- a\n", "expected a mapping with one key, rules"),
    ("rules:\n  - name: x\n    message: m\n", "needs exactly one of"),
    ("rules:\n  - name: x\n    message: m\n    max_cpu: 3\n", "unknown key 'max_cpu'"),
    ("rules:\n  - name: x\n    max_dynos: {web: 1}\n", "message must be one line"),
    ("rules:\n  - {name: x, message: m, max_dynos: {web: -1}}\n", "max_dynos must map"),
    ("rules:\n  - {name: x, message: m, web_healthcheck: true}\n"
     "  - {name: x, message: m, web_healthcheck: true}\n", "used twice"),
])
def test_a_bad_policies_file_is_one_line(text: str, said: str):
    with pytest.raises(PolicyError) as err:
        parse(text)
    assert said in str(err.value) and "\n" not in str(err.value)


def test_max_dynos_names_the_rule_and_message():
    rules = parse(POLICIES)
    judge(rules, state(formation={"web": 4, "worker": 9}), {"formation"})
    with pytest.raises(Refused) as err:
        judge(rules, state(formation={"web": 5}), {"formation"})
    assert str(err.value) == ("Refused by policy max-web-dynos: at most 4 web dynos "
                              "(web=5, at most 4)")
    judge(rules, state(formation={"web": 5}), {"config"})  # not what the action changes


@pytest.mark.parametrize("ref, ok", [
    ("python", True), ("heroku/nodejs", True), ("pushd/static", True),
    ("https://github.com/heroku/heroku-buildpack-python.git#v1", True),
    ("https://github.com/heroku", True),
    ("https://github.com/herokuevil/x.git", False),
    ("https://github.com/heroku/../evil/x.git", False),
    ("https://github.com@evil.example/heroku/x.git", False),
    ("https://git.example.com/team/bp.git", True),
    ("git@git.example.com:team/bp.git", True),
    ("ssh://git@git.example.com/team/bp.git", True),
    ("https://git.example.com.evil.example/bp.git", False),
    ("/srv/buildpacks/python", False),
    ("file:///srv/bp", False),
    ("https://evil.example/bp.git", False),
])
def test_buildpack_sources(ref: str, ok: bool):
    assert source_allowed(ref, ["https://github.com/heroku/", "git.example.com"]) is ok


def test_host_of():
    assert host_of("git@GitHub.com:a/b.git") == "github.com"
    assert host_of("https://user:pw@host.example:8443/x") == "host.example"
    assert host_of("/local/path") is None


def test_web_healthcheck_wants_app_json_healthchecks_web():
    rule = [r for r in parse(POLICIES) if r.kind == "web_healthcheck"]
    good = b'{"healthchecks": {"web": [{"type": "startup", "path": "/health"}]}}'
    judge(rule, state(process_types=["web"], app_json=good), {"code"})
    judge(rule, state(process_types=["worker"]), {"code"})  # no web: nothing to check
    for app_json, said in ((None, "no app.json"), (b"{", "not valid JSON"),
                           (b'{"healthchecks": {"worker": [1]}}', "no healthchecks.web"),
                           (b"[]", "no healthchecks.web")):
        with pytest.raises(Refused, match=said):
            judge(rule, state(process_types=["web"], app_json=app_json), {"code"})


def test_forbidden_config_and_allowed_domains():
    rules = parse(POLICIES)
    judge(rules, state(config={"DEBUGGER": "1", "AWS": "x"}), {"config"})
    with pytest.raises(Refused, match="no-debug: .*AWS_SECRET is set"):
        judge(rules, state(config={"AWS_SECRET": "x"}), {"config"})
    judge(rules, state(domains=["www.alice.example", "*.x.alice.example"]), {"domains"})
    with pytest.raises(Refused, match="www.apps.example is not allowed for alice"):
        judge(rules, state(domains=["www.apps.example"]), {"domains"})
    judge(rules, state(owner="bob", domains=["bob.apps.example"]), {"domains"})
    with pytest.raises(Refused, match="own-domains"):
        judge(rules, state(owner="bob", domains=["www.alice.example"]), {"domains"})


def test_check_all_reports_every_rule():
    verdicts = check_all(parse(POLICIES), state(
        formation={"web": 6}, process_types=["web"], config={"DEBUG": "1"},
        buildpacks=["python"], domains=["a.alice.example"]))
    assert {v.rule.name: v.passed for v in verdicts} == {
        "max-web-dynos": False, "trusted-buildpacks": True, "web-healthcheck": False,
        "no-debug": False, "own-domains": True}


# policies.yaml
def test_an_edited_policies_file_applies_without_a_restart(tmp_path: Path):
    path = tmp_path / "policies.yaml"
    changes: list[object] = []
    book = PolicyFile(path, on_change=changes.append)
    assert book.current().rules == () and changes == []  # no file: no rules, no change
    path.write_text(POLICIES)
    assert len(book.current().rules) == 5
    assert len(changes) == 1
    assert book.current() is book.current() and len(changes) == 1  # not re-read unchanged
    path.write_text("rules: [\n")
    broken = book.current()
    assert broken.error.startswith("not valid YAML") and len(changes) == 2
    with pytest.raises(Refused, match="policies.yaml is invalid .*until an admin fixes it"):
        broken.usable()
    path.write_text(POLICIES.replace("web: 4", "web: 2"))
    os.utime(path, ns=(1, 1))  # the same size, any mtime: still seen as a change
    assert book.current().rules[0].value == {"web": 2}
    path.unlink()
    assert book.current().rules == () and len(changes) == 4
