"""The Docker engine as the docker runtime sees it: one client, the labels every container
and image pushd makes carries, and the label that keeps two pushd instances (two state dirs:
staging beside production, parallel test runs) from ever seeing each other's containers."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

from ...errors import RuntimeFailure

APP = "io.pushd.app"
APP_ID = "io.pushd.app_id"
RELEASE = "io.pushd.release"
TYPE = "io.pushd.type"
DYNO = "io.pushd.dyno"
ID = "io.pushd.id"
INSTANCE = "io.pushd.instance"  # which state dir made it
ONEOFF = "io.pushd.oneoff"  # "pid:start" of the process running the one-off
SLUG = "io.pushd.slug"  # the slug folder a release image was made from


class DockerFailure(RuntimeFailure):
    """The engine refused or is not there; the message is one line."""


def instance_id(state_dir: Path) -> str:
    """A short stable name for one pushd instance: a digest of its state dir."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]


def connect() -> Any:
    """A client of the local engine, or DockerFailure in one line."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        raise DockerFailure("no Docker engine answers (start dockerd: "
                            f"scripts/lib/docker-engine.sh); {one_line(err)}") from None
    return client


def one_line(err: BaseException) -> str:
    text = str(getattr(err, "explanation", None) or err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:200]


def container_name(app: str, process_type: str, index: int, release: int, dyno_id: str) -> str:
    """`pushd.<app>.<type>.<n>.v<release>.<suffix>`: the suffix (from the dyno id) keeps a
    successor and a second instance of the same slot apart."""
    suffix = dyno_id.rsplit("-", 1)[-1]
    return f"pushd.{app}.{process_type}.{index}.v{release}.{suffix}"


def docker_time(stamp: str | None) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, `Z`) as seconds; 0.0 for Go's zero time."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    return nanoseconds(stamp) / 1e9


def nanoseconds(stamp: str) -> int:
    """`2026-11-28T10:17:46.932097451Z` as integer nanoseconds since the epoch (exactly: a
    float cannot tell two log lines a few nanoseconds apart)."""
    stamp = stamp.strip()
    zone = "+00:00"
    if stamp.endswith("Z"):
        stamp = stamp[:-1]
    elif len(stamp) > 6 and stamp[-6] in "+-":
        stamp, zone = stamp[:-6], stamp[-6:]
    whole, _, fraction = stamp.partition(".")
    moment = dt.datetime.fromisoformat(whole + zone)
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9])
