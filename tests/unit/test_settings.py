from pathlib import Path

import pytest

from pushd.errors import UsageError
from pushd.settings import APP_UID_SPAN, Settings, app_uid, load


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path):
    (tmp_path / "pushd.yaml").write_text("ssh_port: 3000\nhttp_port: 3001\ndomain: file.test\n")
    env = {"PUSHD_HOME": str(tmp_path), "PUSHD_HTTP_PORT": "4001", "PUSHD_DOMAIN": "env.test"}
    settings = load({"domain": "flag.test", "ssh_port": None}, env=env)
    assert settings.state_dir == tmp_path
    assert settings.ssh_port == 3000  # file
    assert settings.http_port == 4001  # env beats file
    assert settings.domain == "flag.test"  # flag beats env
    assert settings.runtime == "sandbox"  # default


def test_bad_settings_file_is_a_clear_error(tmp_path: Path):
    (tmp_path / "pushd.yaml").write_text("no_such_setting: 1\n")
    with pytest.raises(UsageError, match="unknown setting 'no_such_setting'"):
        load({"state_dir": str(tmp_path)}, env={})
    (tmp_path / "pushd.yaml").write_text("ssh_port: lots\n")
    with pytest.raises(UsageError, match="ssh_port"):
        load({"state_dir": str(tmp_path)}, env={})


def test_memory_per_process_type(tmp_path: Path):
    (tmp_path / "pushd.yaml").write_text("memory_mb: 256\nmemory_by_type: {worker: 1024}\n")
    settings = load({"state_dir": str(tmp_path)}, env={})
    assert settings.memory_for("web") == 256
    assert settings.memory_for("worker") == 1024


@pytest.mark.parametrize("text", ["uid_base: 50000\n", "uid_base: 0\n",
                                  "port_range: 80-90\n", "dyno_port: 80\n"])
def test_ranges_that_would_break_isolation_are_refused(tmp_path, text):
    (tmp_path / "pushd.yaml").write_text(text)
    with pytest.raises(UsageError):
        load({"state_dir": str(tmp_path)}, env={})


def test_app_uids_stay_in_their_span():
    settings = Settings(state_dir=Path("/x"))
    assert app_uid(settings, 1) == 40001
    with pytest.raises(UsageError):
        app_uid(settings, APP_UID_SPAN)


def test_dyno_port_is_one_setting_for_every_web_dyno(tmp_path):
    (tmp_path / "pushd.yaml").write_text("dyno_port: 8000\n")
    assert load({"state_dir": str(tmp_path)}, env={}).dyno_port == 8000
