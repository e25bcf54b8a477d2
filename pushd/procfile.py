"""Procfile parsing: `<type>: <command>` lines, `#` comments and blank lines allowed."""

from __future__ import annotations

import re

from .errors import BuildError

LINE_RE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.*)$")


def parse_procfile(text: str) -> dict[str, str]:
    """Process types in file order. A later duplicate wins, as on Heroku, so apps that work
    there work here; a malformed line is an error naming its line number."""
    types: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE_RE.match(line)
        if match is None:
            raise BuildError(
                f"Procfile line {number}: expected '<type>: <command>' with a type of letters, "
                f"digits, '_' or '-', got {line[:60]!r}",
                phase="release",
            )
        name, command = match.group(1), match.group(2).strip()
        if not command:
            raise BuildError(f"Procfile line {number}: process type {name!r} has no command",
                             phase="release")
        types[name] = command
    return types
