"""A clone or fetch of an app's repo, served by `git upload-pack` in a child process.

dulwich's upload-pack builds the pack in the daemon, reading each object whole: a clone of a
repo of 200 MB took the daemon to ~500 MB, and it kept 60 MB of it afterwards. git's
upload-pack (and the pack-objects it starts) copies packed objects as they are stored,
streams those over 1 MB and keeps its delta caches small (intake.BOUNDED); the daemon only
passes the bytes between the SSH channel and the child, 64 KB at a time.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .intake import PIECE, git_argv, git_env


def _to_git(read_some: Callable[[int], bytes], stdin: IO[bytes]) -> None:
    """The client's side of the conversation (wants, haves, done) into git, until either
    ends: the channel closes, or git exits and the write fails."""
    try:
        with contextlib.suppress(OSError, EOFError):
            while data := read_some(PIECE):
                stdin.write(data)
    finally:  # whatever broke the reading, git hears the end (never a child left waiting)
        with contextlib.suppress(OSError):
            stdin.close()


def _errors_to(err: Callable[[str], None], stderr: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        for line in stderr:
            err(line.decode("utf-8", "replace"))


def serve_upload(repo: Path, read_some: Callable[[int], bytes],
                 write: Callable[[bytes], None], err: Callable[[str], None]) -> int:
    """Serve one upload-pack conversation; git's exit status."""
    proc = subprocess.Popen(git_argv("upload-pack", "--strict", str(repo)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=git_env(repo), cwd=repo, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    # the reader may wait on the channel after git is done; the session's close ends it
    threading.Thread(target=_to_git, args=(read_some, proc.stdin), daemon=True,
                     name="upload-pack-in").start()
    errors = threading.Thread(target=_errors_to, args=(err, proc.stderr), daemon=True,
                              name="upload-pack-err")
    errors.start()
    try:
        while data := proc.stdout.read(PIECE):  # unbuffered: what git wrote, at once
            write(data)
    finally:
        if proc.poll() is None:  # the client went away: git has nobody to talk to
            proc.kill()
        proc.wait()
        errors.join()
    return proc.returncode
