"""State left by older versions with open modes is closed at daemon start."""

import json
import os
import stat

from pushd import daemon
from pushd.platform import Platform
from pushd.settings import Settings


def test_old_slugs_repos_and_logs_become_private(tmp_path):
    platform = Platform(Settings(state_dir=tmp_path / "state"))
    platform.paths.ensure()
    app_dir = platform.paths.root / "apps" / "1"
    opened = [app_dir / "slugs" / "abc123", app_dir / "repo.git", app_dir / "logs"]
    for path in opened:
        path.mkdir(parents=True)
        path.chmod(0o755)
    daemon.tighten(platform)
    assert [stat.S_IMODE(p.stat().st_mode) for p in opened] == [0o700, 0o700, 0o700]


def test_adopted_dyno_folders_and_the_status_snapshot_become_private(tmp_path):
    platform = Platform(Settings(state_dir=tmp_path / "state"))
    platform.paths.ensure()
    dyno = platform.paths.dynos_dir / "1-web.1-v1-abcdef"
    (dyno / "app").mkdir(parents=True)
    dyno.chmod(0o711)
    (dyno / "app").chmod(0o755)
    (dyno / "spec.json").write_text(json.dumps({"spec": {"uid": 40001}}))
    status = platform.paths.dynos_dir / "status.json"
    status.write_text("{}")
    status.chmod(0o644)
    daemon.tighten(platform)
    if os.geteuid() == 0:
        assert (stat.S_IMODE(dyno.stat().st_mode), dyno.stat().st_gid) == (0o710, 40001)
    else:
        assert stat.S_IMODE(dyno.stat().st_mode) == 0o700
    assert stat.S_IMODE((dyno / "app").stat().st_mode) == 0o700
    assert stat.S_IMODE(status.stat().st_mode) == 0o600
