"""The release phase: commands run once per new release in a one-off dyno of that release,
after the build and before any of its dynos start: app.json's `scripts.dokku.predeploy`
(pushes only), then the Procfile's `release:`. Their output goes to the push (or command)
as it comes and is kept for `releases:output vN`. A non-zero exit or the `release_timeout`
fails the release; the running one keeps serving. After the release is live, app.json's
postdeploy script runs the same way (its failure is reported, the release stays live).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from .appjson import AppJson
from .dynospec import dyno_spec
from .errors import ReleaseFailed
from .events import EventLog, run_oneoff
from .files import replace_file
from .logs import AppLog
from .models import App, Release
from .platform import Platform

KEPT_OUTPUT = 256 * 1024  # bytes of a release phase's output kept for releases:output
Out = Callable[[str], None]


def output_file(platform: Platform, app_id: int, version: int) -> Path:
    return platform.paths.app_dir(app_id) / "release-output" / f"v{version}.log"


def read_output(platform: Platform, app_id: int, version: int) -> str | None:
    try:
        return output_file(platform, app_id, version).read_text(errors="replace")
    except OSError:
        return None


def commands(release: Release, manifest: AppJson | None) -> list[tuple[str, str]]:
    """(what, command) to run before vN's dynos start, in order."""
    steps = []
    if manifest is not None and manifest.predeploy:
        steps.append(("predeploy script", manifest.predeploy))
    if release.process_types.get("release"):
        steps.append(("release command", release.process_types["release"]))
    return steps


class PhaseIO:
    """A one-off's client with no input: output to `out` line by line and kept; `gone`
    once the deadline passed (the runtime then stops the dyno)."""

    tty = False
    term_size = None

    def __init__(self, out: Out | None, deadline: float,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.out, self.deadline, self.log = out, deadline, log
        self.kept = bytearray()
        self._partial = b""
        self.timed_out = False

    def read(self, size: int) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        if len(self.kept) < KEPT_OUTPUT:
            self.kept += data[:KEPT_OUTPUT - len(self.kept)]
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            self._say(line)
        if len(self._partial) > 4096:
            self._say(self._partial)
            self._partial = b""

    write_err = write

    def flush(self) -> None:
        if self._partial:
            self._say(self._partial)
            self._partial = b""

    def gone(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.timed_out = True
        return self.timed_out

    def _say(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self.log(text)  # the app log escapes what it must
        if self.out is not None:
            text = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)
            self.out(f"       {text}\n")


def run_step(platform: Platform, app: App, release: Release, what: str, command: str,
             out: Out | None) -> tuple[int, bool, bytes]:
    """Run one command in a one-off dyno of `release`: (exit status, timed out, output)."""
    spec = dyno_spec(platform.store, platform.settings, app, release, "release",
                     random.randint(1000, 9999), command)
    applog = AppLog.shared(platform.paths.log_file(app.id), platform.settings.log_max_bytes)
    io = PhaseIO(out, time.monotonic() + platform.settings.release_timeout,
                 lambda line: applog.write("app", spec.dyno, line))
    events = EventLog(platform.paths, platform.settings.log_max_bytes)
    status = run_oneoff(platform.runtime, spec, io, events)
    io.flush()
    return status, io.timed_out, bytes(io.kept)


def run(platform: Platform, app: App, release: Release, manifest: AppJson | None,
        out: Out | None) -> None:
    """The release phase of vN; ReleaseFailed (the output kept) if a step fails."""
    kept = b""
    after = ("the previous release keeps serving" if platform.store.current_release(app.id)
             else "nothing was serving before")
    for what, command in commands(release, manifest):
        if out is not None:
            out(f"-----> Running {what} for {release.name}…\n" if what != "release command"
                else "-----> Running release command…\n")
        status, timed_out, output = run_step(platform, app, release, what, command, out)
        kept += output
        _keep(platform, app, release, kept)
        if timed_out:
            raise ReleaseFailed(f"Release {release.name} failed: {what} timed out after "
                                f"{platform.settings.release_timeout:g}s; {after}")
        if status != 0:
            raise ReleaseFailed(f"Release {release.name} failed: {what} exited with status "
                                f"{status}; {after}")


def postdeploy(platform: Platform, app: App, release: Release, manifest: AppJson | None,
               out: Out | None) -> None:
    if manifest is None or not manifest.postdeploy:
        return
    if out is not None:
        out(f"-----> Running postdeploy script for {release.name}…\n")
    status, timed_out, _ = run_step(platform, app, release, "postdeploy script",
                                    manifest.postdeploy, out)
    if (status or timed_out) and out is not None:
        how = "timed out" if timed_out else f"exited with status {status}"
        out(f" !     Warning: the postdeploy script {how}; {release.name} stays live\n")


def _keep(platform: Platform, app: App, release: Release, output: bytes) -> None:
    path = output_file(platform, app.id, release.version)
    if path.parent.parent.is_dir():  # never recreates a destroyed app's folder
        path.parent.mkdir(mode=0o700, exist_ok=True)
        replace_file(path, output.decode("utf-8", "replace"))
