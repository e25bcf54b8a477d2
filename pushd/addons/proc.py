"""Running the service tools: as the service's own system user, argv only, secrets in the
environment or on stdin (never in argv, where /proc shows them), and a free loopback port."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from .base import AddonError

SETPRIV = "/usr/bin/setpriv"


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """argv run as the system user `user` (postgres, redis) when we are root."""
    if os.geteuid() != 0:
        return list(argv)
    return [SETPRIV, f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def owned_dir(path: Path, user: str) -> Path:
    """A folder only `user` (and root) may enter."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def run(argv: Sequence[str], what: str, *, stdin: str = "", env: dict[str, str] | None = None,
        timeout: float = 60.0) -> str:
    """Run a tool; its stdout, or AddonError with the first error line (never a LINE/
    statement echo, which may quote a password)."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AddonError(f"{what} failed: {type(err).__name__}") from None
    if done.returncode != 0:
        raise AddonError(f"{what} failed: {first_error(done.stderr)}")
    return done.stdout


def first_error(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("LINE", "DETAIL", "HINT", "CONTEXT", "^")):
            return line.removeprefix("psql: ").removeprefix("error: ")[:300]
    return "no reason given"


def free_port(port_range: tuple[int, int], taken: set[int]) -> int:
    low, high = port_range
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AddonError(f"No free port left in addon_port_range {low}-{high}")


@contextlib.contextmanager
def locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """An flock on `path` (made on demand), shared by every pushd process: True if held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
