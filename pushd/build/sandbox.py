"""The build sandbox: what a buildpack sees while it runs, and the argv that puts it there.

The app is compiled where it will run, at /app, as the app's own uid, with the per-app cache
at /cache, config vars as files at /env (read-only) and writable buildpack copies at
/buildpacks/N. The network is the build's own (`network.py`): outbound access only, so pip and
npm reach their registries and nothing of the host's loopback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..runtime import seccomp
from ..runtime.bwrap import Bind, bwrap_argv

APP_DIR = "/app"
CACHE_DIR = "/cache"
ENV_DIR = "/env"
BUILDPACKS_DIR = "/buildpacks"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host variables a build needs to reach package registries from this machine (proxies,
# mirrors, private CAs). Nothing else of the host environment leaks into a build.
PASSTHROUGH_ENV = (
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS", "npm_config_registry", "NPM_CONFIG_REGISTRY", "npm_config_cafile",
    "NPM_CONFIG_CAFILE",
)


def buildpack_mount(index: int) -> str:
    return f"{BUILDPACKS_DIR}/{index}"


@dataclass(frozen=True)
class BuildSandbox:
    """Where one build's pieces live on the host; `argv` wraps a command to run among them."""

    uid: int
    build_dir: Path
    cache_dir: Path
    env_dir: Path
    buildpack_dirs: tuple[Path, ...]
    stack: str
    commit: str
    # the folder of the buildpack copies (`buildpack_dirs` are its 0, 1, ...): a build
    # container mounts it whole at /buildpacks, so it can start before the copies are made
    buildpacks_root: Path | None = None

    def env(self, host_env: Mapping[str, str] | None = None,
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
        host = os.environ if host_env is None else host_env
        env = {key: host[key] for key in PASSTHROUGH_ENV if key in host}
        env.update(
            STACK=self.stack, SOURCE_VERSION=self.commit, HOME=APP_DIR, PATH=BASE_PATH,
            LANG="C.UTF-8", BUILD_DIR=APP_DIR, CACHE_DIR=CACHE_DIR, ENV_DIR=ENV_DIR,
            PUSHD_BUILD="1",
        )
        env.update(extra or {})
        return env

    def binds(self, writable_buildpacks: bool = True) -> list[Bind]:
        binds = [Bind(str(self.build_dir), APP_DIR, writable=True),
                 Bind(str(self.cache_dir), CACHE_DIR, writable=True),
                 Bind(str(self.env_dir), ENV_DIR, writable=False)]
        for index, path in enumerate(self.buildpack_dirs):
            binds.append(Bind(str(path), buildpack_mount(index), writable=writable_buildpacks))
        return binds

    def argv(self, command: Sequence[str], extra_env: Mapping[str, str] | None = None,
             host_env: Mapping[str, str] | None = None) -> list[str]:
        return self.step_argv(command, self.binds(), extra_env, host_env, cwd=APP_DIR)

    def step_argv(self, command: Sequence[str], binds: Sequence[Bind],
                  extra_env: Mapping[str, str] | None = None,
                  host_env: Mapping[str, str] | None = None, cwd: str = "/",
                  env: bool = True) -> list[str]:
        """A step that sees only `binds` (checkout, buildpack copy, fetch, slug). With
        env=False the sandbox keeps the environment it is started with."""
        # die_with_parent: killing the process group on timeout takes the namespace with it
        return bwrap_argv(self.uid, binds, self.env(host_env, extra_env) if env else None,
                          command, cwd=cwd, die_with_parent=True, hostname="pushd-build",
                          seccomp_file=seccomp.program_file())
