"""A buildpack that refuses the stack: its own lines are shown as it prints them, then one
hint saying what this platform's stack is.

Third-party buildpacks that download runtimes built for Heroku's stacks check `$STACK` and exit
with their own message; the user needs to know that the stack is the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class StackWatch:
    """Passes a build's output on and notes whether a line refuses the stack."""

    def __init__(self, out: Callable[[str], None], stack: str) -> None:
        self.out, self.stack = out, stack
        # a refusal names a stack (ours, or the ones it wants: heroku-24, cedar-14) and says
        # what is wrong with it; pushd's own lines ("Building on the pushd-22 stack") don't,
        # nor does a bundled buildpack's "Python 3.99 is not available on this stack"
        names = rf"((?-i:\$?STACK)\b|{re.escape(stack)}|heroku-\d+|cedar(-\d+)?|scalingo-\d+)"
        verdict = r"\b(not|no|unsupported|only|requires?)\b"
        self._pattern = re.compile(rf"{names}.*{verdict}|{verdict}.*{names}", re.IGNORECASE)
        self.mentioned = False

    def __call__(self, line: str) -> None:
        if not self.mentioned and self._pattern.search(line):
            self.mentioned = True
        self.out(line)

    def hint(self) -> str | None:
        """The hint after a failed compile whose output named the stack; else None."""
        if not self.mentioned:
            return None
        return (f"Hint: this buildpack does not support the {self.stack} stack (STACK="
                f"{self.stack}, a Debian 12 root with python3, node, npm and nginx); use a "
                "buildpack that does not check STACK, or one of the bundled buildpacks")
