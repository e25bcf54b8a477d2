"""Where a build's buildpack steps run when not in the bubblewrap sandbox: the interface a
runtime's build container implements (the docker runtime's is `runtime/docker/build.py`).

The builder prepares the build's folders on the host either way (checkout, buildpack fetch and
copies, in the sandbox as the app's uid); a `StepContainer` then runs bin/detect, bin/compile,
bin/release and the slug's tar among those folders, mounted where the sandbox mounts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from .sandbox import BuildSandbox


class StepContainer(Protocol):
    def start(self) -> None:
        """Make and start it; may be called on a thread of its own."""

    def connect(self) -> str | None:
        """Its network, attached from the build's own thread once `start` is done; None
        when it has outbound access, else why not (one line)."""

    def run(self, command: Sequence[str], env: Mapping[str, str],
            on_line: Callable[[str], None], deadline: float, phase: str,
            timeout_label: str) -> int:
        """Exit status; output line by line as it comes; BuildTimeout past the deadline,
        with everything the build started stopped."""

    def to_file(self, command: Sequence[str], env: Mapping[str, str], fd: int, limit: int,
                on_line: Callable[[str], None], deadline: float, phase: str,
                timeout_label: str) -> tuple[int, int]:
        """stdout into fd up to `limit` bytes ((-1, n) past it), stderr to on_line."""

    def oom_killed(self) -> bool: ...

    def pids_exhausted(self) -> bool: ...

    def close(self, wait: bool = True) -> None:
        """Stop and remove everything of it; `wait=False` (a build that succeeded): the
        removal may end after this returns (`ContainerFactory.clear` settles it before the
        app's next build)."""


class ContainerFactory(Protocol):
    def __call__(self, app: str, app_id: int, sandbox: BuildSandbox) -> StepContainer:
        """The container of one build (not started yet): `sandbox`'s folders exist (the
        buildpack copies may still be being made in `sandbox.buildpacks_root`)."""

    def clear(self, app: str, app_id: int) -> None:
        """Nothing left of the app's earlier build containers (one still being removed, or
        one a killed daemon left): called, with the app's deploy lock held, before the
        build mounts the app's cache."""
