"""`policies.yaml` in the state dir, read again whenever it changes (no restart needed).

A file that cannot be used is not ignored: `Policies.error` holds one line saying why, every
action a policy judges is refused with it, and `policies` shows it. Read-only commands keep
working, and an admin fixes the file in place.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Refused
from .policies import PolicyError, Rule, parse

FILE_NAME = "policies.yaml"
MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Policies:
    rules: tuple[Rule, ...] = ()
    error: str | None = None  # the file exists but cannot be used

    def usable(self) -> tuple[Rule, ...]:
        """The rules, or Refused with the file's problem: nothing a policy judges may
        happen while nobody can tell what the policies say."""
        if self.error is not None:
            raise Refused(f"{FILE_NAME} is invalid ({self.error}); nothing it governs is "
                          "allowed until an admin fixes it")
        return self.rules


class PolicyFile:
    """The current policies of one state dir. `on_change(policies)` is called once for each
    change seen (the audit trail's hook)."""

    def __init__(self, path: Path, on_change: Callable[[Policies], None] | None = None) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self._lock = threading.Lock()
        self._seen: tuple[int, ...] | None = None
        self._policies = Policies()

    def current(self) -> Policies:
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
            except FileNotFoundError:
                stamp = ()
            except OSError as err:
                return Policies(error=f"cannot read it: {err.strerror}")
            if stamp != self._seen:
                policies = self._read() if stamp else Policies()
                changed = self._seen is not None or stamp != ()
                self._seen, self._policies = stamp, policies
                if changed and self.on_change is not None:
                    self.on_change(policies)
            return self._policies

    def _read(self) -> Policies:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as err:
            return Policies(error=f"cannot read it: {err.strerror}")
        if len(data) > MAX_BYTES:
            return Policies(error=f"larger than {MAX_BYTES // 1024} KB")
        try:
            return Policies(rules=parse(data.decode("utf-8")))
        except UnicodeDecodeError:
            return Policies(error="not UTF-8 text")
        except PolicyError as err:
            return Policies(error=str(err))
