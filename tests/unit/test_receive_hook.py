"""The push through dulwich's real ReceivePackHandler (pinned in pyproject.toml): a pack made
by real git goes through `receive.receive_pack` in-process, the build runs in the per-ref
update step with the pushed commit present, and a failed build leaves the branch where it was.
A dulwich whose handler skipped that step (before 1.1) or ran it after moving the ref would
move the branch without a build: these tests fail then."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from dulwich.protocol import pkt_line
from dulwich.repo import Repo

from pushd.errors import BuildError
from pushd.gitserver import receive
from pushd.models import Key
from pushd.platform import Platform
from pushd.settings import Settings

ADMIN = Key(name="admin", role="admin", public_key="", fingerprint="SHA256:admin")
ZERO = "0" * 40


class RefusingBuilder:
    """Sees what the builder would: the pushed commit must already be in the app's repo."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.seen: list[tuple[str, bool, str | None]] = []

    def build(self, app, commit, config, out, *, admin=False):  # noqa: ANN001, ANN201
        with Repo(str(self.platform.paths.repo(app.id))) as repo:
            present = commit.encode() in repo.object_store
            branch = repo.refs.as_dict().get(b"refs/heads/main")
        self.seen.append((commit, present, branch.decode() if branch else None))
        out("-----> compiling on purpose to fail\n")
        raise BuildError("bin/compile exited with status 1", phase="compile")


def git(cwd: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], input=data, check=True, capture_output=True).stdout


def push_request(src: Path, old: str, new: str) -> bytes:
    """What `git push` sends receive-pack: the command, a flush, the pack."""
    command = f"{old} {new} refs/heads/main\0report-status side-band-64k\n".encode()
    revs = f"{new}\n" + (f"^{old}\n" if old != ZERO else "")
    pack = git(src, "pack-objects", "--stdout", "--revs", "-q", data=revs.encode())
    return pkt_line(command) + b"0000" + pack


@pytest.fixture
def platform(tmp_path: Path, monkeypatch) -> Platform:
    platform = Platform(Settings(state_dir=tmp_path / "state"))
    platform.paths.ensure()
    monkeypatch.setitem(platform.__dict__, "builder", RefusingBuilder(platform))
    return platform


def test_a_failed_build_never_moves_the_branch(platform: Platform, tmp_path: Path):
    app = platform.store.create_app("hooked", "admin")
    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
    (src / "a.txt").write_text("one\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "one")
    new = git(src, "rev-parse", "HEAD").decode().strip()
    written: list[bytes] = []
    receive.receive_pack(platform, app, ADMIN, io.BytesIO(push_request(src, ZERO, new)),
                         written.append, lambda text: None)
    reply = b"".join(written)
    assert platform.builder.seen == [(new, True, None)]  # built with the objects, ref unmoved
    assert b"compiling on purpose to fail" in reply  # the build's lines reached the pusher
    assert b"ng refs/heads/main build failed" in reply
    with Repo(str(platform.paths.repo(app.id))) as repo:
        assert b"refs/heads/main" not in repo.refs.as_dict()
        assert new.encode() not in repo.object_store  # the refused pack was dropped again
