"""What a runtime brings to the platform's flows besides running dynos (that is the `Runtime`
protocol in base.py): readying the host at `pushd up`, where buildpacks run, whether images
can be built (Dockerfile deploys), and what it keeps of releases beyond the store's slug
folders (images), to be made when a release is cut, pruned after a deploy, removed with an
app and collected by `pushd gc`.

A runtime names its support class when it registers (`@register("docker",
support=DockerSupport)`); one that names none gets `LocalSupport`: buildpacks run in local
sandboxes and releases are the slug folders, nothing else to keep. The flows (`deploy.py`,
the push, `apps:destroy`, `gc`, `pushd up`) call these hooks on every runtime and never ask
which runtime it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..build.runner import ContainerFactory
    from ..models import App, Release
    from ..platform import Platform

MB = 1024 * 1024


@dataclass
class Freed:
    """What a collection removed."""

    images: int = 0
    containers: int = 0
    volumes: int = 0
    bytes: int = 0

    def add(self, other: Freed) -> None:
        self.images += other.images
        self.containers += other.containers
        self.volumes += other.volumes
        self.bytes += other.bytes

    def describe(self) -> str:
        """One line: `Freed 3 images, 2 containers, 0 volumes: 41.5 MB`."""
        return (f"Freed {self.images} image{'s' * (self.images != 1)}, {self.containers} "
                f"container{'s' * (self.containers != 1)}, {self.volumes} "
                f"volume{'s' * (self.volumes != 1)}: {self.bytes / MB:.1f} MB")


class RuntimeSupport(Protocol):
    runs_images: bool  # a Dockerfile push can be built and run
    keeps_images: bool  # releases are images `pushd gc` collects (else only slug folders)

    def prepare_host(self, say: Callable[[str], None]) -> None:
        """At `pushd up`, before the daemon starts: what the runtime needs that can be made
        here (the stack image), with progress lines; one-line PushdError if it cannot."""

    def build_steps(self) -> ContainerFactory | None:
        """Where buildpack steps run: containers, or None for the local build sandbox."""

    def release_cut(self, app: App, release: Release) -> None:
        """A new release that will run dynos: make what they start from (RuntimeFailure,
        one line, fails the release)."""

    def prune(self, app: App) -> Freed:
        """After a deploy (the app's deploy lock held): what releases no longer kept left."""

    def destroy(self, app_id: int) -> Freed:
        """`apps:destroy`: everything of the app the runtime keeps."""

    def orphans(self) -> Freed:
        """`pushd gc`: what apps that no longer exist left."""

    def cancel_builds(self, app_id: int) -> int:
        """`builds:cancel`: stop the app's build steps that run outside its build cgroups
        (in the engine's containers); how many were stopped."""


class LocalSupport:
    """Buildpacks in local sandboxes, releases as slug folders: nothing more to keep."""

    runs_images = False
    keeps_images = False

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def prepare_host(self, say: Callable[[str], None]) -> None:
        pass

    def build_steps(self) -> ContainerFactory | None:
        return None

    def release_cut(self, app: App, release: Release) -> None:
        pass

    def prune(self, app: App) -> Freed:
        return Freed()

    def destroy(self, app_id: int) -> Freed:
        return Freed()

    def orphans(self) -> Freed:
        return Freed()

    def cancel_builds(self, app_id: int) -> int:
        return 0
