"""Cutting a release and waiting for it to serve: shared by git push, config changes and
rollback, so all three roll out the same (zero-downtime) way."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .dynostatus import read_failure, wait_release
from .errors import ReleaseFailed
from .logs import AppLog
from .models import App, Release, Slug
from .platform import Platform


def app_log(platform: Platform, app: App) -> AppLog:
    return AppLog(platform.paths.log_file(app.id), platform.settings.log_max_bytes)


def rollout_timeout(platform: Platform) -> float:
    settings = platform.settings
    return settings.boot_timeout + settings.stop_timeout + 30.0


def release(platform: Platform, app: App, *, description: str, user: str,
            slug: Slug | None = None, config_set: dict[str, str] | None = None,
            config_unset: list[str] | None = None, base: Release | None = None,
            wait: bool = True) -> Release:
    """Cut the next release, tell the supervisor, and (if the platform runs) wait for it.

    Raises ReleaseFailed when the new release's dynos did not come up: the previous release
    keeps serving. A release still rolling out for the app is waited for first, so a config
    change during a deploy lands on top of the new code instead of replacing it.
    """
    if platform.running:
        settle(platform, app)
    new = platform.store.create_release(app.id, description=description, user=user, slug=slug,
                                        config_set=config_set, config_unset=config_unset,
                                        base=base)
    app_log(platform, app).write("pushd", "api", f"Release {new.name} created by user {user}: "
                                 f"{description}")
    platform.notify()
    if new.status != "pending" or not wait or not platform.running:
        return new
    done = wait_release(platform.store, app.id, new.version, rollout_timeout(platform),
                        poll=0.05)
    if done.status in ("failed", "superseded"):
        reason, output = read_failure(platform.paths, app.id, new.version) or (
            "its dynos did not come up (see `logs`)", [])
        successor = _successor_with_same_slug(platform, app, new, reason)
        if successor is not None:
            return successor  # a newer release carries this one's code: it is live
        serving = platform.store.current_release(app.id)
        after = "the previous release keeps serving" if serving else "nothing was serving before"
        raise ReleaseFailed(f"Release {new.name} failed: {reason}; {after}",
                            [f"app[{reason.split(' ', 1)[0]}]: {line}" for line in output])
    if done.status == "pending":
        raise ReleaseFailed(f"Release {new.name} is still starting after "
                            f"{rollout_timeout(platform):.0f}s")
    return done


def settle(platform: Platform, app: App) -> None:
    """Wait (up to a rollout's time) while a release of the app is still rolling out."""
    deadline = time.monotonic() + rollout_timeout(platform)
    while platform.store.pending_release(app.id) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def _successor_with_same_slug(platform: Platform, app: App, release: Release,
                              reason: str) -> Release | None:
    """For a release superseded by a newer one (two changes at once): that newer release,
    once live, if it runs the same slug (it then holds this release's change too)."""
    match = re.fullmatch(r"superseded by v(\d+)", reason)
    if match is None:
        return None
    newer = wait_release(platform.store, app.id, int(match[1]), rollout_timeout(platform),
                         poll=0.05)
    ok = newer.status == "succeeded" and newer.slug_id == release.slug_id
    return newer if ok else None


def prune_slugs(platform: Platform, app: App, log: Callable[[str], None] | None = None) -> None:
    """Keep the slugs of the newest `releases_kept` releases (and the serving one)."""
    store = platform.store
    for slug in store.slugs_to_prune(app.id, platform.settings.releases_kept):
        store.delete_slug(slug.id)
        Path(slug.path).unlink(missing_ok=True)
        shutil.rmtree(slug.dir, ignore_errors=True)
        if log:
            log(f"Removed old slug {slug.id}")
