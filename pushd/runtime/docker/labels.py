"""The labels every image, container and volume pushd makes carries, and the filters that find
them again: `pushd gc` and `apps:destroy` touch only objects of this pushd instance.

Several pushd instances (a test's, another state dir's) may share one engine, and their app
ids and names overlap; `io.pushd.instance` (a hash of the state dir, as the build cgroups and
the firewall table use) tells them apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

APP = "io.pushd.app"
APP_ID = "io.pushd.app_id"
INSTANCE = "io.pushd.instance"
RELEASE = "io.pushd.release"
SLUG = "io.pushd.slug"  # the slug folder a release image was made from
BUILD = "io.pushd.build"
TYPE = "io.pushd.type"
DYNO = "io.pushd.dyno"
ID = "io.pushd.id"  # the DynoSpec id
ONEOFF = "io.pushd.oneoff"  # "pid:start" of the process running the one-off


def instance(state_dir: Path) -> str:
    """A digest of the (resolved) state dir: the same value the docker runtime labels its
    dyno containers with."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]


def app_labels(state_dir: Path, app: str, app_id: int) -> dict[str, str]:
    return {INSTANCE: instance(state_dir), APP: app, APP_ID: str(app_id)}


def build_labels(state_dir: Path, app: str, app_id: int) -> dict[str, str]:
    return {**app_labels(state_dir, app, app_id), BUILD: "1"}


def instance_filter(state_dir: Path, *more: str) -> dict[str, list[str]]:
    """An engine `filters` value: objects of this instance (and `more`, `key=value`)."""
    return {"label": [f"{INSTANCE}={instance(state_dir)}", *more]}


def app_filter(state_dir: Path, app_id: int, *more: str) -> dict[str, list[str]]:
    return instance_filter(state_dir, f"{APP_ID}={app_id}", *more)
