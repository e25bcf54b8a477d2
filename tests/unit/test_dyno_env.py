"""What a dyno's environment holds, and who wins when config and platform disagree."""

from pathlib import Path

from pushd.dynospec import DYNO_PATH, dyno_env
from pushd.models import Release
from pushd.settings import Settings


def release(config: dict[str, str]) -> Release:
    return Release(1, 3, "s1", config, {"web": "x"}, "Deploy", "alice", 0.0, "pending",
                   "abc1234")


def test_platform_values_and_config():
    env = dyno_env(Settings(state_dir=Path("/x")), release({"A": "1", "DYNO": "evil"}),
                   "web.1", 20001)
    assert env["A"] == "1" and env["PATH"] == DYNO_PATH
    assert (env["DYNO"], env["PORT"], env["HOME"]) == ("web.1", "20001", "/app")
    assert env["SOURCE_VERSION"] == "abc1234"


def test_a_path_config_var_wins():
    env = dyno_env(Settings(state_dir=Path("/x")), release({"PATH": "/app/mine:/usr/bin"}),
                   "worker.1", None)
    assert env["PATH"] == "/app/mine:/usr/bin" and "PORT" not in env
