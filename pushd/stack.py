"""The stack image: a minimal Debian made with debootstrap from the host's own apt source,
plus what the bundled buildpacks need, imported into the local Docker engine (no registry).

Builders (`debootstrap_argv`, `chroot_apt_argv`, `chroot_sources_list`, the apt config
parsers) return data and run nothing; `StackBuilder` runs them."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PushdError

SUITE = "bookworm"
REPOSITORY = "pushd/stack"
LABEL = "io.pushd.stack"
# what the bundled buildpacks (python, node, static) need to compile apps and their native
# modules, and nginx, which serves static sites
PACKAGES = ("python3", "python3-venv", "python3-pip", "nodejs", "npm", "ca-certificates",
            "build-essential", "libpq-dev", "git", "curl", "nginx-light")
# as in Debian's slim images: no manuals, docs or translations (about 100 MB); licences kept
DPKG_EXCLUDES = ("path-exclude /usr/share/doc/*\n"
                 "path-include /usr/share/doc/*/copyright\n"
                 "path-exclude /usr/share/man/*\n"
                 "path-exclude /usr/share/info/*\n"
                 "path-exclude /usr/share/locale/*\n")
CHROOT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C", "HOME": "/root",
              "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class StackError(PushdError):
    """The stack image could not be built; the message says why in one line."""


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry of the host's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def engine(**options: Any) -> Any:
    """A client of the local Docker engine, or one line saying there is none (`options`:
    `docker.from_env`'s, e.g. the docker runtime's timeout and pool size)."""
    import docker

    try:
        client = docker.from_env(**options)
        client.ping()
    except docker.errors.DockerException as err:
        raise StackError("no Docker engine answers (start dockerd: scripts/install does); "
                         f"{(str(err).splitlines() or [type(err).__name__])[0][:120]}") from err
    return client


def image_name(stack: str) -> str:
    """`pushd/stack:pushd-22`: the local image a stack name stands for."""
    return f"{REPOSITORY}:{stack}"


def parse_deb822(text: str) -> list[AptSource]:
    """The `Types: deb` stanzas of a `.sources` file (deb822), disabled ones left out."""
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            found.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                   tuple(fields.get("components", "").split())))
    return found


def parse_sources_list(text: str) -> list[AptSource]:
    """The `deb` lines of a one-line-style `sources.list`, options (`[arch=...]`) skipped."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        matched = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)", line)
        if matched:
            uri, suite, components = matched.groups()
            found.append(AptSource(uri, (suite,), tuple(components.split())))
    return found


def host_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every `deb` source the host's apt reads, network ones only (http, https)."""
    found: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        found += parse_sources_list(main_list.read_text())
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*.list")) if parts.is_dir() else ():
        found += parse_sources_list(path.read_text())
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else ():
        found += parse_deb822(path.read_text())
    return [s for s in found if s.uri.startswith(("http://", "https://"))]


def mirror_for(sources: Sequence[AptSource], suite: str = SUITE) -> str:
    """The mirror that serves `suite` itself (not -updates or -security): debootstrap's."""
    for source in sources:
        if suite in source.suites and "main" in source.components:
            return source.uri
    raise StackError(f"no apt source for Debian {suite} main in /etc/apt (sources.list or "
                     "sources.list.d/*.sources): the stack is made from the host's mirror")


def chroot_sources_list(sources: Sequence[AptSource], suite: str = SUITE) -> str:
    """The stack's own `sources.list`: the host's entries for `suite` and its companions
    (`-updates`, `-security`, only those the host lists), main component only."""
    lines = []
    for source in sources:
        for name in source.suites:
            if (name == suite or name.startswith(suite + "-")) and "main" in source.components:
                lines.append(f"deb {source.uri} {name} main")
    return "".join(f"{line}\n" for line in dict.fromkeys(lines))


def debootstrap_argv(root: Path, mirror: str, suite: str = SUITE) -> list[str]:
    return ["debootstrap", "--variant=minbase", suite, str(root), mirror]


def chroot_apt_argv(root: Path, *args: str) -> list[str]:
    return ["chroot", str(root), "apt-get", "-y", "-q", "--no-install-recommends", *args]


def import_changes(stack: str) -> list[str]:
    """Dockerfile instructions applied by `docker import`: a label naming the stack."""
    return [f"LABEL {LABEL}={stack}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']


Say = Callable[[str], None]


class StackBuilder:
    """Builds the stack image into the engine `client` (a `docker.DockerClient`), working in
    a temporary folder under `work_dir`; `say` shows progress lines."""

    def __init__(self, client: Any, work_dir: Path, say: Say,
                 apt_dir: Path = Path("/etc/apt")) -> None:
        self.client = client
        self.work_dir = work_dir
        self.say = say
        self.apt_dir = apt_dir

    def existing(self, stack: str) -> str | None:
        import docker.errors

        try:
            return str(self.client.images.get(image_name(stack)).id)
        except docker.errors.ImageNotFound:
            return None

    def build(self, stack: str, force: bool = False) -> str:
        """The image id of the stack, built unless present (or `force`). One build at a time
        per state dir: a second caller waits, then finds the image the first one made."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with (self.work_dir / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build(stack, force)

    def _build(self, stack: str, force: bool) -> str:
        name = image_name(stack)
        old = self.existing(stack)
        if old and not force:
            self.say(f"-----> Stack image {name} is present ({old[7:19]}); "
                     "stack:build --force rebuilds it")
            return old
        if not shutil.which("debootstrap"):
            raise StackError("debootstrap is missing: apt-get install debootstrap "
                             "(scripts/install does)")
        sources = host_sources(self.apt_dir)
        mirror = mirror_for(sources)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="stack-", dir=self.work_dir))
        log = work.parent / f"{work.name}.log"
        try:
            root = work / "rootfs"
            self.say(f"-----> Making a minimal Debian {SUITE} from {mirror} (log: {log})")
            self._run(debootstrap_argv(root, mirror), log,
                      f"debootstrap could not make Debian {SUITE} from {mirror}")
            self.say(f"-----> Adding {', '.join(PACKAGES)}")
            self._install(root, sources, log)
            self.say(f"-----> Importing the image {name}")
            image_id = self._import(root, stack)
        finally:
            _remove_tree(work)
        if old and old != image_id:
            self._drop(old)
        log.unlink(missing_ok=True)
        self.say(f"-----> Stack image {name} built ({image_id[7:19]}) "
                 f"in {time.monotonic() - started:.0f} s")
        return image_id

    def _install(self, root: Path, sources: Sequence[AptSource], log: Path) -> None:
        (root / "etc/apt/sources.list").write_text(chroot_sources_list(sources))
        (root / "etc/dpkg/dpkg.cfg.d/pushd-slim").write_text(DPKG_EXCLUDES)
        for folder in ("usr/share/man", "usr/share/info", "usr/share/locale"):
            shutil.rmtree(root / folder, ignore_errors=True)
            (root / folder).mkdir()
        # no service may start inside the chroot while packages are configured
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        with _mounted_proc(root):
            self._run(chroot_apt_argv(root, "update"), log, "apt-get update failed in the stack")
            self._run(chroot_apt_argv(root, "upgrade"), log, "apt-get upgrade failed in the stack")
            self._run(chroot_apt_argv(root, "install", *PACKAGES), log,
                      "apt-get install failed in the stack")
            self._run(chroot_apt_argv(root, "clean"), log, "apt-get clean failed in the stack")
        policy.unlink()
        # the host's resolver and package lists are not the image's business
        for leftover in ("etc/resolv.conf", "etc/hostname"):
            (root / leftover).unlink(missing_ok=True)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)

    def _import(self, root: Path, stack: str) -> str:
        import docker.errors

        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        assert tar.stdout is not None
        chunks = iter(lambda: tar.stdout.read(1 << 20), b"")  # type: ignore[union-attr]
        try:
            self.client.api.import_image(src=chunks, stream_src=True, repository=REPOSITORY,
                                         tag=stack, changes=import_changes(stack))
        except docker.errors.DockerException as err:
            raise StackError(f"docker import of the stack failed: {err}") from err
        finally:
            tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            raise StackError(f"tar of the stack's root failed (exit {tar.returncode})")
        found = self.existing(stack)
        if not found:
            raise StackError(f"docker import did not make {image_name(stack)}")
        return found

    def _drop(self, image_id: str) -> None:
        """The image a --force rebuild replaced: no untagged layers left behind."""
        import docker.errors

        try:
            self.client.images.remove(image_id)
        except docker.errors.APIError:
            pass  # still used by a container: `pushd gc` removes it later

    def _run(self, argv: list[str], log: Path, failure: str) -> None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env={**os.environ, **CHROOT_ENV})
        if done.returncode != 0:
            raise StackError(f"{failure}: {_last_error(log)} (log: {log})")


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "W:"))]
    return (errors or lines or ["no output"])[-1]


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


@contextmanager
def _mounted_proc(root: Path) -> Iterator[None]:
    """/proc inside the chroot while packages are configured (some postinst scripts read it)."""
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(root / "proc")], check=False)


def _remove_tree(work: Path) -> None:
    """Remove the temporary root, never through a mount still inside it (a host /proc)."""
    for point in reversed(_mounts_under(work)):
        subprocess.run(["umount", "--lazy", point], check=False)
    if _mounts_under(work):
        raise StackError(f"{work} still has mounts inside; remove it by hand after unmounting")
    shutil.rmtree(work, ignore_errors=True)
