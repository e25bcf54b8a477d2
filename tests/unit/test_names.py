import pytest

from pushd import names
from pushd.errors import InvalidName


@pytest.mark.parametrize("good", ["a", "myapp", "my-app-2", "a" * 30])
def test_valid_app_names(good):
    assert names.app_name(good) == good


@pytest.mark.parametrize("bad", ["", "../x", "MyApp", "a" * 31, "a" * 200, "2app", "-app",
                                 "app;rm -rf /", "app$(id)", "app\x00", "app name", "app/x",
                                 "app.git", "ápp"])
def test_invalid_app_names_are_refused_with_one_line(bad):
    with pytest.raises(InvalidName) as err:
        names.app_name(bad)
    message = str(err.value)
    assert "Invalid app name" in message
    assert "\n" not in message and "\x00" not in message


@pytest.mark.parametrize("good", ["www.example.com", "a.b", "*.example.org", "x-y.example.io"])
def test_valid_domains(good):
    assert names.domain(good) == good


@pytest.mark.parametrize("bad", ["", "localhost", "-a.com", "a..b", "bad_name.com",
                                 "a.com;", "a.com\n", "exa mple.com", "a" * 64 + ".com",
                                 "x.com/evil", "{x}.com", "127.0.0.1", "10.0.0.8"])
def test_invalid_domains(bad):
    with pytest.raises(InvalidName):
        names.domain(bad)


def test_release_versions():
    assert names.release_version("v3") == 3
    assert names.release_version("12") == 12
    for bad in ("v0", "x", "", "v-1", "v1.5"):
        with pytest.raises(InvalidName):
            names.release_version(bad)


def test_config_keys():
    assert names.config_key("DATABASE_URL") == "DATABASE_URL"
    for bad in ("1A", "A-B", "", "A B", "A=B"):
        with pytest.raises(InvalidName):
            names.config_key(bad)


@pytest.mark.parametrize("first, second, overlap", [
    ("www.example.test", "www.example.test", True),
    ("www.example.test", "api.example.test", False),
    ("*.example.test", "www.example.test", True),
    ("*.example.test", "a.b.example.test", True),  # nginx wildcards match any depth
    ("*.example.test", "example.test", False),
    ("*.example.test", "*.example.test", True),
    ("*.example.test", "*.a.example.test", True),
    ("*.example.test", "wwwexample.test", False),
    ("*.example.test", "*.other.test", False),
    ("*.a.example.test", "b.example.test", False),
])
def test_domains_overlap_both_ways(first, second, overlap):
    assert names.domains_overlap(first, second) is overlap
    assert names.domains_overlap(second, first) is overlap
