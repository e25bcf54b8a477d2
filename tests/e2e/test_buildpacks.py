"""The bundled buildpacks and custom ones, through a real `git push`."""

from __future__ import annotations

from .harness import FIXTURES, PushdUnderTest, fixture, push_ok, python_app


def test_python_app_with_a_pypi_dependency(pushd: PushdUnderTest):
    output = push_ok(pushd, "py-six", fixture("python-app"))
    assert "-----> Python app detected" in output
    assert pushd.http("py-six").body.startswith("python-app hello six=")


def test_node_app_with_an_npm_dependency(pushd: PushdUnderTest):
    output = push_ok(pushd, "node-ms", fixture("node-app"))
    assert "Node.js app detected" in output or "Nodejs app detected" in output \
        or "Node app detected" in output, output
    assert pushd.http("node-ms").body.strip() == "node-app hello ms=1m"


def test_static_site(pushd: PushdUnderTest):
    output = push_ok(pushd, "static-site", fixture("static-site"))
    assert "Static" in output
    assert "static-site on pushd" in pushd.http("static-site").body


def test_procfile_only_app(pushd: PushdUnderTest):
    output = push_ok(pushd, "procfile-only", fixture("procfile-app"))
    assert "Procfile" in output
    response = pushd.http("procfile-only", "/hello.txt")
    assert response.status == 200 and response.body.strip() != ""


def test_custom_buildpack_from_a_local_path_via_buildpack_url(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "custom-bp").returncode == 0
    second = FIXTURES / "buildpacks" / "second"
    assert pushd.ssh("config:set", "custom-bp", f"BUILDPACK_URL={second}",
                     "SECRET=hush").returncode == 0
    output = push_ok(pushd, "custom-bp", python_app("custom"))
    assert "Second buildpack compiling" in output
    seen = pushd.ssh("run", "custom-bp", "cat", "second.txt").stdout
    assert "FIRST_VAR=unset" in seen
    assert "SECRET_IN_ENV=unset" in seen and "SECRET_IN_ENV_DIR=hush" in seen
    assert "STACK=pushd-22" in seen and "HOME=/app" in seen


def test_two_buildpacks_from_dot_buildpacks_pass_export_on(pushd: PushdUnderTest):
    bps = FIXTURES / "buildpacks"
    files = python_app("chained", {".buildpacks": f"{bps / 'first'}\n{bps / 'second'}\n"})
    output = push_ok(pushd, "chained", files)
    assert output.index("First buildpack compiling") < output.index("Second buildpack compiling")
    seen = pushd.ssh("run", "chained", "cat", "second.txt", "first.txt").stdout
    assert "FIRST_VAR=from-first" in seen
    assert "first was here" in seen
    assert pushd.http("chained").body.startswith("chained")  # Procfile beats release's web


def test_buildpacks_commands(pushd: PushdUnderTest):
    assert pushd.ssh("apps:create", "bpcmd").returncode == 0
    assert pushd.ssh("buildpacks:set", "bpcmd", "python").returncode == 0
    assert pushd.ssh("buildpacks:add", "bpcmd", "nodejs").returncode == 0
    listing = pushd.ssh("buildpacks", "bpcmd").stdout
    assert "1. python" in listing and "2. nodejs" in listing
    bad = pushd.ssh("buildpacks:set", "bpcmd", "'not a buildpack;rm'")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) <= 2
    assert pushd.ssh("buildpacks:clear", "bpcmd").returncode == 0
    assert "no buildpack set" in pushd.ssh("buildpacks", "bpcmd").stdout
