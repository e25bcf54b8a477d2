"""Replacing a small file whole: readers see the old or the new text, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o600, sync: bool = False) -> None:
    """Write `text` beside `path` (created with `mode`, root-only by default: specs and
    failure records hold config and output) and rename it over `path`. `sync` for state a
    crash must not lose; hints and snapshots rewritten often skip the fsync."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow (or a stale tmp widen) it
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: `path` keeps its old text, and no half tmp stays
        tmp.unlink(missing_ok=True)
        raise
