import errno
import sqlite3
from pathlib import Path

import pytest

from pushd import diskspace
from pushd.errors import DiskFull
from pushd.gitserver import repogc


def test_full_disk_errors_are_recognised_through_their_causes():
    assert diskspace.is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert diskspace.is_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert diskspace.is_full(sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/pushd.db")
        except OSError as err:
            raise RuntimeError("wrapped") from err
    except RuntimeError as wrapped:
        assert diskspace.is_full(wrapped)
    assert not diskspace.is_full(OSError(errno.EPIPE, "Broken pipe"))
    assert not diskspace.is_full(ValueError("nope"))


def test_the_message_names_the_path_and_its_filesystem(tmp_path: Path):
    err = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "pushd.db"))
    full = diskspace.disk_full(tmp_path, err)
    assert isinstance(full, DiskFull)
    text = str(full)
    assert text.startswith(f"No space left on device: could not write {tmp_path}/pushd.db (")
    assert " mounted on /" in text and text.endswith("MB free); nothing was changed")


def test_the_filesystem_of_a_path_is_its_longest_mount(tmp_path: Path):
    fs = diskspace.filesystem(tmp_path / "not" / "yet")
    assert str(tmp_path).startswith(fs.mount_point)
    assert 0 <= fs.free_bytes <= fs.total_bytes


def test_a_change_is_refused_before_it_begins_without_room(tmp_path: Path):
    with pytest.raises(DiskFull, match=r"^No space left on device: the state dir .* has "):
        diskspace.require_space(tmp_path, needed=1 << 62)
    diskspace.require_space(tmp_path, needed=0)


def test_status_warns_below_the_threshold(tmp_path: Path):
    assert "WARNING: below disk_warn_mb (1000000000 MB)" in diskspace.status_line(
        tmp_path, 10 ** 9)
    assert "WARNING" not in diskspace.status_line(tmp_path, 0)


def test_a_step_that_failed_in_its_own_words_for_a_full_disk_is_one(tmp_path: Path):
    assert diskspace.full_at(tmp_path, "error: unable to write file blob.bin") is not None
    assert diskspace.full_at(tmp_path, "tar: Cannot write: No space left on device")
    assert diskspace.full_at(tmp_path, "SyntaxError: invalid syntax") is None


def test_git_gc_runs_without_hooks_or_foreign_config(tmp_path: Path):
    argv = repogc.gc_argv(tmp_path / "repo.git")
    assert argv[:3] == ["git", "--git-dir", str(tmp_path / "repo.git")]
    assert argv[-3:] == ["gc", "--quiet", "--prune=now"]
    assert "core.hooksPath=/dev/null" in argv and "core.fsmonitor=false" in argv


def test_a_push_that_moved_no_ref_leaves_no_pack(tmp_path: Path):
    pack = tmp_path / "objects" / "pack"
    pack.mkdir(parents=True)
    (pack / "pack-old.pack").write_bytes(b"old")
    before = repogc.snapshot(tmp_path)
    (pack / "pack-new.pack").write_bytes(b"new")
    (pack / "pack-new.idx").write_bytes(b"idx")
    (tmp_path / "objects" / "tmp_pack_abc").write_bytes(b"half")
    kept = repogc.drop_leftovers(tmp_path, set(before), refs_moved=True)
    assert kept == 4 and (pack / "pack-new.pack").exists()  # only the temporary pack went
    freed = repogc.drop_leftovers(tmp_path, set(before), refs_moved=False)
    assert freed == 6
    assert sorted(p.name for p in pack.iterdir()) == ["pack-old.pack"]
