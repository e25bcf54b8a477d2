"""The audit trail: one JSON line per admin action in `<state>/audit.log` (root's alone).

Every command run through `commands.dispatch` (over SSH or from the local CLI) is recorded with
its time, the key's name and fingerprint, the command with secret values redacted, the app and
the outcome; so are governance changes (`quotas:set`, an edited `policies.yaml`). Values never
reach the file: `KEY=VALUE` arguments keep only the key, and a URL keeps no password. The file
is rotated once at `MAX_BYTES` (one older file kept), under a lock shared by every writer.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("pushd.audit")

MAX_BYTES = 8 * 1024 * 1024
REDACTED = "[redacted]"
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=.*$", re.S)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):[^@/\s]*@")
_MAX_ARG = 200


@dataclass(frozen=True)
class Entry:
    time: float
    actor: str
    fingerprint: str
    command: str
    app: str
    outcome: str  # "ok", "failed (status N)", "refused", or a governance change's note

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        who = f"{self.actor} ({self.fingerprint})" if self.fingerprint else self.actor
        text = f"{stamp}  {who}  {self.command}  app={self.app or '-'}  {self.outcome}"
        return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def redact(argv: Sequence[str]) -> str:
    """The command line with every value that could be a secret replaced: `K=V` → `K=…`,
    `scheme://user:password@host` → `scheme://user:…@host`; long arguments cut short."""
    shown = []
    for arg in argv:
        arg = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{REDACTED}@", arg)
        match = _ASSIGNMENT.match(arg)
        if match:
            arg = f"{match.group(1)}={REDACTED}"
        arg = arg.replace("\n", " ").replace("\r", " ")
        shown.append(arg if len(arg) <= _MAX_ARG else arg[:_MAX_ARG] + "…")
    return " ".join(shown)


class Trail:
    """The audit log of one state dir (`Paths.audit_log`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: Entry) -> None:
        """Add one entry; a failure to write is logged, never raised (the action happened)."""
        data = (json.dumps(asdict(entry), ensure_ascii=True) + "\n").encode()
        fd = -1
        try:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size + len(data) > MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                os.close(fd)
                fd = self._open()
            os.write(fd, data)
        except OSError as err:
            log.warning("audit entry not written (%s): %s", err, entry.line())
        finally:
            if fd >= 0:
                os.close(fd)

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def command(self, actor: str, fingerprint: str, argv: Sequence[str], app: str,
                status: int) -> None:
        """Record one admin command and how it ended."""
        outcome = "ok" if status == 0 else f"failed (status {status})"
        self.append(Entry(time.time(), actor, fingerprint, redact(argv), app, outcome))

    def record(self, actor: str, action: str, detail: str = "") -> None:
        """Note that `actor` (a key name, or `policies.yaml` for an edit of the file) did
        `action` (a governance change; `detail` is never a secret)."""
        self.append(Entry(time.time(), actor, "", action, "", detail or "ok"))

    def entries(self) -> Iterator[Entry]:
        return read(self.path)


def read(path: Path) -> Iterator[Entry]:
    """Every entry, oldest first (the rotated file, then the current one); torn or foreign
    lines are skipped."""
    for part in (path.with_name(path.name + ".1"), path):
        try:
            with part.open("rb") as fh:
                lines: Iterable[bytes] = fh.readlines()
        except FileNotFoundError:
            continue
        for raw in lines:
            try:
                yield Entry(**json.loads(raw))
            except (ValueError, TypeError):
                continue
