"""Buildpack references: validation (for `buildpacks:set`), the selection order of a build,
and turning a reference into a local folder (bundled, local path or cached git clone).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError, UsageError
from .process import run_streaming

# python before nodejs: a Python app with a package.json for its assets is the common mixed
# case; nodejs before static because front-end apps carry public/index.html; procfile last.
BUNDLED_ORDER = ("python", "nodejs", "static", "procfile")
URL_RE = re.compile(r"^(https?|git|ssh|file)://[^\s#]+(#[^\s#]+)?$")
SCP_RE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^\s#]+(#[^\s#]+)?$")
REF_RE = re.compile(r"^[A-Za-z0-9_./-]{1,200}$")
BUNDLED_PREFIXES = ("pushd/", "heroku/")  # Heroku users type heroku/python from memory


@dataclass(frozen=True)
class Buildpack:
    """A buildpack ready to copy into a build: where it lives and how it was asked for."""

    ref: str
    path: Path


def bundled_name(ref: str) -> str | None:
    name = ref
    for prefix in BUNDLED_PREFIXES:
        if ref.startswith(prefix):
            name = ref[len(prefix):]
    return name if name in BUNDLED_ORDER else None


def validate_buildpack(ref: str) -> str:
    """Return the cleaned reference or raise UsageError with one line saying what is wrong.

    Accepted: a bundled name (`python`, `pushd/python`, `heroku/python`), an absolute path to
    a folder with bin/compile, or a git URL (https, http, git, ssh, file, user@host:path),
    optionally with `#ref`."""
    value = (ref or "").strip()
    if not value or len(value) > 1000 or any(ord(c) < 32 for c in value):
        raise UsageError(f"Invalid buildpack {value[:60]!r}: expected a name, a path or a URL")
    if bundled_name(value):
        return value
    if value.startswith("/"):
        if not (Path(value) / "bin" / "compile").is_file():
            raise UsageError(f"Invalid buildpack {value!r}: no bin/compile in that folder")
        return value
    if URL_RE.match(value) or SCP_RE.match(value):
        _, _, git_ref = value.partition("#")
        if git_ref and (not REF_RE.match(git_ref) or git_ref.startswith("-")):
            raise UsageError(f"Invalid buildpack {value[:60]!r}: bad git ref {git_ref!r}")
        return value
    names = ", ".join(BUNDLED_ORDER)
    raise UsageError(f"Invalid buildpack {value[:60]!r}: expected one of {names}, an absolute "
                     "path or a git URL (https://host/repo.git#ref)")


def parse_buildpacks_file(text: str) -> list[str]:
    """`.buildpacks`: one reference per line; blank lines and `#` comments skipped."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def requested_buildpacks(config: dict[str, str], build_dir: Path,
                         app_buildpacks: Sequence[str]) -> tuple[list[str], str]:
    """The buildpacks the app asks for and where that came from, in Heroku's precedence:
    BUILDPACK_URL, then `.buildpacks`, then buildpacks:set; empty means detect."""
    if config.get("BUILDPACK_URL", "").strip():
        return [config["BUILDPACK_URL"].strip()], "BUILDPACK_URL"
    listing = build_dir / ".buildpacks"
    if listing.is_file() and not listing.is_symlink():
        refs = parse_buildpacks_file(listing.read_text(errors="replace"))
        if refs:
            return refs, ".buildpacks"
    if app_buildpacks:
        return list(app_buildpacks), "buildpacks:set"
    return [], "detection"


class BuildpackResolver:
    """Turns references into folders. Git URLs are cloned once into `cache_root/<hash>` and
    reused by every later build, so a build does not depend on the network twice."""

    def __init__(self, bundled_dir: Path, cache_root: Path,
                 clone_argv_prefix: Sequence[str] = ()) -> None:
        self.bundled_dir = Path(bundled_dir)
        self.cache_root = Path(cache_root)
        # the receiver runs as root: local paths and clones go through this prefix (setpriv
        # to the app uid) so a user can only pull in what any unprivileged user may read
        self.clone_argv_prefix = list(clone_argv_prefix)

    def bundled(self) -> list[Buildpack]:
        return [Buildpack(name, self.bundled_dir / name) for name in BUNDLED_ORDER]

    def resolve(self, ref: str, out: Callable[[str], None], deadline: float,
                timeout_label: str, scratch: Path) -> Buildpack:
        try:
            value = validate_buildpack(ref)
        except UsageError as err:
            raise BuildError(str(err), phase="detect") from None
        name = bundled_name(value)
        if name:
            return Buildpack(value, self.bundled_dir / name)
        if value.startswith("/"):
            return Buildpack(value, Path(value))
        return Buildpack(value, self._clone(value, out, deadline, timeout_label, scratch))

    def _clone(self, value: str, out: Callable[[str], None], deadline: float,
               timeout_label: str, scratch: Path) -> Path:
        target = self.cache_root / hashlib.sha256(value.encode()).hexdigest()[:20]
        if (target / "bin").is_dir():
            return target
        url, _, git_ref = value.partition("#")
        out(f"-----> Fetching buildpack {value}\n")
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="clone-", dir=scratch))
        os.chmod(tmp, 0o777)  # the unprivileged clone writes here; removed right after
        dest = tmp / "bp"
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO",
                        "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
        env.update(GIT_TERMINAL_PROMPT="0", HOME=str(tmp), GIT_CONFIG_NOSYSTEM="1")
        # file:// sources belong to another user and git 2.39 only reads safe.directory
        # from the global config: give the clone a throwaway one
        (tmp / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
        os.chmod(tmp / ".gitconfig", 0o644)
        lines: list[str] = []

        def clone(extra: list[str]) -> int:
            shutil.rmtree(dest, ignore_errors=True)
            argv = [*self.clone_argv_prefix, "git", "clone", "--quiet", *extra, "--", url,
                    str(dest)]
            return run_streaming(argv, lines.append, deadline, "detect", env=env,
                                 timeout_label=timeout_label)

        try:
            if not git_ref:
                ok = clone(["--depth", "1"]) == 0
            else:  # a branch or tag clones shallow; a commit sha needs the full history
                ok = clone(["--depth", "1", "--branch", git_ref]) == 0
                if not ok:
                    ok = clone([]) == 0 and run_streaming(
                        [*self.clone_argv_prefix, "git", "-C", str(dest), "-c",
                         "advice.detachedHead=false", "checkout", "--quiet", git_ref, "--"],
                        lines.append, deadline, "detect", env=env,
                        timeout_label=timeout_label) == 0
            if not ok:
                detail = lines[-1].strip() if lines else "git clone failed"
                raise BuildError(f"Failed to fetch buildpack {value}: {detail}", phase="detect")
            for path in [dest, *dest.rglob("*")]:
                os.lchown(path, 0, 0)  # the shared cache belongs to the platform, not one app
            self.cache_root.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(dest, target)
            except OSError:  # a concurrent build of another app cloned it first
                if not (target / "bin").is_dir():
                    raise
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
