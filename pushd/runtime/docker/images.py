"""Release images: `pushd/<app>:v<N>` = the stack image + the release's slug at `/app`.

Made with the SDK alone, no Dockerfile, no build context and no container: the slug becomes
one layer (a tar stream, owners and modes kept: the slug belongs to the app's uid, so `/app`
does too) on top of the stack's layers, loaded with the engine's image-load call as an image
whose config is the stack's plus the labels gc and `apps:destroy` look for. The stack's
layers are named by their digests, not sent: the engine has them, so it registers just the
slug's layer (about half the time of a container made, filled and committed). Idempotent: an
image with the tag and the same slug is reused. Safe under concurrent starts: one maker at a
time per state dir (a lock file), and callers start containers from the image *id* returned
by `release_image`, so a tag moved by another pushd instance afterwards never changes what a
dyno runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...stack import image_name
from .client import APP, APP_ID, INSTANCE, RELEASE, SLUG, DockerFailure, one_line

DEFAULT_STACK = "pushd-22"
_THREAD_LOCK = threading.Lock()


def release_tag(app: str, release: int) -> str:
    return f"pushd/{app}:v{release}"


def ensure_release_image(client: Any, app: str, app_id: int, release: int, slug_dir: str,
                         stack: str = DEFAULT_STACK, labels: dict[str, str] | None = None,
                         lock_dir: Path | None = None) -> str:
    """The tag of the release image of `slug_dir`, made first if missing (or if the tag
    points at another slug's image, e.g. one an app of the same name left in another state
    dir)."""
    release_image(client, app, app_id, release, slug_dir, stack, labels, lock_dir)
    return release_tag(app, release)


def release_image(client: Any, app: str, app_id: int, release: int, slug_dir: str,
                  stack: str = DEFAULT_STACK, labels: dict[str, str] | None = None,
                  lock_dir: Path | None = None) -> Any:
    """The release image itself (start containers from its `.id`)."""
    import docker

    tag = release_tag(app, release)
    slug = str(Path(slug_dir).resolve())
    with _making(lock_dir):
        with contextlib.suppress(docker.errors.ImageNotFound):
            image = client.images.get(tag)
            if image.labels.get(SLUG) == slug:
                return image
        wanted = {APP: app, APP_ID: str(app_id), RELEASE: str(release), SLUG: slug,
                  **(labels or {})}
        same_slug = _made_from(client, slug, wanted)
        if same_slug is not None:  # a config change or a rollback: another tag, no copy
            repository, _, version = tag.rpartition(":")
            same_slug.tag(repository, version)
            return same_slug
        if not Path(slug).is_dir():
            raise DockerFailure(f"The slug of {app} v{release} is gone ({slug})")
        try:
            return _load(client, image_name(stack), tag, slug, wanted)
        except docker.errors.ImageNotFound:
            raise DockerFailure(f"The stack image {image_name(stack)} is missing: run "
                                "`pushd stack:build`") from None
        except docker.errors.APIError as err:
            raise DockerFailure(f"Could not make the image {tag}: {one_line(err)}") from None


def _made_from(client: Any, slug: str, wanted: dict[str, str]) -> Any:
    """An image this instance already made of `slug` for this app, if any."""
    same = [f"{key}={wanted[key]}" for key in (APP_ID, SLUG, INSTANCE) if key in wanted]
    found = client.images.list(filters={"label": same})
    return found[0] if found else None


@contextlib.contextmanager
def _making(lock_dir: Path | None) -> Iterator[None]:
    """One image maker at a time: threads of this process, and processes on this state dir."""
    with _THREAD_LOCK:
        if lock_dir is None:
            yield
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / "images.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def image_config(stack: dict[str, Any], layer_digest: str, labels: dict[str, str],
                 created: str) -> dict[str, Any]:
    """The release image's config: the stack's (`stack`: its inspect data) with one more
    layer, the labels, `/app` as working dir and bash as the default command."""
    config = dict(stack.get("Config") or {})
    config.update(Labels={**(config.get("Labels") or {}), **labels}, WorkingDir="/app",
                  Cmd=["/bin/bash"])
    layers = [*stack["RootFS"]["Layers"], layer_digest]
    history = [{"created": created, "created_by": "pushd stack"}
               for _ in stack["RootFS"]["Layers"]]
    return {"architecture": stack.get("Architecture") or "amd64", "os": stack.get("Os") or
            "linux", "created": created, "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers},
            "history": [*history, {"created": created, "created_by": "pushd slug"}]}


def _load(client: Any, stack: str, tag: str, slug: str, labels: dict[str, str]) -> Any:
    """The image of `slug` on `stack`, loaded as a `docker save` archive of which only the
    slug's layer is present (the engine skips layers it has: the stack's)."""
    import docker.errors

    base = client.api.inspect_image(stack)  # ImageNotFound: the caller's one line
    with tempfile.TemporaryFile() as layer, tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=layer, mode="w") as tar:
            tar.add(slug, arcname="app")  # owners and modes as in the slug folder
        digest = hashlib.sha256()
        layer.seek(0)
        for block in iter(lambda: layer.read(1 << 20), b""):
            digest.update(block)
        layer_name = f"{digest.hexdigest()}/layer.tar"
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        config = json.dumps(image_config(base, f"sha256:{digest.hexdigest()}", labels,
                                         created)).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        stack_layers = [f"{d.split(':', 1)[1]}/layer.tar" for d in base["RootFS"]["Layers"]]
        manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                                "Layers": [*stack_layers, layer_name]}]).encode()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, blob in ((config_name, config), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
            info = tarfile.TarInfo(layer_name)
            info.size = layer.tell()
            layer.seek(0)
            tar.addfile(info, layer)
        archive.seek(0)
        for said in client.api.load_image(archive, quiet=True):
            if isinstance(said, dict) and said.get("error"):
                raise DockerFailure(f"Could not make the image {tag}: "
                                    f"{str(said['error']).splitlines()[0][:200]}")
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise DockerFailure(f"The engine did not keep the image {tag}") from None
