import pytest

from pushd.commands.ps import parse_scale
from pushd.commands.registry import parse_options, split_app
from pushd.errors import NotFound, UsageError
from pushd.logs import LogFilter, format_line


def test_app_positional_or_flag():
    assert split_app(["myapp", "A=1", "B=2"], raw=False) == ("myapp", ["A=1", "B=2"])
    assert split_app(["A=1", "-a", "myapp"], raw=False) == ("myapp", ["A=1"])
    assert split_app(["--app=myapp", "A=1"], raw=False) == ("myapp", ["A=1"])
    assert split_app([], raw=False) == (None, [])


def test_option_values_are_never_the_app():
    num = {"-n", "--num"}
    assert split_app(["-n", "5", "myapp"], raw=False, options=num) == ("myapp", ["-n", "5"])
    assert split_app(["--num", "5", "myapp", "x"], False, num) == ("myapp", ["--num", "5", "x"])
    assert split_app(["--num=5", "myapp"], False, num) == ("myapp", ["--num=5"])
    assert split_app(["-n", "5"], raw=False, options=num) == (None, ["-n", "5"])
    assert split_app(["-n", "5", "-a", "myapp"], False, num) == ("myapp", ["-n", "5"])
    assert split_app(["--confirm", "x", "myapp"], False, {"--confirm"}) == (
        "myapp", ["--confirm", "x"])


def test_raw_commands_keep_their_arguments():
    assert split_app(["myapp", "ls", "-a", "x"], raw=True) == ("myapp", ["ls", "-a", "x"])
    assert split_app(["-a", "myapp", "python", "-c", "1"], raw=True) == (
        "myapp", ["python", "-c", "1"])


def test_parse_options():
    values, rest = parse_options(["-n", "5", "--tail", "x"], {"-n": "num"}, {"--tail": "t"})
    assert values == {"num": "5", "t": True} and rest == ["x"]
    with pytest.raises(UsageError):
        parse_options(["--bogus"], {}, {})
    with pytest.raises(UsageError):
        parse_options(["-n"], {"-n": "num"}, {})


def test_parse_scale():
    known = {"web", "worker"}
    assert parse_scale(["web=3", "worker+1"], {"web": 1, "worker": 0}, known) == {
        "web": 3, "worker": 1}
    assert parse_scale(["web-1"], {"web": 2}, known) == {"web": 1}
    with pytest.raises(UsageError):
        parse_scale(["web-3"], {"web": 2}, known)
    with pytest.raises(NotFound):
        parse_scale(["clock=1"], {}, known)
    with pytest.raises(UsageError):
        parse_scale(["web=x"], {}, known)


def test_log_filter():
    app_line = format_line("app", "web.1", "hello")
    platform_line = format_line("pushd", "worker.2", "State changed from starting to up")
    assert app_line.endswith(" app[web.1]: hello\n")
    assert LogFilter(process_type="web")(app_line)
    assert not LogFilter(process_type="web")(platform_line)
    assert LogFilter(dyno="worker.2")(platform_line)
    assert LogFilter(source="pushd")(platform_line) and not LogFilter(source="pushd")(app_line)
