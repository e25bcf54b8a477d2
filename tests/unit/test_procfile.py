import pytest

from pushd.errors import BuildError
from pushd.procfile import parse_procfile


def test_types_commands_comments_and_blank_lines():
    text = "# my app\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\r\nworker:python w.py\n" \
           "release-task_2:  ./migrate.sh  \n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python w.py",
        "release-task_2": "./migrate.sh",
    }


def test_command_may_contain_colons():
    assert parse_procfile("web: python3 -c 'print(1)' --url http://x:1/")["web"] == (
        "python3 -c 'print(1)' --url http://x:1/")


def test_later_duplicate_wins_like_heroku():
    assert parse_procfile("web: a\nweb: b\n") == {"web": "b"}


def test_empty_file():
    assert parse_procfile("") == {}
    assert parse_procfile("# nothing\n\n") == {}


@pytest.mark.parametrize("text,line", [
    ("web: ok\nthis is not a procfile line\n", 2),
    ("# c\n\nweb dyno: x\n", 3),
    ("web.1: x\n", 1),
    ("worker:\n", 1),
])
def test_malformed_line_names_its_number(text, line):
    with pytest.raises(BuildError) as err:
        parse_procfile(text)
    assert f"Procfile line {line}:" in str(err.value)
    assert err.value.phase == "release"
