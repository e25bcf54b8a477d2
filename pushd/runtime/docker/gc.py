"""No disk leaks: what the engine holds for this pushd instance and no longer needs.

- `prune_app` (after each deploy, under the app's deploy lock, and by `pushd gc`): release
  images beyond the retention count (`releases_kept`, the serving and a rolling-out release
  always kept), exited containers of releases no longer in play, leftover build containers,
  and this instance's dangling layers;
- `remove_app` (`apps:destroy`): every image, container and volume of the app;
- `remove_orphans` (`pushd gc`): what belongs to app ids this instance no longer has.

Only objects labelled with this instance (`labels.INSTANCE`) are ever touched: never another
pushd's, never the stack image, never anything pushd did not make.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from ..support import Freed
from . import labels as lbl

TAG_RE = re.compile(r"^pushd/[^:]+:v(\d+)$")


def kept_versions(versions: Iterable[int], keep: int, in_play: Collection[int]) -> set[int]:
    """The newest `keep` release versions, plus those in play (serving, rolling out)."""
    return set(sorted(versions, reverse=True)[:max(keep, 0)]) | set(in_play)


def stale_tags(tags: Iterable[str], kept: Collection[int]) -> list[str]:
    """Release tags (`pushd/<app>:v<N>`) of versions not kept."""
    stale = []
    for tag in tags:
        matched = TAG_RE.match(tag)
        if matched and int(matched.group(1)) not in kept:
            stale.append(tag)
    return stale


class EngineGC:
    """The engine's objects of one pushd instance (`state_dir`), through `client`."""

    def __init__(self, client: Any, state_dir: Path) -> None:
        self.client = client
        self.state_dir = state_dir

    def prune_app(self, app_id: int, versions: Iterable[int], keep: int,
                  in_play: Collection[int], stopping: Collection[int] = ()) -> Freed:
        """Call with the app's deploy lock held (no build of it runs). Exited containers of
        `stopping` releases (the one a deploy just replaced) are the runtime's to read and
        remove."""
        freed = Freed()
        spared = set(in_play) | set(stopping)
        kept = kept_versions(versions, keep, in_play)
        for image in self._images(lbl.app_filter(self.state_dir, app_id)):
            freed.add(self._untag(image, stale_tags(image.tags, kept)))
        for container in self._containers(lbl.app_filter(self.state_dir, app_id)):
            state = container.get("State", "")
            labels = container.get("Labels") or {}
            release = labels.get(lbl.RELEASE, "")
            if labels.get(lbl.BUILD) or (
                    state in ("exited", "dead", "created")
                    and not (release.isdigit() and int(release) in spared)):
                freed.add(self._remove_container(container))
        freed.add(self.prune_dangling())
        return freed

    def remove_app(self, app_id: int) -> Freed:
        """Every container, image and volume of the app (its dynos are stopped already)."""
        freed = Freed()
        for container in self._containers(lbl.app_filter(self.state_dir, app_id)):
            freed.add(self._remove_container(container))
        for image in self._images(lbl.app_filter(self.state_dir, app_id)):
            freed.add(self._untag(image, image.tags, force=True))
        freed.add(self._remove_volumes(lbl.app_filter(self.state_dir, app_id)))
        freed.add(self.prune_dangling())
        return freed

    def remove_orphans(self, app_ids: Collection[int]) -> Freed:
        """Objects of app ids this instance does not have (destroyed while the engine was
        down, or by an older pushd)."""
        freed = Freed()
        orphans = set()
        for container in self._containers(lbl.instance_filter(self.state_dir)):
            if _app_id(container.get("Labels")) not in app_ids:
                orphans.add(_app_id(container.get("Labels")))
        for image in self._images(lbl.instance_filter(self.state_dir)):
            if _app_id(image.labels) not in app_ids:
                orphans.add(_app_id(image.labels))
        for volume in self._volumes(lbl.instance_filter(self.state_dir)):
            if _app_id(volume.attrs.get("Labels")) not in app_ids:
                orphans.add(_app_id(volume.attrs.get("Labels")))
        for app_id in orphans - {None}:
            freed.add(self.remove_app(app_id))  # type: ignore[arg-type]
        return freed

    def prune_dangling(self) -> Freed:
        """Untagged images of this instance (a tag moved by a rebuild of the same release)."""
        import docker.errors

        filters = {**lbl.instance_filter(self.state_dir), "dangling": True}
        try:
            done = self.client.images.prune(filters=filters)
        except docker.errors.APIError:
            return Freed()  # another prune runs: the next one catches these
        return Freed(images=len([d for d in done.get("ImagesDeleted") or [] if "Deleted" in d]),
                     bytes=int(done.get("SpaceReclaimed") or 0))

    def _images(self, filters: dict) -> list[Any]:
        return list(self.client.images.list(filters=filters))

    def _containers(self, filters: dict) -> list[dict]:
        return list(self.client.api.containers(all=True, size=True, filters=filters))

    def _volumes(self, filters: dict) -> list[Any]:
        return list(self.client.volumes.list(filters=filters))

    def _untag(self, image: Any, tags: Iterable[str], force: bool = False) -> Freed:
        """Drop `tags`; the image (its own layer: its size less its parent's) is freed once
        its last tag goes."""
        import docker.errors

        tags = list(tags)
        if not tags and not force:
            return Freed()
        own = self._own_size(image)
        deleted = False
        for tag in tags or [image.id]:
            with contextlib.suppress(docker.errors.NotFound):
                done = self.client.api.remove_image(tag, force=force)
                deleted = deleted or any("Deleted" in d for d in done or [])
        return Freed(images=1, bytes=own) if deleted else Freed()

    def _own_size(self, image: Any) -> int:
        import docker.errors

        size = int(image.attrs.get("Size") or 0)
        parent = image.attrs.get("Parent") or ""
        base = 0
        if parent:
            with contextlib.suppress(docker.errors.ImageNotFound):
                base = int(self.client.images.get(parent).attrs.get("Size") or 0)
        else:  # committed images name no parent: their base is the stack they were made on
            layers = image.attrs.get("RootFS", {}).get("Layers") or []
            base = self._stack_size(layers)
        return max(size - base, 0)

    def _stack_size(self, layers: list[str]) -> int:
        import docker.errors

        from ...settings import Settings
        from ...stack import image_name

        with contextlib.suppress(docker.errors.ImageNotFound):
            stack = self.client.images.get(image_name(Settings().stack))
            theirs = stack.attrs.get("RootFS", {}).get("Layers") or []
            if layers[:len(theirs)] == theirs:
                return int(stack.attrs.get("Size") or 0)
        return 0

    def _remove_container(self, row: dict) -> Freed:
        import docker.errors

        try:
            self.client.api.remove_container(row["Id"], force=True, v=True)
        except docker.errors.NotFound:
            return Freed()
        except docker.errors.APIError as err:
            if err.status_code == 409:  # being removed already (a build container's removal)
                return Freed()
            raise
        return Freed(containers=1, bytes=int(row.get("SizeRw") or 0))

    def _remove_volumes(self, filters: dict) -> Freed:
        import docker.errors

        freed = Freed()
        for volume in self._volumes(filters):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
                freed.volumes += 1
        return freed


def _app_id(labels: dict | None) -> int | None:
    value = (labels or {}).get(lbl.APP_ID, "")
    return int(value) if value.isdigit() else None
