"""Dyno endpoints are private: only the router (and pushd) reach a dyno, never an app."""

from __future__ import annotations

import json
import time
import urllib.request

from .harness import PUSHD, PushdUnderTest, python_app, sh

PROBE = '''\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    print("reached")
except OSError as err:
    print("blocked", type(err).__name__)
'''


def endpoint_port(pushd: PushdUnderTest, app: str) -> int:
    """The host port the runtime chose for the app's web.1 (where the router reaches it)."""
    for spec_file in (pushd.state / "dynos").glob("*/spec.json"):
        config = json.loads(spec_file.read_text())
        if config["spec"]["app"] == app and config.get("endpoint"):
            return int(config["endpoint"][1])
    raise AssertionError(f"no web dyno of {app}")


def test_apps_cannot_call_each_others_dynos_directly(pushd: PushdUnderTest):
    for name in ("fwa", "fwb"):
        repo = pushd.new_app_repo(name, python_app(f"I am {name}", {"probe.py": PROBE}))
        assert pushd.push(repo).returncode == 0
    port = endpoint_port(pushd, "fwb")
    # the runtime told the firewall: fwb's uid may reach this endpoint, and only its uid
    table = sh([PUSHD, "status"], env=pushd.env()).stdout.split("nft table ", 1)[1]
    rules = sh(["nft", "list", "table", "inet", table.split(")", 1)[0]]).stdout
    own = rules.split("set own", 1)[1].split("set web", 1)[0]
    assert own.count(f"{port} . ") == 1, rules
    # the platform itself (probes, nginx) still reaches the dyno...
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.read().decode().startswith("I am fwb")
    # ...no sandbox does, not even the app's own: each has a network of its own, where the
    # host's loopback is not
    for app in ("fwa", "fwb"):
        result = pushd.ssh("run", app, "python3", "probe.py", str(port))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "blocked ConnectionRefusedError"
    # through the router, as on Heroku, apps reach each other fine
    assert pushd.http("fwb").body.startswith("I am fwb")


def test_dyno_ports_are_closed_to_other_interfaces(pushd: PushdUnderTest):
    status = sh([PUSHD, "status"], env=pushd.env())
    assert "Dyno ports: private (nft table pushd_" in status.stdout, status.stdout
    table = status.stdout.split("nft table ", 1)[1].split(")", 1)[0]
    rules = sh(["nft", "list", "table", "inet", table]).stdout
    # new connections only (replies to the host's own connections pass), from outside only
    assert 'iifname != "lo" tcp dport 20000-29999 tcp flags syn / syn,ack drop' in rules, rules
    # app uids are refused only this instance's dyno ports on this host: outside services on
    # any port, and other pushd instances' dynos, are not this table's business
    assert 'oifname "lo" tcp dport @web meta skuid 40000-59999 reject' in rules, rules
    assert 'oifname "lo" tcp dport . meta skuid @own accept' in rules, rules
    # app uids (the egress pasta, one-offs' pastas, forwarders) open nothing to the host's own
    # addresses, add-on ports included: dynos reach add-ons over unix sockets
    assert ("meta skuid 40000-59999 fib daddr type local tcp flags syn / syn,ack reject "
            "with tcp reset") in rules, rules
    assert "19000" not in rules and "addon" not in rules, rules
    assert "meta skuid 40000-59999 fib daddr type local meta l4proto udp reject" in rules


def test_rules_flushed_from_outside_come_back(pushd: PushdUnderTest):
    status = sh([PUSHD, "status"], env=pushd.env()).stdout
    table = status.split("nft table ", 1)[1].split(")", 1)[0]
    assert sh(["nft", "delete", "table", "inet", table]).returncode == 0
    deadline = time.monotonic() + 30
    while "Dyno ports: private" not in sh([PUSHD, "status"], env=pushd.env()).stdout:
        assert time.monotonic() < deadline, "the daemon never restored its rules"
        time.sleep(0.5)
    rules = sh(["nft", "list", "table", "inet", table]).stdout
    assert "meta skuid @own accept" in rules and "reject with tcp reset" in rules
