"""Wiring: the parts of one platform, built once from settings (no module-level singletons)."""

from __future__ import annotations

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
    from .runtime.support import RuntimeSupport
    from .tls.files import CertFiles
    from .tls.sites import TLSView

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUNDLED_BUILDPACKS = PROJECT_DIR / "buildpacks"
TEMPLATES = PROJECT_DIR / "templates"


def load_runtimes() -> None:
    """Import every runtime module: each registers itself (`@register`) in runtime/base.py."""
    from .runtime import sandbox  # noqa: F401  (the embedded default)
    from .runtime.docker import runtime as docker_runtime  # noqa: F401  (containers)


@dataclass
class Platform:
    settings: Settings
    supervisor: Any = field(default=None)  # set inside the daemon only
    renewer: Any = field(default=None)  # the ACME renewer (tls/renewal.py), in the daemon

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
            BuildpackBuilder(self.settings, self.paths, BUNDLED_BUILDPACKS,
                             containers=self.support.build_steps()),
            DockerfileBuilder(self.settings, self.paths, docker_client, files,
                              self.store.next_version),
            self.support.runs_images, files)

    @cached_property
    def support(self) -> RuntimeSupport:
        """The runtime's part in builds, release images and cleanup (runtime/support.py)."""
        from .runtime.base import make_support

        return make_support(self)

    @cached_property
    def runtime(self) -> Runtime:
        from .runtime.base import make_runtime

        return make_runtime(self.settings, self.paths)

    @cached_property
    def router(self) -> Router:
        from .router.nginx import NginxRouter

        def platform_cert() -> tuple[str, str]:
            cert = self.certs.platform_cert(self.settings.domain)
            return str(cert.cert_path), str(cert.key_path)

        return NginxRouter(self.settings, self.paths, TEMPLATES, platform_cert=platform_cert)

    @cached_property
    def certs(self) -> CertFiles:
        """Certificates and keys (tls/files.py), root's alone."""
        from .tls.files import CertFiles

        return CertFiles(self.paths.root / "certs")

    @cached_property
    def tls(self) -> TLSView:
        """Each route's certificates and HTTPS features, for the supervisor."""
        from .tls.sites import TLSView

        return TLSView(self.certs, bool(self.settings.https_port), self.settings.domain)

    @cached_property
    def policies(self) -> PolicyFile:
        """policies.yaml, read again whenever it changes."""
        from .governance.enforce import policy_file

        return policy_file(self.paths)

    def daemon_pid(self) -> int | None:
        """The running daemon's pid, or None: the pid file's process only if it is still the
        one that wrote it (start time, and a `pushd ... up` command line), never a process
        that got its pid after a reboot; a zombie (killed, never reaped) is not running."""
        from .procs import read_pid_file

        return read_pid_file(self.paths.pid_file, is_daemon_argv)

    def notify(self) -> None:
        """Tell the supervisor the desired state changed. Commands run in the daemon (over SSH
        or the local CLI's control socket), where it is; a platform without one (a unit
        test's) has nothing to tell."""
        if self.supervisor is not None:
            self.supervisor.wake()

    @property
    def running(self) -> bool:
        """Whether a supervisor rolls releases out here (the daemon's platform)."""
        return self.supervisor is not None

    def the_supervisor(self) -> Any:
        """The daemon's supervisor; PushdError on a platform without one."""
        if self.supervisor is None:
            from .errors import PushdError

            raise PushdError("pushd is not running: start it with `pushd up`")
        return self.supervisor

    def app_url(self, app_name: str) -> str:
        port = self.settings.http_port
        suffix = "" if port == 80 else f":{port}"
        return f"http://{app_name}.{self.settings.domain}{suffix}/"


def is_daemon_argv(argv: list[str]) -> bool:
    """`pushd [...] up [...]` run as a console script or `python -m pushd.cli`."""
    named = any(Path(arg).name == "pushd" or arg == "pushd.cli" for arg in argv[:3])
    return named and "up" in argv
