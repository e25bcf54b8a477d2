"""Logs and names between tenants, over real OpenSSH: forged log lines and terminal escapes
from a hostile app, app id reuse, apps:rename rules, domain claims, weak RSA keys."""

from __future__ import annotations

import base64
import errno
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushd.appids import remains, running_uids
from pushd.models import Key
from pushd.paths import Paths
from pushd.sshkeys import fingerprint_blob
from pushd.store import Store
from tests.polling import wait_until

from .harness import PushdUnderTest, new_root, python_app, running, sh

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "apps"


def deploy_fixture(pushd: PushdUnderTest, name: str, fixture: str, user: str = "admin") -> None:
    files = {path.name: path.read_text() for path in (FIXTURES / fixture).iterdir()}
    result = pushd.push(pushd.new_app_repo(name, files, user=user))
    assert result.returncode == 0, result.stderr


def test_a_hostile_app_cannot_forge_platform_lines_nor_send_escapes(pushd: PushdUnderTest):
    deploy_fixture(pushd, "forger", "log-forger")
    wait_until(lambda: "forged-boot" in pushd.ssh("logs", "forger").stdout, timeout=60)
    tail = subprocess.Popen(["ssh", "-F", str(pushd.ssh_config), "platform", "logs", "forger",
                             "-t", "-n", "1"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=pushd.env())
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(tail.stdout.readline, b"")))
    reader.start()
    try:
        wait_until(lambda: chunks)  # the one old line: the stream is open
        assert pushd.http("forger", "/forge?live").status == 200
        wait_until(lambda: b"forged-live" in b"".join(chunks))
    finally:
        tail.terminate()
        tail.wait(10)
        reader.join()
    streamed = b"".join(chunks)

    platform_lines = pushd.ssh("logs", "forger", "-s", "pushd", "-n", "1000").stdout
    assert "FORGED" not in platform_lines
    assert "Starting process" in platform_lines  # the filter shows the platform's own lines
    everything = pushd.ssh("logs", "forger", "-n", "1000")
    for shown in (everything.stdout.encode(), streamed):
        text = shown.decode()
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "\r" not in text and "\u2028" not in text and "\x1e" not in text
        forged = [line for line in text.split("\n") if "FORGED" in line]
        assert forged and all(" app[web.1]: " in line for line in forged), forged
    assert r"\x1b]0;owned-title\x07\x1b[2J" in everything.stdout
    assert r"before-live\u2028" in streamed.decode()


def test_weak_rsa_keys_are_refused_when_added_and_at_login(pushd: PushdUnderTest):
    weak = pushd.root / "keys" / "weak-rsa"
    sh(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "weak", "-f", str(weak)],
       check=True)
    public = (weak.parent / "weak-rsa.pub").read_text()
    added = pushd.ssh("keys:add", "weakling", "--role", "user", input=public)
    assert added.returncode == 1
    assert added.stderr.strip() == ("!    RSA keys under 2048 bits are refused (this one has "
                                    "1024): make a new one with ssh-keygen -t ed25519")
    # an unknown weak key is merely not accepted: the client goes on with its next key
    with_fallback = login(pushd, weak, pushd.keys / "alice")
    assert with_fallback.returncode == 0 and "=== Apps" in with_fallback.stdout
    # a key registered before keys were checked is refused at login, with the same line
    line, fingerprint = parse_public_key_unchecked(public)
    Store(pushd.state / "pushd.db").add_key(Key("legacy", "user", line, fingerprint, 0.0))
    try:
        refused = login(pushd, weak)
    finally:  # other tests read the key list of this shared daemon
        assert pushd.ssh("keys:remove", "legacy").returncode == 0
    assert refused.returncode == 255 and refused.stdout == ""
    assert "RSA keys under 2048 bits are refused (this one has 1024)" in refused.stderr


def login(pushd: PushdUnderTest, *keys: Path) -> subprocess.CompletedProcess:
    """`ssh … apps` offering `keys` in turn, and nothing else."""
    identities = [arg for key in keys for arg in ("-i", str(key))]
    return sh(["ssh", *identities, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-p", str(pushd.ssh_port), "git@127.0.0.1", "apps"],
              stdin=subprocess.DEVNULL)


def parse_public_key_unchecked(text: str) -> tuple[str, str]:
    kind, blob = text.split()[:2]
    return f"{kind} {blob}", fingerprint_blob(base64.b64decode(blob))


@pytest.fixture(scope="module")
def own_uids() -> Iterator[PushdUnderTest]:
    """A daemon of its own, with uids no other pushd on this machine uses: a process of
    another instance's app with the same uid rightly keeps an id from being reused."""
    yield from running(new_root("pushd-e2e-ids-"), {"uid_base": 31000, "boot_timeout": 8,
                                                    "stop_timeout": 5, "drain_seconds": 0.5})


def app_id(pushd: PushdUnderTest, name: str) -> int:
    return Store(pushd.state / "pushd.db").app(name).id


def what_remains(pushd: PushdUnderTest, app: int) -> list[str]:
    return remains(Paths(pushd.state), app, 31000 + app, running_uids())


def destroy(pushd: PushdUnderTest, name: str, user: str = "admin") -> None:
    result = pushd.ssh("apps:destroy", name, "--confirm", name, user=user)
    assert result.returncode == 0, result.stderr


def test_a_destroyed_apps_id_and_uid_go_to_the_next_app(own_uids: PushdUnderTest):
    pushd = own_uids
    assert pushd.ssh("apps:create", "cycle", user="alice").returncode == 0
    first = app_id(pushd, "cycle")
    for _ in range(3):  # ids ran out after ~73 minutes of this; now they come back
        destroy(pushd, "cycle", user="alice")
        assert pushd.ssh("apps:create", "cycle", user="alice").returncode == 0
        assert app_id(pushd, "cycle") == first
    destroy(pushd, "cycle", user="alice")


def test_a_new_app_never_sees_what_the_old_app_with_its_id_left(own_uids: PushdUnderTest):
    pushd = own_uids
    old = pushd.new_app_repo("previous", python_app("previous", {"old-secret.txt": "s3cret"}),
                             user="alice")
    assert pushd.push(old).returncode == 0
    uid = pushd.ssh("run", "previous", "id", "-u", user="alice").stdout.strip()
    reused = app_id(pushd, "previous")
    destroy(pushd, "previous", user="alice")
    wait_until(lambda: not what_remains(pushd, reused))  # the id goes only once it is clean
    new = pushd.new_app_repo("successor", python_app("successor"), user="bob")
    pushed = pushd.push(new)
    assert pushed.returncode == 0, pushed.stderr
    assert app_id(pushd, "successor") == reused
    assert pushd.ssh("run", "successor", "id", "-u", user="bob").stdout.strip() == uid
    listing = pushd.ssh("run", "successor", "ls", "-a", "/app", "/app/..", user="bob").stdout
    assert "old-secret.txt" not in listing and "app.py" in listing
    assert "previous" not in pushd.ssh("logs", "successor", "-n", "1000", user="bob").stdout
    assert "s3cret" not in pushd.ssh("run", "successor", "grep", "-r", "s3cret", "/app",
                                     "/tmp", user="bob").stdout


def test_only_the_owner_renames_and_the_old_name_stays_theirs(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "brand", user="alice").returncode == 0
    assert pushd.ssh("access:add", "brand", "bob", user="alice").returncode == 0
    by_collaborator = pushd.ssh("apps:rename", "brand", "bobs-brand", user="bob")
    assert by_collaborator.returncode == 1
    assert by_collaborator.stderr.strip() == "!    Only the owner of brand or an admin can " \
                                             "rename it"
    assert pushd.ssh("apps:rename", "brand", "brand-new", user="alice").returncode == 0
    # the name alice gave up is not bob's to take: not by apps:create, a push or a rename
    taken = pushd.ssh("apps:create", "brand", user="bob")
    assert taken.returncode == 1
    assert taken.stderr.strip().startswith("!    Name brand was just given up by a rename and "
                                           "is held for its previous owner until ")
    pushed = pushd.push(pushd.new_app_repo("brand", python_app("squatter"), user="bob"))
    assert pushed.returncode != 0 and "Name brand was just given up" in pushed.stderr
    assert pushd.ssh("apps:create", "bobs-own", user="bob").returncode == 0
    renamed = pushd.ssh("apps:rename", "bobs-own", "brand", user="bob")
    assert renamed.returncode == 1 and "held for its previous owner" in renamed.stderr
    # alice takes it back
    back = pushd.ssh("apps:rename", "brand-new", "brand", user="alice")
    assert back.returncode == 0, back.stderr
    assert "brand" in pushd.ssh("apps", user="alice").stdout.split("\n")


def test_a_tenant_cannot_claim_a_wildcard_over_anothers_domain(pushd: PushdUnderTest):
    alice = pushd.new_app_repo("shop", python_app("alice's shop"), user="alice")
    assert pushd.push(alice).returncode == 0
    assert pushd.ssh("apps:create", "grabber", user="bob").returncode == 0
    added = pushd.ssh("domains:add", "shop", "www.example.test", user="alice")
    assert added.returncode == 0, added.stderr
    assert pushd.ssh("domains:add", "grabber", "*.blog.test", user="bob").returncode == 0
    refusals = {"*.example.test": "overlaps www.example.test, which another app serves",
                "www.example.test": "is already in use"}
    for host, reason in refusals.items():
        refused = pushd.ssh("domains:add", "grabber", host, user="bob")
        assert refused.returncode == 1, host
        assert refused.stderr.strip() == f"!    Domain {host} {reason}", refused.stderr
    # the other way round: an exact name (or narrower wildcard) under bob's wildcard
    for host in ("news.blog.test", "a.b.blog.test", "*.news.blog.test"):
        refused = pushd.ssh("domains:add", "shop", host, user="alice")
        assert refused.returncode == 1, host
        assert refused.stderr.strip() == (f"!    Domain {host} overlaps *.blog.test, which "
                                          "another app serves")
    assert pushd.http("x", host="www.example.test").body.startswith("alice's shop")
    assert pushd.ssh("domains", "grabber", user="bob").stdout.split("\n")[-2] == "*.blog.test"


def test_a_build_runs_under_the_same_seccomp_filter(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "prober").returncode == 0
    probe = FIXTURES.parent / "buildpacks" / "syscall-probe"
    assert pushd.ssh("config:set", "prober", f"BUILDPACK_URL={probe}").returncode == 0
    pushed = pushd.push(pushd.new_app_repo("prober", python_app("probed")))
    assert pushed.returncode == 0, pushed.stderr
    answers = dict(line.split()[2:4] for line in pushed.stderr.splitlines()
                   if line.startswith("remote: probe "))
    assert answers == {"unshare-U": "1", "io_uring_setup": str(errno.EPERM),
                       "keyctl": str(errno.EPERM), "ptrace": str(errno.EPERM),
                       "bpf": str(errno.EPERM), "userfaultfd": str(errno.EPERM)}, pushed.stderr
    assert pushd.http("prober").body.startswith("probed")  # and the app it built runs
