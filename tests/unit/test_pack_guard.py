"""PackGuard on real packs made by git: sizes are refused from the headers, before inflating."""

import os
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from pushd.gitserver.packguard import PackCaps, PackGuard, PackRefused, TrailerWatch

MB = 1024 * 1024


def git(repo: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@t", *args], check=True, capture_output=True, **kwargs)


def commit(repo: Path, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        (repo / name).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    return git(repo, "rev-parse", "HEAD", text=True).stdout.strip()


def pack(repo: Path, revs: str, thin: bool = False) -> bytes:
    args = ["pack-objects", "--stdout", "--revs", "-q"] + (["--thin"] if thin else [])
    return git(repo, *args, input=revs.encode()).stdout


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    return tmp_path / "r"


def feed_in_pieces(guard: PackGuard, data: bytes, watch: TrailerWatch | None = None) -> int:
    """Feed like a network would (uneven chunks); the offset where the watch saw the end."""
    rng, pos, end = random.Random(7), 0, -1
    while pos < len(data):
        size = rng.choice([1, 3, 20, 700, 65536])
        chunk = data[pos:pos + size]
        pos += len(chunk)
        if watch is not None and watch.feed(chunk) and end < 0:
            end = pos
        guard.feed(chunk)
    return end


def test_an_ordinary_pack_passes_and_its_end_is_found(repo):
    commit(repo, {"a.txt": b"hello\n" * 1000, "b.bin": os.urandom(200_000)})
    commit(repo, {"a.txt": b"hello\n" * 1001})
    data = pack(repo, "HEAD\n")
    guard, watch = PackGuard(PackCaps(10 * MB, 1 * MB)), TrailerWatch()
    assert feed_in_pieces(guard, data, watch) == len(data)
    assert guard.state == "trailer" and guard.remaining_objects == 0


def test_a_huge_file_of_zeros_is_refused_from_its_header(repo):
    commit(repo, {"zeros.bin": bytes(64 * MB)})  # 64 MB that deflate to ~64 KB
    data = pack(repo, "HEAD\n")
    assert len(data) < 1 * MB
    guard = PackGuard(PackCaps(10 * MB, 1 * MB))
    with pytest.raises(PackRefused) as err:
        feed_in_pieces(guard, data)
    assert str(err.value) == ("push refused: a file of 64 MB is larger than 1 MB "
                              "(max_object_mb)")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_a_delta_that_makes_a_huge_file_is_refused():
    # a REF_DELTA on a 1 KB base whose copy instructions make 64 MB: tiny on the wire
    copy = bytes([0x80 | 0x10 | 0x20, 0x00, 0x04])  # copy 0x400 bytes from offset 0
    delta = varint(1024) + varint(64 * MB) + copy * (64 * 1024)
    body = zlib.compress(delta, 9)
    size = len(delta)
    header = bytearray([(7 << 4) | (size & 0x0F) | 0x80])
    size >>= 4
    while size:
        header.append((size & 0x7F) | (0x80 if size >> 7 else 0))
        size >>= 7
    data = b"PACK" + struct.pack(">LL", 2, 1) + bytes(header) + b"\x11" * 20 + body
    assert len(data) < 10_000
    with pytest.raises(PackRefused) as err:
        feed_in_pieces(PackGuard(PackCaps(10 * MB, 1 * MB)), data)
    assert str(err.value) == ("push refused: a file of 64 MB is larger than 1 MB "
                              "(max_object_mb)")


def test_a_pack_over_the_wire_cap_is_refused(repo):
    commit(repo, {"noise.bin": os.urandom(300_000)})
    with pytest.raises(PackRefused, match="the pack is larger than 200000 bytes"):
        feed_in_pieces(PackGuard(PackCaps(200_000, 10 * MB)), pack(repo, "HEAD\n"))


def test_garbage_is_not_a_pack():
    with pytest.raises(PackRefused, match="not a git pack"):
        PackGuard(PackCaps(MB, MB)).feed(b"GET / HTTP/1.1\r\n")
