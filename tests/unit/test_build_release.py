import pytest

from pushd.build.release import ReleaseInfo, parse_release, process_types
from pushd.errors import BuildError


def test_parse_release_yaml():
    info = parse_release("---\naddons:\n  - heroku-postgresql\ndefault_process_types:\n"
                         "  web: npm start\n  worker: node w.js\nconfig_vars:\n  A: b\n")
    assert info.default_process_types == {"web": "npm start", "worker": "node w.js"}
    assert info.addons == ["heroku-postgresql"]


@pytest.mark.parametrize("text", ["", "--- {}\n", "---\n", "---\ndefault_process_types:\n"])
def test_empty_release(text):
    assert parse_release(text) == ReleaseInfo()


@pytest.mark.parametrize("text", ["- a\n- b\n", "default_process_types: [1]\n",
                                  "default_process_types:\n  'bad type': x\n", "{{{"])
def test_bad_release_is_a_release_phase_error(text):
    with pytest.raises(BuildError) as err:
        parse_release(text)
    assert err.value.phase == "release"


def test_procfile_overrides_defaults(tmp_path):
    (tmp_path / "Procfile").write_text("web: gunicorn app\nworker: celery\n")
    lines = []
    types = process_types(tmp_path, ReleaseInfo({"web": "npm start", "console": "node"}),
                          lines.append)
    assert types == {"web": "gunicorn app", "console": "node", "worker": "celery"}
    assert lines == ["-----> Discovering process types\n",
                     "       Procfile declares types -> web, worker\n",
                     "       Default types for buildpack -> console\n"]


def test_defaults_without_procfile(tmp_path):
    lines = []
    assert process_types(tmp_path, ReleaseInfo({"web": "npm start"}), lines.append) == {
        "web": "npm start"}
    assert lines[-1] == "       Default types for buildpack -> web\n"


def test_a_release_phase_is_a_type_the_release_runs(tmp_path):
    (tmp_path / "Procfile").write_text("web: gunicorn app\nrelease: python manage.py migrate\n")
    lines = []
    assert process_types(tmp_path, ReleaseInfo(), lines.append)["release"] == (
        "python manage.py migrate")  # run by releasephase.py before the release's dynos
    assert not any("release phase" in line for line in lines)
