"""The runtime contract: the same tests against every runtime the supervisor can drive.

What every runtime promises (`pushd/runtime/base.py`), checked through its interface and,
where the behaviour is the supervisor's, through a real `Supervisor` driving it:

- test_runtime.py: a web dyno serves on $PORT behind the endpoint it reports (host loopback);
  a dyno is reported running, then exited with its status; stop is SIGTERM, then SIGKILL after
  the spec's stop timeout (137, R12); a one-off's exit status passes through `run`; the
  dyno's output reaches the app log that `logs` reads.
- test_supervised.py: a crashing dyno is restarted with backoff; dynos started under one
  daemon that dies by `kill -9` are listed by a fresh runtime with the same id and endpoint,
  still serving, and adopted by a fresh supervisor without a restart.

How a runtime joins: write a `Harness` subclass for it below and add it to `HARNESSES`
under the runtime's registered name. The subclass says only what is local to the runtime:
`name` and `module` (the module whose import registers it), `slug()` (make an app's files
ready to run: a folder, an image; returns what a spec carries), `check_host()` (fail when
its engine or root is missing: never skip) and, if the runtime needs it, `cleanup()`. The
runtime chooses each web dyno's endpoint itself (from `port_range`); `$PORT` is the same
`dyno_port` for every dyno, inside its own network. Every test then runs against it as
`[name]`; nothing else changes.
Each test module gets a state folder of its own; dyno ids carry a random suffix, so two runs
at once never share a cgroup, container or folder.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pushd.paths import Paths
from pushd.runtime import egress
from pushd.runtime.base import Runtime, make_runtime
from pushd.runtime.dynodir import DynoDir
from pushd.runtime.records import DynoSpec
from pushd.settings import Settings


class Harness:
    """One runtime under test, on a state folder of its own (one per test module)."""

    name = ""
    module = ""  # the module whose import registers the runtime (as the wiring does)
    # short timeouts: the suite runs in well under a minute
    overrides: dict = {"stop_timeout": 2.0, "boot_timeout": 15.0, "drain_seconds": 0.2,
                       "crash_backoff_base": 0.5, "crash_backoff_max": 2.0,
                       "port_range": (31000, 31999), "uid_base": 47000, "firewall": False}

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = Paths(root / "state")
        self.paths.ensure()
        self.settings = Settings(state_dir=self.paths.root, runtime=self.name,
                                 **self.overrides)
        self.runtime = self.fresh_runtime()
        self._indexes = iter(range(1, 10_000))

    def check_host(self) -> None:
        """Fail (never skip) when the host lacks what this runtime needs."""

    def fresh_runtime(self) -> Runtime:
        """A new instance on the same state, as a restarted daemon makes it."""
        importlib.import_module(self.module)
        return make_runtime(self.settings, self.paths)

    def uid(self, app_id: int) -> int:
        return self.settings.uid_base + app_id

    def slug(self, app_id: int, files: dict[str, str]) -> str:
        """Make an app's compiled files ready for this runtime; the reference a spec carries."""
        raise NotImplementedError

    def endpoint_port(self, kind: str) -> int | None:
        """$PORT for a dyno started straight through the runtime, as the supervisor gives
        it: the same for every web dyno, inside the dyno's own network."""
        return self.settings.dyno_port if kind == "web" else None

    def spec(self, app_id: int, slug: str, kind: str, command: str, *,
             stop_timeout: float | None = None) -> DynoSpec:
        """A dyno of its own: a fresh index (its name in the log) and a random id."""
        index = next(self._indexes)
        name = f"{kind}.{index}"
        port = self.endpoint_port(kind)
        env = {"HOME": "/app", "DYNO": name, "PATH": "/usr/local/bin:/usr/bin:/bin"}
        if port is not None:
            env["PORT"] = str(port)
        return DynoSpec(id=f"{app_id}-{name}-c{random.getrandbits(32):08x}", app_id=app_id,
                        app=f"contract{app_id}", release=1, process_type=kind, index=index,
                        command=command, env=env, slug_dir=slug, uid=self.uid(app_id),
                        port=port, memory_mb=256, disk_mb=64,
                        stop_timeout=stop_timeout or self.settings.stop_timeout)

    def forwarder_pid(self, dyno_id: str) -> int | None:
        """The pid of the web dyno's endpoint forwarder (pushd-netfwd), as its runtime keeps
        it."""
        found = DynoDir(self.paths.dynos_dir / dyno_id).read_json("forwarder.json") or {}
        return found.get("pid")

    def cleanup(self) -> None:
        runtime = self.fresh_runtime()
        for info in runtime.list():
            runtime.remove(info.spec.id)
        runtime.sweep()


class SandboxHarness(Harness):
    name = "sandbox"
    module = "pushd.runtime.sandbox"

    def check_host(self) -> None:
        if os.geteuid() != 0:
            pytest.fail("the sandbox runtime needs root (uids per app, mounts, cgroups)",
                        pytrace=False)
        missing = [t for t in ("bwrap", "setpriv", "pasta") if not shutil.which(t)]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: run scripts/test", pytrace=False)

    def slug(self, app_id: int, files: dict[str, str]) -> str:
        folder = Path(tempfile.mkdtemp(prefix="slug-", dir=self.root))
        for name, text in files.items():
            (folder / name).write_text(text)
        uid = self.uid(app_id)
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(folder)], check=True)
        return str(folder)


class DockerHarness(SandboxHarness):
    """Container dynos: the slug folder (owned by the app's uid) becomes the release image
    when a dyno of it starts. Cleans up only what this state dir made (its label)."""

    name = "docker"
    module = "pushd.runtime.docker.runtime"

    def check_host(self) -> None:
        from pushd.runtime.docker.client import DockerFailure, connect
        from pushd.stack import image_name

        super().check_host()
        try:
            client = connect()
        except DockerFailure as err:
            pytest.fail(str(err), pytrace=False)
        if not client.images.list(name=image_name(self.settings.stack)):
            pytest.fail(f"missing {image_name(self.settings.stack)}: run pushd stack:build",
                        pytrace=False)

    def forwarder_pid(self, dyno_id: str) -> int | None:
        return (self.runtime._read(dyno_id) or {}).get("pasta")  # the state keeps that key

    def cleanup(self) -> None:
        from pushd.runtime.docker.client import INSTANCE, connect, instance_id

        super().cleanup()
        client = connect()
        label = f"{INSTANCE}={instance_id(self.paths.root)}"
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for image in client.images.list(filters={"label": label}):
            client.images.remove(image.id, force=True)


HARNESSES: dict[str, type[Harness]] = {"sandbox": SandboxHarness, "docker": DockerHarness}


H = TypeVar("H", bound=Harness)


@contextlib.contextmanager
def fresh_harness(kind: type[H], prefix: str) -> Iterator[H]:
    """A `kind` harness on a new state folder, its host checked; cleaned up and removed after."""
    # bwrap runs as the app's uid and must traverse to the state dir: not under pytest's tmp
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)
    made = kind(root)
    made.check_host()
    try:
        yield made
    finally:
        made.cleanup()
        egress.stop(made.paths.root)  # the dynos' shared way out, as `pushd down --all` does
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with fresh_harness(HARNESSES[request.param], "pushd-contract-") as made:
        yield made
