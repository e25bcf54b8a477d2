"""The docker runtime's support (`runtime/support.RuntimeSupport`): where the platform's flows
meet the engine. Buildpacks run in containers of the stack image, a release cut gets its
image, a deploy ends with the engine pruned, a destroyed app leaves nothing in it, and
`pushd up --runtime docker` makes the stack image on first use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ...errors import NotFound, RuntimeFailure
from ..support import Freed
from . import labels as lbl
from .client import connect
from .gc import EngineGC
from .images import ensure_release_image, release_tag

log = logging.getLogger("pushd.docker")

if TYPE_CHECKING:
    from ...build.runner import ContainerFactory
    from ...models import App, Release
    from ...platform import Platform
    from ...settings import Settings


class DockerSupport:
    """The docker runtime's builds, release images and engine cleanup for one platform."""

    runs_images = True
    keeps_images = True

    def __init__(self, platform: Platform, client: Any | None = None) -> None:
        self.platform = platform
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(RuntimeFailure)
        return self._client

    def prepare_host(self, say: Callable[[str], None]) -> None:
        ensure_stack(self.platform.settings, say)

    def build_steps(self) -> ContainerFactory:
        from .build import container_steps

        return container_steps(self.platform.settings)

    @property
    def gc(self) -> EngineGC:
        return EngineGC(self.client, self.platform.settings.state_dir)

    def release_cut(self, app: App, release: Release) -> None:
        """`pushd/<app>:v<N>` for a release that runs a slug: made from the slug after a
        build, another tag of the slug's image for a config change or a rollback."""
        if release.slug_id is None:
            return
        try:
            slug = self.platform.store.slug(release.slug_id)
        except NotFound:
            return
        import docker.errors

        try:
            if slug.image:  # a Dockerfile build: the release is another tag of its image
                name, _, version = release_tag(app.name, release.version).rpartition(":")
                self.client.images.get(slug.image).tag(name, version)
                return
            ensure_release_image(self.client, app.name, app.id, release.version, slug.dir,
                                 labels=lbl.app_labels(self.platform.settings.state_dir,
                                                       app.name, app.id),
                                 lock_dir=self.platform.paths.root / "docker")
        except (docker.errors.DockerException, OSError) as err:
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise RuntimeFailure(f"could not make the image of {release.name}: "
                                 f"{detail}") from None

    def prune(self, app: App) -> Freed:
        """Images of releases beyond `releases_kept`, exited containers of releases no longer
        in play, build leftovers, dangling layers. Call with the app's deploy lock held."""
        store = self.platform.store
        keep = self.platform.settings.releases_kept
        in_play = {r.version for r in (store.current_release(app.id),
                                       store.pending_release(app.id)) if r is not None}
        versions = [r.version for r in store.releases(app.id, limit=keep)]
        # the release a deploy just replaced: its dynos are still being stopped
        stopping = {max((v for v in versions if v < min(in_play)), default=0)} if in_play \
            else set()
        with _engine_errors("prune the images of " + app.name):
            return self.gc.prune_app(app.id, versions, keep, in_play, stopping)

    def destroy(self, app_id: int) -> Freed:
        with _engine_errors("remove the app's images and containers"):
            return self.gc.remove_app(app_id)

    def orphans(self) -> Freed:
        with _engine_errors("remove what destroyed apps left"):
            return self.gc.remove_orphans({app.id for app in self.platform.store.apps()})


    def cancel_builds(self, app_id: int) -> int:
        """Kill the app's running build containers (a buildpack build's, a Dockerfile
        build's network holder: both carry the build labels)."""
        import docker.errors

        try:
            running = self.client.containers.list(filters=lbl.app_filter(
                self.platform.settings.state_dir, app_id, f"{lbl.BUILD}=1"))
        except (RuntimeFailure, docker.errors.DockerException) as err:
            log.warning("builds:cancel could not list build containers: %s", err)
            return 0
        killed = 0
        for container in running:
            try:
                container.kill()
                killed += 1
            except docker.errors.DockerException:  # already gone: its build ends by itself
                pass
        return killed


@contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """An engine error is one line (RuntimeFailure), never a traceback."""
    import docker.errors

    try:
        yield
    except docker.errors.DockerException as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RuntimeFailure(f"Could not {doing}: {detail}") from None


def ensure_stack(settings: Settings, say: Callable[[str], None]) -> None:
    """The stack image, built now (with `stack:build`'s progress lines) if missing; one
    line (StackError) when no engine answers."""
    from ... import stack

    client = stack.engine()
    builder = stack.StackBuilder(client, settings.state_dir / "tmp", say)
    if builder.existing(settings.stack) is None:
        builder.build(settings.stack)
