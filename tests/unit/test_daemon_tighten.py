"""State left by older versions with open modes is closed at daemon start."""

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
