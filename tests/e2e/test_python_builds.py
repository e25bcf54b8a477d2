"""Python apps as a Heroku user pushes them: version files, the installer each lockfile asks
for, Django's collectstatic, and a monorepo buildpack ahead of python in `.buildpacks`."""

from __future__ import annotations

from .harness import FIXTURES, PushdUnderTest, fixture, push_ok, python_app


def test_uv_lock_with_django_runs_collectstatic(pushd: PushdUnderTest):
    output = push_ok(pushd, "python-uv-django", fixture("python-uv-django"))
    assert "remote: -----> Using Python 3.11.2 (from .python-version)" in output
    assert "remote: -----> Installing dependencies with uv (uv sync --locked)" in output
    assert "remote: -----> $ python manage.py collectstatic --noinput" in output
    assert "1 static file copied to '/app/staticfiles'" in output
    body = pushd.wait_for("python-uv-django", "uv-django").body
    assert body == "uv-django django=5.2.19 collected=True"  # the locked version, exactly


def test_poetry_lock_with_package_mode_false_then_a_pipfile_lock(pushd: PushdUnderTest):
    """One app, two histories (they share the uv the build cache keeps for both tools)."""
    output = push_ok(pushd, "python-locks", fixture("python-poetry"))
    assert "remote: -----> Using Python 3.11.2 (from runtime.txt)" in output
    assert "remote: -----> Installing dependencies with poetry (poetry sync --only main)" \
        in output
    assert pushd.wait_for("python-locks", "poetry").body == "poetry six=1.17.0 python=3.11.2"
    result = pushd.push(pushd.new_app_repo("python-locks", fixture("python-pipenv")), "--force")
    assert result.returncode == 0, result.stderr
    assert "remote:        Using uv 0.13.9 from the build cache" in result.stderr
    assert "remote: -----> Installing dependencies with pipenv (pipenv sync)" in result.stderr
    assert "the stack's default; pin one with .python-version" in result.stderr
    assert pushd.wait_for("python-locks", "pipenv").body == "pipenv six=1.17.0 python=3.11.2"


def test_monorepo_buildpack_then_python(pushd: PushdUnderTest):
    """python's bin/detect runs after the monorepo buildpack moved services/api to the root:
    run up front it would find no Python file there and refuse the app."""
    assert pushd.ssh("apps:create", "python-mono").returncode == 0
    assert pushd.ssh("config:set", "python-mono", "APP_BASE=services/api").returncode == 0
    files = {**fixture("monorepo"),
             ".buildpacks": f"{FIXTURES / 'buildpacks' / 'monorepo'}\npython\n"}
    output = push_ok(pushd, "python-mono", files)
    assert output.index("Monorepo app detected") < output.index("moving services/api") \
        < output.index("Python app detected") < output.index("No requirements to install")
    assert pushd.wait_for("python-mono", "monorepo-api").body == \
        "monorepo-api python=3.11.2 base=services/api"


def test_a_python_version_the_stack_lacks_fails_in_one_line(pushd: PushdUnderTest):
    repo = pushd.new_app_repo("python-missing", python_app("x", {".python-version": "3.99\n"}))
    result = pushd.push(repo)
    assert result.returncode != 0
    said = [line.rstrip() for line in result.stderr.splitlines() if "!     " in line]
    assert said[0] == "remote:  !     Python 3.99 (from .python-version) is not available on " \
        "this stack; available: 3.11.2"
    assert said[1:] == ["remote:  !     Push rejected, failed to compile Python app."]
    assert "[remote rejected] main -> main" in result.stderr
