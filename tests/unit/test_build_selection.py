"""Buildpack references, their precedence, and detection order (with a fake runner)."""

import os

import pytest

from pushd.build.buildpacks import (
    BUNDLED_ORDER,
    BuildpackResolver,
    bundled_name,
    parse_buildpacks_file,
    requested_buildpacks,
    validate_buildpack,
)
from pushd.build.detect import first_detected
from pushd.build.hostpaths import HostPaths
from pushd.errors import BuildError, UsageError


@pytest.mark.parametrize("ref", [
    "python", "pushd/nodejs", "heroku/python", "static", "procfile",
    "https://github.com/heroku/heroku-buildpack-python.git",
    "https://github.com/heroku/heroku-buildpack-python#v250",
    "file:///srv/buildpacks/custom.git#main", "git@github.com:me/bp.git#v1",
    "ssh://git@host/bp.git",
])
def test_valid_references(ref):
    assert validate_buildpack(f"  {ref} ") == ref


def test_local_path_is_resolved_to_the_real_folder_and_its_identity(tmp_path):
    # validation (as root) says nothing about what exists on the host...
    assert validate_buildpack(str(tmp_path)) == str(tmp_path)
    with pytest.raises(UsageError, match="plain absolute path"):
        validate_buildpack(f"{tmp_path}/../etc")
    # ...the resolver pins the real folder; what it holds is read later, in the sandbox
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    resolver = BuildpackResolver(tmp_path, tmp_path / "cache")
    found = resolver.resolve(str(tmp_path / "link"), print, 0, "", tmp_path / "scratch")
    info = os.stat(tmp_path / "real")
    assert found.path == tmp_path / "real"
    assert found.identity == (info.st_dev, info.st_ino)
    with pytest.raises(BuildError, match="no folder there"):
        resolver.resolve(str(tmp_path / "nothing"), print, 0, "", tmp_path / "scratch")


def test_user_keys_may_name_only_allowed_host_folders(tmp_path):
    allowed, other = tmp_path / "packs", tmp_path / "elsewhere"
    for folder in (allowed / "mine", other):
        folder.mkdir(parents=True)
    (allowed / "escape").symlink_to(other)
    user = BuildpackResolver(tmp_path, tmp_path / "cache", host_paths=HostPaths(
        admin=False, allowed=(str(allowed),)))
    scratch = tmp_path / "scratch"
    assert user.resolve(str(allowed / "mine"), print, 0, "", scratch).path == allowed / "mine"
    for ref in (str(other), f"file://{other}", str(allowed / "escape"),
                str(tmp_path / "nothing"), f"file://{other}#v1"):
        with pytest.raises(BuildError) as err:
            user.resolve(ref, print, 0, "", scratch)
        assert str(err.value) == (f"Buildpack {ref} refused: a path on the platform's host is "
                                  "for admin keys and the operator's allowed_buildpack_paths "
                                  "only")
    nobody = BuildpackResolver(tmp_path, tmp_path / "cache", host_paths=HostPaths(admin=False))
    with pytest.raises(BuildError, match="refused"):
        nobody.resolve(str(allowed / "mine"), print, 0, "", scratch)
    admin = BuildpackResolver(tmp_path, tmp_path / "cache", host_paths=HostPaths(admin=True))
    assert admin.resolve(str(other), print, 0, "", scratch).path == other
    assert nobody.resolve("python", print, 0, "", scratch).path == tmp_path / "python"


@pytest.mark.parametrize("ref", [
    "", "ruby", "rm -rf /", "relative/path", "https://x/y.git#--upload-pack=evil",
    "https://x/y.git#a b", "ftp://x/y", "py\nthon", "x" * 2000,
])
def test_garbage_is_one_line_usage_error(ref):
    with pytest.raises(UsageError) as err:
        validate_buildpack(ref)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("Invalid buildpack")


def test_bundled_names():
    assert bundled_name("pushd/static") == "static"
    assert bundled_name("heroku/nodejs") == "nodejs"
    assert bundled_name("heroku/ruby") is None


def test_buildpacks_file_parsing():
    assert parse_buildpacks_file("# c\n\n  /a/b \nhttps://x/y.git#v1\n") == [
        "/a/b", "https://x/y.git#v1"]


def test_precedence_buildpack_url_then_file_then_app_then_detection(tmp_path):
    app = ("python",)
    assert requested_buildpacks({}, tmp_path, ()) == ([], "detection")
    assert requested_buildpacks({}, tmp_path, app) == (["python"], "buildpacks:set")
    (tmp_path / ".buildpacks").write_text("nodejs\nstatic\n")
    assert requested_buildpacks({}, tmp_path, app) == (["nodejs", "static"], ".buildpacks")
    config = {"BUILDPACK_URL": "https://x/bp.git"}
    assert requested_buildpacks(config, tmp_path, app) == (["https://x/bp.git"],
                                                           "BUILDPACK_URL")
    (tmp_path / ".buildpacks").write_text("# only comments\n")
    assert requested_buildpacks({}, tmp_path, app) == (["python"], "buildpacks:set")


def test_a_tenants_buildpacks_file_is_read_only_if_plain_and_small(tmp_path):
    (tmp_path / "elsewhere").write_text("/etc\n")
    (tmp_path / ".buildpacks").symlink_to(tmp_path / "elsewhere")
    assert requested_buildpacks({}, tmp_path, ()) == ([], "detection")  # not followed
    (tmp_path / ".buildpacks").unlink()
    os.mkfifo(tmp_path / ".buildpacks")  # would block a reader for ever
    assert requested_buildpacks({}, tmp_path, ()) == ([], "detection")
    (tmp_path / ".buildpacks").unlink()
    (tmp_path / ".buildpacks").write_text("python\n" + "#" * (2 * 1024 * 1024))
    with pytest.raises(BuildError, match=r"^\.buildpacks is larger than 1024 KB$") as err:
        requested_buildpacks({}, tmp_path, ())
    assert err.value.phase == "detect"


def test_bundled_order_puts_procfile_last_and_nodejs_before_static():
    assert BUNDLED_ORDER[-1] == "procfile"
    assert BUNDLED_ORDER.index("nodejs") < BUNDLED_ORDER.index("static")


def fake_runner(accepting: dict[int, str]):
    calls = []

    def run(command, extra_env, on_line):
        index = int(command[-2].split("/")[2])
        calls.append(index)
        if index in accepting:
            on_line(accepting[index] + "\n")
            return 0
        on_line("not mine\n")  # stderr is discarded in the real sandbox; ignored here too
        return 1

    return run, calls


def test_first_detected_stops_at_first_match():
    run, calls = fake_runner({1: "Node.js", 3: "Procfile"})
    assert first_detected(run, range(4)) == (1, "Node.js")
    assert calls == [0, 1]


def test_nothing_detected():
    run, _ = fake_runner({})
    assert first_detected(run, range(4)) is None
