"""Release images: `pushd/<app>:v<N>`, the stack image with the release's slug at /app.

Minimal version from the dockerbuild branch (helper dockerrun owns this module; the lead
reconciles the two at the merge). A release that reuses an earlier release's slug (a config
change, a rollback) gets a second tag on that slug's image: no copy, no build.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ...settings import Settings
from ...stack import image_name
from . import labels as lbl

REPOSITORY = "pushd"
APP_DIR = "/app"


def release_tag(app: str, release: int) -> str:
    return f"{REPOSITORY}/{app}:v{release}"


def ensure_release_image(client: Any, app: str, app_id: int, release: int, slug_dir: str,
                         *, labels: dict[str, str] | None = None) -> str:
    """The id of `pushd/<app>:v<release>`, made now if missing. `labels` (the instance's,
    `labels.app_labels`) go on what is made; the slug is the folder's name."""
    import docker.errors

    tag = release_tag(app, release)
    with contextlib.suppress(docker.errors.ImageNotFound):
        return str(client.images.get(tag).id)
    slug_id = Path(slug_dir).name
    wanted = {**(labels or {}), lbl.APP: app, lbl.APP_ID: str(app_id), lbl.SLUG: slug_id}
    same_slug = client.images.list(filters={"label": [f"{k}={v}" for k, v in wanted.items()]})
    if same_slug:
        same_slug[0].tag(f"{REPOSITORY}/{app}", f"v{release}")
        return str(same_slug[0].id)
    return _commit(client, app, release, Path(slug_dir), wanted)


def _commit(client: Any, app: str, release: int, slug_dir: Path, labels: dict[str, str]) -> str:
    """A container of the stack (never started) gets the slug's tarball at / (its entries
    are ./app/...), then is committed as the release's image."""
    tarball = slug_dir.with_name(f"{slug_dir.name}.tgz")
    base = image_name(Settings().stack)
    helper = client.containers.create(base, command=["true"], network_mode="none",
                                      labels={**labels, lbl.RELEASE: str(release)})
    try:
        with tarball.open("rb") as data:
            helper.put_archive("/", data)
        image = helper.commit(repository=f"{REPOSITORY}/{app}", tag=f"v{release}",
                              conf={"Labels": {**labels, lbl.RELEASE: str(release)},
                                    "WorkingDir": APP_DIR})
    finally:
        helper.remove(force=True)
    return str(image.id)
