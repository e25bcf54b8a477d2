"""The Python buildpack's decisions (buildpacks/python/lib/compile.py), without a build:
which version and which file chose it, which installer, when the cached virtualenv counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "buildpacks" / "python" / "lib" / "compile.py"
spec = importlib.util.spec_from_file_location("python_buildpack_compile", SOURCE)
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)

STACK = {"3.11": ("/usr/bin/python3.11", "3.11.2")}


def app(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_python_version_wins_over_runtime_txt(tmp_path):
    build = app(tmp_path, {".python-version": "# pinned\n3.11\n",
                           "runtime.txt": "python-3.12.1\n"})
    assert pb.requested_version(build) == ("3.11", ".python-version")
    (build / ".python-version").unlink()
    assert pb.requested_version(build) == ("3.12.1", "runtime.txt")
    (build / "runtime.txt").unlink()
    assert pb.requested_version(build) is None


@pytest.mark.parametrize(("name", "text"), [(".python-version", "pypy3.10\n"),
                                            (".python-version", "3.11; rm -rf /\n"),
                                            ("runtime.txt", "3.11.2\n")])
def test_a_malformed_version_file_fails_in_one_line(tmp_path, name, text):
    with pytest.raises(pb.Failed) as err:
        pb.requested_version(app(tmp_path, {name: text}))
    assert str(err.value).startswith("Invalid Python version ") and name in str(err.value)
    assert "\n" not in str(err.value)


def test_a_version_the_stack_lacks_names_what_it_has(tmp_path, monkeypatch):
    monkeypatch.setattr(pb, "stack_pythons", lambda: STACK)
    with pytest.raises(pb.Failed) as err:
        pb.choose_python(app(tmp_path, {"runtime.txt": "python-3.12.4"}))
    assert str(err.value) == ("Python 3.12.4 (from runtime.txt) is not available on this "
                              "stack; available: 3.11.2")


def test_a_patch_difference_is_used_and_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pb, "stack_pythons", lambda: STACK)
    chosen = pb.choose_python(app(tmp_path, {".python-version": "3.11.9"}))
    assert chosen == ("/usr/bin/python3.11", "3.11.2")
    assert capsys.readouterr().out.splitlines() == [
        "-----> Using Python 3.11.2 (from .python-version)",
        "       .python-version asks for 3.11.9; this stack's Python 3.11 is 3.11.2"]


@pytest.mark.parametrize(("files", "installer"), [
    (["uv.lock", "poetry.lock", "requirements.txt", "pyproject.toml"], "uv"),
    (["poetry.lock", "Pipfile.lock", "requirements.txt"], "poetry"),
    (["Pipfile", "Pipfile.lock", "requirements.txt"], "pipenv"),
    (["requirements.txt", "pyproject.toml"], "pip"),
    (["pyproject.toml"], "pip-project"),
    (["setup.py"], "pip-project")])
def test_the_installer_follows_the_lockfile(tmp_path, files, installer):
    assert pb.choose_installer(app(tmp_path, dict.fromkeys(files, "")))[0] == installer


def test_a_pipfile_without_its_lock_fails(tmp_path):
    with pytest.raises(pb.Failed, match="Pipfile found without Pipfile.lock"):
        pb.choose_installer(app(tmp_path, {"Pipfile": ""}))


def test_the_cache_key_follows_the_lock_and_the_python_only(tmp_path):
    build = app(tmp_path, {"uv.lock": "a", "pyproject.toml": "p", "app.py": "x"})
    files = ["uv.lock", "pyproject.toml"]
    key = pb.cache_key(build, "uv", files, "3.11.2")
    (build / "app.py").write_text("changed code")
    assert pb.cache_key(build, "uv", files, "3.11.2") == key
    assert pb.cache_key(build, "uv", files, "3.11.3") != key
    (build / "uv.lock").write_text("b")
    assert pb.cache_key(build, "uv", files, "3.11.2") != key


def test_pip_still_runs_for_requirements_beyond_the_file(tmp_path):
    build = app(tmp_path, {"requirements.txt": "flask==3.1.3\n"})
    assert not pb.always_runs(build, "pip")
    (build / "requirements.txt").write_text("flask==3.1.3\n-e .\n")
    assert pb.always_runs(build, "pip") and pb.always_runs(build, "pip-project")
