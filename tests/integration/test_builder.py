"""The builder end to end on real parts: bare repos with real commits, bubblewrap as the app
uid, real pip and npm against their registries. Needs root (setpriv + bwrap)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pushd.build import BuildpackBuilder, default_bundled_dir
from pushd.errors import BuildError
from pushd.models import App
from pushd.paths import Paths
from pushd.settings import app_uid, load
from tests.repos import commit_and_push

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
APPS = FIXTURES / "apps"
BUILDPACKS = FIXTURES / "buildpacks"

APP_ID = 917  # its uid (uid_base + id) is used by nothing else on the test machine


@pytest.fixture
def env():
    # not pytest's tmp_path: its parents are 0700 and the app uid must traverse to its binds
    root = Path(tempfile.mkdtemp(prefix="pushd-build-test-", dir="/tmp"))
    os.chmod(root, 0o711)
    settings = load({"state_dir": str(root / "state")}, env={})
    paths = Paths(settings.state_dir)
    paths.ensure()
    yield Env(root, settings, paths)
    shutil.rmtree(root, ignore_errors=True)


@dataclasses.dataclass
class Env:
    root: Path
    settings: object
    paths: Paths
    app: App = App(id=APP_ID, name="demo", owner="alice", created_at=0.0)

    def push(self, source: Path | None = None, files: dict[str, str] | None = None) -> str:
        """Commit `source`'s files (plus `files`) and push to the app's bare repo; the sha."""
        return commit_and_push(self.paths.repo(self.app.id), self.root, source, files)

    def build(self, sha: str, config: dict[str, str] | None = None, settings=None,
              app: App | None = None, admin: bool = True):
        lines: list[str] = []
        builder = BuildpackBuilder(settings or self.settings, self.paths,
                                   default_bundled_dir())
        slug = builder.build(app or self.app, sha, config or {}, lines.append, admin=admin)
        return slug, lines

    def fail(self, sha: str, config: dict[str, str] | None = None, settings=None,
             admin: bool = True):
        lines: list[str] = []
        builder = BuildpackBuilder(settings or self.settings, self.paths,
                                   default_bundled_dir())
        with pytest.raises(BuildError) as err:
            builder.build(self.app, sha, config or {}, lines.append, admin=admin)
        return err.value, lines

    def in_cache(self, rel: str) -> bool:
        """Whether the app's build cache (an ext4 image, mounted only during builds) has rel."""
        image = self.paths.app_dir(self.app.id) / "cache.img"
        mnt = Path(tempfile.mkdtemp(dir=self.root))
        subprocess.run(["mount", "-o", "loop,ro", str(image), str(mnt)], check=True)
        try:
            return (mnt / rel).exists()
        finally:
            subprocess.run(["umount", str(mnt)], check=True)

    def leftovers(self) -> list[str]:
        found = []
        for folder in (self.paths.builds(self.app.id), self.paths.slugs(self.app.id)):
            if folder.exists():
                found += [str(p) for p in folder.iterdir()]
        return found


def in_slug(slug, argv: list[str]) -> str:
    """Run argv the way a dyno would see the slug: as the app uid, .profile.d sourced."""
    script = 'for f in /app/.profile.d/*.sh; do . "$f"; done; exec "$@"'
    from pushd.runtime.bwrap import Bind, bwrap_argv
    command = bwrap_argv(app_uid(load({}, env={}), APP_ID), [Bind(slug.dir, "/app")],
                         {"PATH": "/usr/bin:/bin", "HOME": "/app"},
                         ["bash", "-c", script, "dyno", *argv])
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_python_app_with_a_pypi_dependency(env):
    sha = env.push(APPS / "python-app")
    slug, lines = env.build(sha, {"GREETING": "hi"})
    assert "-----> Python app detected\n" in lines
    assert "       Procfile declares types -> web\n" in lines
    assert slug.buildpack == "Python" and slug.commit == sha
    assert slug.process_types == {"web": "python app.py"}
    assert in_slug(slug, ["python", "-c", "import six, sys; print(six.__version__, "
                          "sys.prefix)"]).split() == ["1.17.0", "/app/.venv"]
    assert Path(slug.path).is_file() and Path(slug.path).stat().st_size == slug.size
    assert lines[-1].startswith("-----> Compiled slug size: ")
    assert env.paths.builds(APP_ID).exists() and not list(env.paths.builds(APP_ID).iterdir())
    assert os.stat(slug.dir).st_uid == app_uid(env.settings, APP_ID)


def test_python_nodeps_is_fast_and_skips_pip(env):
    sha = env.push(APPS / "python-nodeps")
    slug, lines = env.build(sha)  # its speed is scripts/bench's to measure, not a test's
    assert "       No requirements to install\n" in lines
    assert not (Path(slug.dir) / ".venv" / "bin" / "pip").exists()
    assert "python3.11" in in_slug(slug, ["sh", "-c", "readlink -f $(command -v python3)"])
    assert in_slug(slug, ["sh", "-c", "command -v python3"]).strip() == "/app/.venv/bin/python3"


def test_an_unchanged_requirements_txt_reuses_the_cached_virtualenv(env):
    sha = env.push(APPS / "python-app")
    _, first = env.build(sha)
    assert "       No cached virtualenv for this requirements.txt (first build with this " \
        "cache)\n" in first
    assert env.in_cache("python/venv/.pushd-cache-key")
    slug, second = env.build(env.push(APPS / "python-app", {"README": "again"}))
    assert "-----> Reusing the virtualenv from the build cache (requirements.txt and Python " \
        "unchanged)\n" in second
    assert not any("Installing dependencies" in line for line in second)
    assert in_slug(slug, ["python", "-c", "import six; print(six.__version__)"]).strip() \
        == "1.17.0"
    _, third = env.build(env.push(APPS / "python-app", {"requirements.txt": "six==1.16.0\n"}))
    assert "       No cached virtualenv for this requirements.txt (changed)\n" in third


def test_node_app_with_an_npm_dependency(env):
    slug, lines = env.build(env.push(APPS / "node-app"))
    assert "-----> Node.js app detected\n" in lines
    assert slug.process_types == {"web": "npm start"}
    assert "       Default types for buildpack -> web\n" in lines
    assert in_slug(slug, ["node", "-e", "console.log(require('ms')(60000))"]).strip() == "1m"
    assert env.in_cache("npm")


def test_node_wins_over_procfile_and_static(env):
    slug, lines = env.build(env.push(APPS / "node-app", {
        "Procfile": "web: node server.js\n", "public/index.html": "<p>x</p>\n"}))
    assert slug.buildpack == "Node.js"
    assert slug.process_types == {"web": "node server.js"}


def test_static_site(env):
    slug, lines = env.build(env.push(APPS / "static-site"))
    assert slug.buildpack == "Static"
    assert slug.process_types["web"] == "/app/.static/start"  # nginx, as the app's user
    assert (Path(slug.dir) / "index.html").is_file()
    assert "root /app;" in (Path(slug.dir) / ".static" / "server.conf").read_text()


def test_procfile_only_app(env):
    slug, lines = env.build(env.push(APPS / "procfile-app"))
    assert "-----> Procfile app detected\n" in lines
    assert slug.process_types["web"].startswith("python3 -c ")


def test_nothing_detected(env):
    err, lines = env.fail(env.push(files={"README.md": "hello\n"}))
    assert err.phase == "detect"
    assert " !     No default language could be detected for this app.\n" in lines
    assert env.leftovers() == []


def test_custom_buildpack_from_buildpack_url(env):
    sha = env.push(APPS / "procfile-app")
    slug, lines = env.build(sha, {"BUILDPACK_URL": str(BUILDPACKS / "second"),
                                  "SECRET": "s3cret"})
    assert "-----> Second app detected\n" in lines
    seen = dict(line.split("=", 1) for line in
                (Path(slug.dir) / "second.txt").read_text().splitlines())
    assert seen["FIRST_VAR"] == "unset"
    assert seen["STACK"] == "pushd-22" and seen["SOURCE_VERSION"] == sha
    assert seen["HOME"] == "/app" and seen["PWD"] == "/app"
    assert seen["ARGS"] == "/app /cache /env"
    assert seen["UID"] == str(app_uid(env.settings, APP_ID))
    assert seen["SECRET_IN_ENV"] == "unset"  # config vars only through ENV_DIR
    assert seen["SECRET_IN_ENV_DIR"] == "s3cret"
    assert env.in_cache("second-cache.txt")
    # Procfile web overrides the buildpack's default web
    assert slug.process_types["web"].startswith("python3 -c ")


def test_buildpacks_file_chains_exports_and_last_release_counts(env):
    sha = env.push(APPS / "static-site", {
        ".buildpacks": f"# two of them\n{BUILDPACKS / 'first'}\n{BUILDPACKS / 'second'}\n"})
    slug, lines = env.build(sha)
    assert lines.index("-----> First app detected\n") < lines.index(
        "-----> Second app detected\n")
    assert "       FIRST_VAR=from-first\n" in lines
    assert (Path(slug.dir) / "first.txt").is_file()
    assert slug.buildpack == "Second"
    assert slug.process_types == {"web": "echo second-web"}
    # the fixtures themselves are untouched: buildpacks ran on per-build copies
    assert not (BUILDPACKS / "first" / "export").exists()


def test_git_buildpack_is_fetched_again_on_every_build(env):
    source = env.root / "bp-src"
    shutil.copytree(BUILDPACKS / "second", source)
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bp"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                           text=True).stdout.strip()
    os.chmod(env.root / "bp-src", 0o755)
    url = f"file://{source}#main"
    slug, lines = env.build(env.push(APPS / "procfile-app"), {"BUILDPACK_URL": url})
    assert f"-----> Fetching buildpack {url}\n" in lines
    assert slug.buildpack == "Second"
    # a new commit on the buildpack's branch is used by the next build, as on Heroku
    (source / "bin" / "detect").write_text("#!/usr/bin/env bash\necho Second-v2\n")
    subprocess.run([*git, "commit", "-q", "-am", "v2"], check=True)
    slug, again = env.build(env.push(APPS / "procfile-app"), {"BUILDPACK_URL": url})
    assert f"-----> Fetching buildpack {url}\n" in again
    assert slug.buildpack == "Second-v2"
    assert len(list(env.paths.buildpack_cache.glob("*.git"))) == 1  # one cache per URL
    # a pinned commit already in the cache needs no fetch (the source may even be gone)
    shutil.move(source, env.root / "bp-gone")
    pinned = f"file://{source}#{first}"
    slug, lines = env.build(env.push(APPS / "procfile-app"), {"BUILDPACK_URL": pinned})
    assert not [line for line in lines if line.startswith("-----> Fetching buildpack")]
    assert slug.buildpack == "Second"
    shutil.move(env.root / "bp-gone", source)
    # a ref that does not exist is a one-line error
    err, lines = env.fail(env.push(APPS / "procfile-app"),
                          {"BUILDPACK_URL": f"file://{source}#nope"})
    assert str(err) == (f"Failed to fetch buildpack file://{source}#nope: "
                        "fatal: couldn't find remote ref nope")
    assert err.phase == "detect" and f" !     {err}\n" in lines
    assert list(env.paths.builds(APP_ID).iterdir()) == []


def test_failing_compile_leaves_nothing(env):
    good, _ = env.build(env.push(APPS / "procfile-app"))
    sha = env.push(APPS / "procfile-app", {".buildpacks": f"{BUILDPACKS / 'failing'}\n"})
    err, lines = env.fail(sha)
    assert err.phase == "compile"
    assert " !     Something went wrong on purpose\n" in lines
    assert lines[-1] == " !     Push rejected, failed to compile Failing app.\n"
    assert sorted(os.listdir(env.paths.slugs(APP_ID))) == sorted([good.id, good.id + ".tgz"])
    assert list(env.paths.builds(APP_ID).iterdir()) == []


def test_failing_pip_install_is_a_compile_error(env):
    sha = env.push(APPS / "python-nodeps",
                    {"requirements.txt": "this-package-does-not-exist-pushd==0.0.1\n"})
    err, lines = env.fail(sha)
    assert lines[-1] == " !     Push rejected, failed to compile Python app.\n"
    assert env.leftovers() == []


def test_build_timeout_kills_the_build(env):
    sha = env.push(APPS / "procfile-app", {"slow/bin/detect": "#!/bin/sh\necho Slow\n",
                                           "slow/bin/compile": "#!/bin/sh\nsleep 60 &\n"
                                           "echo sleeping\nsleep 60\n"})
    bp = env.root / "slow-bp"
    shutil.copytree(BUILDPACKS / "second", bp)
    (bp / "bin" / "compile").write_text("#!/bin/sh\nsleep 60 &\necho sleeping\nsleep 60\n")
    os.chmod(env.root, 0o711)
    settings = dataclasses.replace(env.settings, build_timeout=2)
    start = time.monotonic()
    err, lines = env.fail(sha, {"BUILDPACK_URL": str(bp)}, settings=settings)
    assert time.monotonic() - start < 45  # it did not wait for the 60 s sleeps
    assert err.phase == "compile"
    assert "       sleeping\n" not in lines and "sleeping\n" in lines
    assert lines[-1] == " !     Build timed out after 2 seconds and was stopped.\n"
    assert env.leftovers() == []
    uid = str(app_uid(env.settings, APP_ID))
    ps = subprocess.run(["ps", "-o", "stat=", "-u", uid], capture_output=True, text=True)
    # nothing of the build survives (zombies only wait for this container's init to reap)
    assert [state for state in ps.stdout.split() if not state.startswith("Z")] == []


def test_slugignore_applies_before_buildpacks(env):
    sha = env.push(APPS / "procfile-app", {".slugignore": "*.md\n/docs\n",
                                           "README.md": "x", "docs/a.txt": "x",
                                           "src/docs/b.txt": "kept"})
    slug, _ = env.build(sha, {"BUILDPACK_URL": str(BUILDPACKS / "second")})
    root = Path(slug.dir)
    assert not (root / "README.md").exists() and not (root / "docs").exists()
    assert (root / "src/docs/b.txt").is_file()


def test_slug_too_large_is_rejected(env):
    sha = env.push(APPS / "procfile-app", {"blob.txt": os.urandom(200_000).hex()})
    settings = dataclasses.replace(env.settings, slug_limit_mb=0)
    err, lines = env.fail(sha, settings=settings)
    assert err.phase == "slug"
    assert any("is too large (max is 0M)." in line for line in lines)
    assert env.leftovers() == []


def test_malformed_procfile_is_rejected_with_line_number(env):
    err, lines = env.fail(env.push(APPS / "static-site", {"Procfile": "web: ok\nnope\n"}))
    assert err.phase == "release"
    assert any("Procfile line 2" in line for line in lines)
    assert env.leftovers() == []


def test_stale_build_dirs_are_removed(env):
    stale = env.paths.builds(APP_ID) / "build-crashed"
    (stale / "app").mkdir(parents=True)
    env.paths.slugs(APP_ID).mkdir(parents=True)
    (env.paths.slugs(APP_ID) / ".old.tgz.partial").write_text("x")
    slug, _ = env.build(env.push(APPS / "procfile-app"))
    assert list(env.paths.builds(APP_ID).iterdir()) == []
    assert sorted(os.listdir(env.paths.slugs(APP_ID))) == sorted([slug.id, slug.id + ".tgz"])


def test_a_host_folder_is_read_as_the_app_user_in_the_sandbox(env):
    sha = env.push(APPS / "procfile-app")
    empty = env.root / "no-compile"
    empty.mkdir(mode=0o755)
    err, lines = env.fail(sha, {"BUILDPACK_URL": str(empty)})
    assert str(err) == (f"Invalid buildpack {str(empty)!r}: no bin/compile there that the "
                        "app's user can read")
    private = env.root / "private-bp"
    shutil.copytree(BUILDPACKS / "second", private)
    os.chmod(private, 0o700)  # root's alone: the app's user may not read it
    err, lines = env.fail(sha, {"BUILDPACK_URL": str(private)})
    assert err.phase == "detect" and str(err).startswith(f"Invalid buildpack {str(private)!r}")
    assert "Second app detected\n" not in "".join(lines)
    assert env.leftovers() == []


def test_a_user_key_is_refused_a_host_folder_unless_the_operator_allows_it(env):
    sha = env.push(APPS / "procfile-app")
    second = str(BUILDPACKS / "second")
    err, lines = env.fail(sha, {"BUILDPACK_URL": second}, admin=False)
    assert lines[-2:] == [
        f" !     Buildpack {second} refused: a path on the platform's host is for admin keys "
        "and the operator's allowed_buildpack_paths only\n", " !     Push failed\n"]
    allowed = dataclasses.replace(env.settings, allowed_buildpack_paths=(str(BUILDPACKS),))
    slug, lines = env.build(sha, {"BUILDPACK_URL": second}, settings=allowed, admin=False)
    assert "-----> Second app detected\n" in lines
