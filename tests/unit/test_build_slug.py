import os
import tarfile

import pytest

from pushd.build.slug import make_slug, size_text
from pushd.errors import BuildError


def app_dir(tmp_path):
    app = tmp_path / "build" / "app"
    (app / ".profile.d").mkdir(parents=True)
    (app / "app.py").write_text("print(1)\n")
    (app / "link").symlink_to("/usr/bin/python3")
    (app / "blob").write_bytes(os.urandom(300_000))  # incompressible
    return app


def test_slug_moves_the_dir_and_writes_the_tarball(tmp_path):
    app = app_dir(tmp_path)
    files = make_slug(app, tmp_path / "slugs", "abc123", 500)
    assert not app.exists()
    assert files.dir == tmp_path / "slugs" / "abc123"
    assert (files.dir / "app.py").read_text() == "print(1)\n"
    assert files.tarball.stat().st_size == files.size
    with tarfile.open(files.tarball) as tar:
        names = tar.getnames()
        assert "./app/app.py" in names
        assert tar.getmember("./app/link").linkname == "/usr/bin/python3"
    assert sorted(os.listdir(tmp_path / "slugs")) == ["abc123", "abc123.tgz"]


def test_too_large_leaves_nothing(tmp_path):
    app = app_dir(tmp_path)
    with pytest.raises(BuildError) as err:
        make_slug(app, tmp_path / "slugs", "abc123", 0)
    assert err.value.phase == "slug"
    assert str(err.value) == "Compiled slug size: more than 0M is too large (max is 0M)."
    assert os.listdir(tmp_path / "slugs") == []
    assert (app / "app.py").exists()  # the caller removes the build dir


def test_a_sparse_file_is_stored_as_its_holes(tmp_path):
    app = app_dir(tmp_path)
    with open(app / "huge.bin", "wb") as fh:
        fh.truncate(100 * 1024 ** 3)  # 100 GB of holes: read as zeros it takes minutes
    files = make_slug(app, tmp_path / "slugs", "sparse1", 5)
    assert files.size < 1024 * 1024
    with tarfile.open(files.tarball) as tar:
        assert tar.getmember("./app/huge.bin").size == 100 * 1024 ** 3


def test_size_text():
    assert size_text(4_404_020) == "4.2M"
    assert size_text(524_392_448) == "500.1M"
    assert size_text(12_600) == "12K"
    assert size_text(10) == "1K"
    assert size_text(200 * 1024) == "0.2M"
