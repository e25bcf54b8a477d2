"""Detect phase: ask each candidate buildpack's bin/detect whether the app is its kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .process import Collected
from .sandbox import APP_DIR, buildpack_mount

# run(command, extra_env, on_line) -> exit status; the builder supplies the sandboxed one
Runner = Callable[[Sequence[str], Mapping[str, str], Callable[[str], None]], int]

# stdout only: stderr chatter must not become the buildpack's name
STDOUT_ONLY = ("bash", "-c", 'exec "$@" 2>/dev/null', "pushd-step")


def detect(run: Runner, index: int) -> str | None:
    """The name the buildpack at /buildpacks/<index> prints, or None if it declines.
    A buildpack that accepts but prints nothing is called by its position."""
    lines = Collected(4096)
    status = run([*STDOUT_ONLY, f"{buildpack_mount(index)}/bin/detect", APP_DIR], {},
                 lines.append)
    if status != 0:
        return None
    names = [line.strip() for line in lines.lines if line.strip()]
    return names[0] if names else f"Buildpack {index + 1}"


def first_detected(run: Runner, indexes: Sequence[int]) -> tuple[int, str] | None:
    """Detection over the bundled buildpacks: the first in order that accepts wins."""
    for index in indexes:
        name = detect(run, index)
        if name is not None:
            return index, name
    return None
