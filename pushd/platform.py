"""Wiring: the parts of one platform, built once from settings (no module-level singletons)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import Paths
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .build.base import Builder
    from .governance.policyfile import PolicyFile
    from .router.base import Router
    from .runtime.base import Runtime

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUNDLED_BUILDPACKS = PROJECT_DIR / "buildpacks"
TEMPLATES = PROJECT_DIR / "templates"


def load_runtimes() -> None:
    """Import every runtime module: each registers itself (`@register`) in runtime/base.py."""
    from .runtime import sandbox  # noqa: F401  (the embedded default)


@dataclass
class Platform:
    settings: Settings
    supervisor: Any = field(default=None)  # set inside the daemon only

    def __post_init__(self) -> None:
        """An unknown `runtime` ends every command (and the daemon's start) with one line."""
        from .runtime.base import check_runtime

        load_runtimes()
        check_runtime(self.settings.runtime)

    @cached_property
    def paths(self) -> Paths:
        paths = Paths(self.settings.state_dir)
        paths.ensure()
        return paths

    @cached_property
    def store(self) -> Store:
        return Store(self.paths.db)

    @cached_property
    def builder(self) -> Builder:
        from .build.builder import BuildpackBuilder
        from .build.dockerfile import (
            ChoosingBuilder,
            DockerfileBuilder,
            docker_client,
            repo_files,
        )

        files = repo_files(self.paths.repo)
        return ChoosingBuilder(
            BuildpackBuilder(self.settings, self.paths, BUNDLED_BUILDPACKS),
            DockerfileBuilder(self.settings, self.paths, docker_client, files,
                              self.store.next_version),
            self.settings.runtime, files)

    @cached_property
    def runtime(self) -> Runtime:
        from .runtime.base import make_runtime

        return make_runtime(self.settings, self.paths)

    @cached_property
    def router(self) -> Router:
        from .router.nginx import NginxRouter

        return NginxRouter(self.settings, self.paths, TEMPLATES)

    @cached_property
    def policies(self) -> PolicyFile:
        """policies.yaml, read again whenever it changes."""
        from .governance.enforce import policy_file

        return policy_file(self.paths)

    def daemon_pid(self) -> int | None:
        """The running daemon's pid, or None."""
        from .procs import live_stat

        try:
            pid = int(self.paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        # a killed daemon whose parent never reaps it stays a zombie: that is not running
        return pid if live_stat(pid) else None

    def notify(self) -> None:
        """Tell the supervisor the desired state changed (in-process, or via SIGUSR1)."""
        if self.supervisor is not None:
            self.supervisor.wake()
            return
        pid = self.daemon_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass

    @property
    def running(self) -> bool:
        return self.supervisor is not None or self.daemon_pid() is not None

    def app_url(self, app_name: str) -> str:
        port = self.settings.http_port
        suffix = "" if port == 80 else f":{port}"
        return f"http://{app_name}.{self.settings.domain}{suffix}/"
