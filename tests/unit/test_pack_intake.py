"""PackIntake on packs made by real git, indexed by real git (no daemon): the pack lands in
objects/pack only whole and indexed, thin packs are completed, refused and broken packs
leave nothing, and the reader never reads past the pack's end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dulwich.repo import Repo

from pushd.gitserver.intake import PackIntake, UnpackFailed
from pushd.gitserver.packguard import PackCaps, PackRefused
from tests.unit.test_pack_guard import MB, commit, git, pack


class Wire:
    """The pusher's side: the pack in uneven pieces, then nothing (the pusher waits for the
    report): reading past the pack would block forever, so here it fails the test."""

    def __init__(self, data: bytes, eof: bool = False) -> None:
        self.data, self.pos, self.eof = data, 0, eof

    def read_some(self, size: int) -> bytes:
        if self.pos == len(self.data) and not self.eof:
            raise AssertionError("read past the end of the pack: a real pusher would hang")
        piece = self.data[self.pos:self.pos + min(size, 40_000)]
        self.pos += len(piece)
        return piece


@pytest.fixture
def repos(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst.git"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    Repo.init_bare(str(dst), mkdir=True).close()
    return src, dst


def intake(dst: Path, wire: Wire, said: list[str], caps=PackCaps(50 * MB, 20 * MB)):  # noqa: ANN201, B008
    return PackIntake(dst, caps, memory_mb=64, prefix="pack-unittest-0-",
                      read_some=wire.read_some, say=said.append)


def stored(dst: Path) -> list[str]:
    objects = dst / "objects"
    return sorted([p.name for p in (objects / "pack").iterdir()]
                  + [p.name for p in objects.iterdir() if p.name.startswith(("incoming-", "tmp"))])


def test_a_pack_is_indexed_into_the_repo_and_nothing_past_it_is_read(repos):
    src, dst = repos
    sha = commit(src, {"big.bin": os.urandom(3 * MB), "a.txt": b"hello\n"})
    wire, said = Wire(pack(src, "HEAD\n")), []
    taken = intake(dst, wire, said)
    taken.add_thin_pack()  # and it read no byte past the pack's end
    names = stored(dst)
    assert len(names) == 2 and names[0].endswith(".idx") and names[1].endswith(".pack")
    repo = Repo(str(dst))
    try:
        assert repo[sha.encode()].type_name == b"commit"
    finally:
        repo.close()
    taken.discard()  # as when no ref moved: the pack goes again
    assert stored(dst) == []


def test_a_thin_pack_is_completed_from_the_repo(repos):
    src, dst = repos
    data = os.urandom(2 * MB)
    commit(src, {"big.bin": data})
    intake(dst, Wire(pack(src, "HEAD\n")), []).add_thin_pack()
    sha = commit(src, {"big.bin": data + b"more"})
    intake(dst, Wire(pack(src, "HEAD\n^HEAD~1\n", thin=True)), []).add_thin_pack()
    assert git(dst, "cat-file", "-p", f"{sha}:big.bin").stdout == data + b"more"


def test_a_pack_over_a_cap_is_refused_and_leaves_nothing(repos):
    src, dst = repos
    commit(src, {"big.bin": os.urandom(3 * MB)})
    wire, said = Wire(pack(src, "HEAD\n")), []
    taken = intake(dst, wire, said, caps=PackCaps(50 * MB, 1 * MB))
    with pytest.raises(PackRefused, match=r"a file of 3 MB is larger than 1 MB"):
        taken.add_thin_pack()
    assert said == [" !     push refused: a file of 3 MB is larger than 1 MB (max_object_mb)\n"]
    assert wire.pos == len(wire.data)  # the rest of the pack was read (and dropped)
    assert stored(dst) == []


def test_a_broken_pack_fails_with_gits_reason_and_leaves_nothing(repos):
    src, dst = repos
    commit(src, {"a.txt": b"hello\n"})
    data = bytearray(pack(src, "HEAD\n"))
    data[-1] ^= 0xFF  # the trailer no longer matches
    said: list[str] = []
    with pytest.raises(UnpackFailed):
        intake(dst, Wire(bytes(data), eof=True), said).add_thin_pack()
    assert said and said[0].startswith(" !     fatal:"), said
    assert stored(dst) == []


def test_leftovers_of_a_killed_push_are_cleared(repos):
    src, dst = repos
    (dst / "objects" / "incoming-stale").mkdir()
    (dst / "objects" / "incoming-stale" / "incoming.pack").write_bytes(b"PACK")
    (dst / "objects" / "tmp_pack_abc").write_bytes(b"PACK")
    (dst / "objects" / "pack" / "tmp_idx_abc").write_bytes(b"x")
    commit(src, {"a.txt": b"hello\n"})
    intake(dst, Wire(pack(src, "HEAD\n")), []).add_thin_pack()
    assert [name for name in stored(dst) if not name.startswith("pack-")] == []
