"""Where everything lives in the state dir. Files are keyed by the app's immutable id, so a
rename touches no file and a destroyed app leaves no name to collide with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "pushd.db"

    @property
    def pid_file(self) -> Path:
        return self.root / "pushd.pid"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def daemon_log(self) -> Path:
        return self.root / "pushd.log"

    @property
    def audit_log(self) -> Path:
        """Every admin action, one JSON line each (governance/audit.py)."""
        return self.root / "audit.log"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    @property
    def dynos_dir(self) -> Path:
        """Runtime state of every dyno (one folder each), read again on adoption."""
        return self.root / "dynos"

    @property
    def buildpack_cache(self) -> Path:
        return self.root / "buildpacks"

    def app_dir(self, app_id: int) -> Path:
        return self.root / "apps" / str(app_id)

    def repo(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "repo.git"

    def slugs(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "slugs"

    def cache(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "cache"

    def builds(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "builds"

    def log_file(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "logs" / "app.log"

    def deploy_lock(self, app_id: int) -> Path:
        return self.app_dir(app_id) / "deploy.lock"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        for sub in (self.root / "apps", self.dynos_dir, self.nginx_dir, self.buildpack_cache):
            sub.mkdir(exist_ok=True)
        for sub in (self.root / "apps", self.dynos_dir):  # app uids traverse, nobody lists
            sub.chmod(0o711)
