"""The build cache where loop mounts are refused: a plain folder, emptied once too large."""

import subprocess

from pushd.build import cachefs
from pushd.build.cachefs import BuildCache


def refuse_mounts(argv):
    if argv[0] == "mount":
        return subprocess.CompletedProcess(argv, 32, "", "mount: permission denied")
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_without_loop_mounts_the_cache_is_a_folder_emptied_past_its_size(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(cachefs, "_run", refuse_mounts)
    said = []
    (tmp_path / "build").mkdir()
    cache = BuildCache(tmp_path, 1, 40_921)
    folder = cache.open(tmp_path / "build" / "cache", said.append)
    assert folder == tmp_path / "cache" and folder.stat().st_uid == 40_921
    assert said[-1].startswith(" !     Warning: the build cache is not size-limited here "
                               "(mount: permission denied)")
    (folder / "small").write_bytes(b"x" * 1000)
    cache.close(said.append)
    assert (folder / "small").exists()  # under its size: kept for the next build
    cache = BuildCache(tmp_path, 1, 40_921)
    cache.open(tmp_path / "build" / "cache", said.append)
    (folder / "big").write_bytes(b"x" * 2 * 1024 * 1024)
    cache.close(said.append)
    assert said[-1] == " !     Warning: the build cache grew past 1 MB and was emptied\n"
    assert not folder.exists()
