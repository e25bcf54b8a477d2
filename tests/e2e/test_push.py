"""Issue: from `git push` to a release, through real OpenSSH git and ssh."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from pushd.store import Store

from .harness import PushdUnderTest, python_app, sh

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_python_app_push_builds_releases_and_serves(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("pyweb", python_app("hello from v1"))
    result = pushd.push(repo)
    assert result.returncode == 0, result.stderr
    # build output reached the user live as remote: lines, in order
    # on ssh's stderr before git's lines, with the prefix the push's other lines have
    assert "remote: -----> Creating app pyweb" in result.stderr.splitlines()
    lines = [line for line in result.stderr.splitlines() if line.startswith("remote:")]
    text = "\n".join(lines)
    assert "-----> Python app detected" in text
    assert re.search(r"Compiled slug size: [0-9.]+[KM]\b", text)
    assert "Released v1" in text
    assert pushd.http("pyweb").body.startswith("hello from v1 dyno=web.1")
    releases = pushd.ssh("releases", "pyweb")
    assert releases.returncode == 0
    assert re.search(r"^v1\s+Deploy [0-9a-f]{7}\s+admin\s+\d{4}/\d\d/\d\d", releases.stdout,
                     re.M), releases.stdout


def test_failed_build_leaves_ref_and_release_untouched(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("failing", python_app("good"))
    assert pushd.push(repo).returncode == 0
    good_sha = sh(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    pushd.commit(repo, {"requirements.txt": "this-package-does-not-exist-pushd==0.0.1\n"})
    result = pushd.push(repo)
    assert result.returncode != 0
    assert "[remote rejected]" in result.stderr
    assert "Push rejected, failed to compile" in result.stderr
    remote = sh(["git", "ls-remote", "platform", "main"], cwd=repo, env=pushd.env()).stdout
    assert remote.split()[0] == good_sha
    assert "v2" not in pushd.ssh("releases", "failing").stdout
    assert pushd.http("failing").body.startswith("good")


def test_config_values_round_trip_byte_for_byte(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "cfg").returncode == 0
    awkward = "a b 'single' \"double\" = equals\nsecond line é ✓ $HOME `cmd` ;|&"
    import shlex

    result = pushd.ssh("config:set", "cfg", shlex.quote(f"AWK={awkward}"), "PLAIN=1")
    assert result.returncode == 0, result.stderr
    # never pushed: nothing to restart, and it says so
    assert "Setting AWK, PLAIN on cfg... done, v1" in result.stdout
    got = pushd.ssh("config:get", "cfg", "AWK")
    assert got.stdout == awkward + "\n"
    as_json = pushd.ssh("config", "cfg", "--json")
    import json

    assert json.loads(as_json.stdout) == {"AWK": awkward, "PLAIN": "1"}
    heroku_style = pushd.ssh("config:get", "-a", "cfg", "PLAIN")
    assert heroku_style.stdout == "1\n"
    assert pushd.ssh("config:unset", "cfg", "PLAIN").returncode == 0
    assert "Remove PLAIN config vars" in pushd.ssh("releases", "cfg").stdout


def test_rollback_serves_the_old_slug_and_config(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("rolly", python_app("first"))
    assert pushd.push(repo).returncode == 0
    pushd.commit(repo, python_app("second"))
    assert pushd.push(repo).returncode == 0
    assert pushd.http("rolly").body.startswith("second")
    result = pushd.ssh("rollback", "rolly", "v1")
    assert result.returncode == 0, result.stderr
    assert "Rolling back rolly to v1... done, v3" in result.stdout
    assert pushd.http("rolly").body.startswith("first")
    assert "Rollback to v1" in pushd.ssh("releases", "rolly").stdout


def test_unknown_key_is_refused(pushd: PushdUnderTest):
    result = pushd.ssh("apps", user="stranger")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_user_key_cannot_touch_another_users_app(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "alices", user="alice").returncode == 0
    denied = pushd.ssh("config:set", "alices", "X=1", user="bob")
    assert denied.returncode != 0
    assert "do not have access" in denied.stderr
    assert "alices" not in pushd.ssh("apps", user="bob").stdout
    repo = pushd.new_app_repo("alices", python_app("x"), user="bob")
    assert pushd.push(repo).returncode != 0
    assert pushd.ssh("access:add", "alices", "bob", user="alice").returncode == 0
    assert pushd.ssh("config:set", "alices", "X=1", user="bob").returncode == 0
    # users may not manage keys
    assert pushd.ssh("keys", user="bob").returncode != 0


def test_bad_app_names_are_refused_and_nothing_is_created(pushd: PushdUnderTest):
    before = sorted(p.name for p in (pushd.state / "apps").iterdir())
    for bad in ("../x", "UPPER", "a" * 200, "'x;id'", "'$(id)'", "''"):
        result = pushd.ssh("apps:create", bad)
        assert result.returncode != 0, bad
        assert "Invalid app name" in result.stderr, (bad, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (bad, result.stderr)
    nul = pushd.ssh("apps:create", "'a\x01b'")
    assert nul.returncode != 0
    assert sorted(p.name for p in (pushd.state / "apps").iterdir()) == before
    unknown = pushd.ssh("no:such-command")
    assert unknown.returncode != 0 and "Unknown command" in unknown.stderr


def test_git_push_to_a_bad_app_name_is_refused(pushd: PushdUnderTest):
    before = sorted(p.name for p in (pushd.state / "apps").iterdir())
    repo = pushd.new_app_repo("badpath", python_app("x"))
    sh(["git", "remote", "set-url", "platform", "ssh://git@platform/../x"], cwd=repo,
       check=True)
    result = pushd.push(repo)
    assert result.returncode != 0
    assert " !    Invalid app name '../x'" in result.stderr, result.stderr
    assert sorted(p.name for p in (pushd.state / "apps").iterdir()) == before


def test_another_users_app_cannot_be_cloned(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "privy", user="alice").returncode == 0
    target = pushd.root / "src" / "privy-bob"
    denied = sh(["git", "clone", "-q", "ssh://git@platform-bob/privy", str(target)],
                env=pushd.env())
    assert denied.returncode != 0
    assert "You do not have access to the app privy" in denied.stderr, denied.stderr
    assert not target.exists()
    mine = sh(["git", "clone", "-q", "ssh://git@platform-alice/privy",
               str(pushd.root / "src" / "privy-alice")], env=pushd.env())
    assert mine.returncode == 0, mine.stderr  # an empty repo, but hers


def test_an_app_whose_creation_was_cut_short_can_still_be_pushed(pushd: PushdUnderTest):
    # a crash between the app's row and its repo: the row exists, no folder, no repo
    app = Store(pushd.state / "pushd.db").create_app("halfmade", "admin")
    assert not (pushd.state / "apps" / str(app.id)).exists()
    result = pushd.push(pushd.new_app_repo("halfmade", python_app("whole after all")))
    assert result.returncode == 0, result.stderr
    pushd.wait_for("halfmade", "whole after all", timeout=30)


def test_a_collaborator_cannot_destroy(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "shared", user="alice").returncode == 0
    assert pushd.ssh("access:add", "shared", "bob", user="alice").returncode == 0
    result = pushd.ssh("apps:destroy", "shared", "--confirm", "shared", user="bob")
    assert result.returncode == 1
    assert result.stderr == " !    Only the owner of shared or an admin can destroy it\n"
    assert "shared" in pushd.ssh("apps", user="alice").stdout


def test_destroy_leaves_nothing_behind(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("doomed", python_app("bye"))
    assert pushd.push(repo).returncode == 0
    refused = pushd.ssh("apps:destroy", "doomed")
    assert refused.returncode != 0 and "--confirm doomed" in refused.stderr
    app_dirs = set((pushd.state / "apps").iterdir())
    result = pushd.ssh("apps:destroy", "doomed", "--confirm", "doomed")
    assert result.returncode == 0, result.stderr
    after = set((pushd.state / "apps").iterdir())
    gone = app_dirs - after
    assert len(gone) == 1, (sorted(app_dirs), sorted(after),
                            [sorted(p.rglob("*"))[:10] for p in after])
    assert "doomed" not in pushd.ssh("apps").stdout
    assert pushd.http("doomed").status == 404
    app_id = gone.pop().name
    dyno_dirs = [p.name for p in (pushd.state / "dynos").iterdir()]
    assert not [d for d in dyno_dirs if d.startswith(app_id + "-")]
    mine = f"{pushd.state / 'dynos' / app_id}-"  # other platforms of the run number apps too
    assert not [m for m in open("/proc/mounts").read().splitlines() if mine in m]


def test_two_concurrent_pushes_are_serialised(pushd: PushdUnderTest):
    repo_a = pushd.new_app_repo("racey", python_app("from a"))
    repo_b = pushd.root / "src" / "racey-b"
    sh(["git", "clone", "-q", str(repo_a), str(repo_b)], check=True)
    sh(["git", "remote", "add", "platform", "ssh://git@platform/racey"], cwd=repo_b)
    assert pushd.push(repo_a).returncode == 0
    pushd.commit(repo_a, python_app("from a again"))
    pushd.commit(repo_b, {"app.py": python_app("from b")["app.py"], "b.txt": "b"})
    results = {}

    def push(name, repo):
        results[name] = pushd.push(repo, "--force")

    threads = [threading.Thread(target=push, args=(n, r)) for n, r in
               (("a", repo_a), ("b", repo_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results.values()), results
    waited = [r for r in results.values()
              if "Waiting for the running build of racey (started " in r.stderr]
    assert len(waited) <= 1  # the second says it waits when their builds overlap (the
    # message itself is proven with a slow build in test_builds.py)
    releases = pushd.ssh("releases", "racey").stdout
    assert "v3" in releases and "v4" not in releases
    # the ref and what serves agree: the push that finished last won
    head = sh(["git", "ls-remote", "platform", "main"], cwd=repo_a, env=pushd.env()).stdout
    body = pushd.http("racey").body
    winner = repo_a if "from a again" in body else repo_b
    assert head.split()[0] == sh(["git", "rev-parse", "HEAD"], cwd=winner).stdout.strip()
    # the repo is whole: clone it back over SSH and check every object
    clone = pushd.root / "src" / "racey-clone"
    cloned = sh(["git", "clone", "-q", "ssh://git@platform/racey", str(clone)], env=pushd.env())
    assert cloned.returncode == 0, cloned.stderr
    assert sh(["git", "fsck", "--strict"], cwd=clone).returncode == 0
    assert sh(["git", "rev-parse", "HEAD"], cwd=clone).stdout.strip() == head.split()[0]
