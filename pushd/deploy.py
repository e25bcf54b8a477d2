"""Cutting a release and waiting for it to serve: shared by git push, config changes and
rollback, so all three roll out the same (zero-downtime) way."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from . import health, releasephase
from .appjson import AppJson
from .dynostatus import read_failure, wait_release, write_failure
from .errors import ReleaseFailed, RuntimeFailure
from .logs import AppLog
from .models import App, Release, Slug
from .platform import Platform
from .testpause import pause


def app_log(platform: Platform, app: App) -> AppLog:
    return AppLog.shared(platform.paths.log_file(app.id), platform.settings.log_max_bytes)


def rollout_timeout(platform: Platform) -> float:
    settings = platform.settings
    return settings.boot_timeout + settings.stop_timeout + 30.0


def release(platform: Platform, app: App, *, description: str, user: str,
            slug: Slug | None = None, config_set: dict[str, str] | None = None,
            config_unset: list[str] | None = None, base: Release | None = None,
            wait: bool = True, out: Callable[[str], None] | None = None,
            manifest: AppJson | None = None, kind: str = "") -> Release:
    """Cut the next release, tell the supervisor, and (if the platform runs) wait for it.

    A new release with code runs its release phase first (`releasephase.py`, output to
    `out`; skipped for a release cut for an add-on change), in state `releasing`, which the
    supervisor does not start. `manifest`: the push's app.json (scripts); else the slug's.

    Raises ReleaseFailed when the new release's dynos did not come up: the previous release
    keeps serving. A release still rolling out for the app is waited for first, so a config
    change during a deploy lands on top of the new code instead of replacing it.
    """
    if platform.running and not settle(platform, app):
        raise ReleaseFailed("A release of this app is still rolling out; try again when it "
                            "is live (see `ps` and `logs`)")
    phase = platform.running and kind != "addon"  # add-on releases skip it, as on Heroku
    new = platform.store.create_release(app.id, description=description, user=user, slug=slug,
                                        config_set=config_set, config_unset=config_unset,
                                        base=base, kind=kind,
                                        status="releasing" if phase else "pending")
    phase = phase and new.status == "releasing"
    app_log(platform, app).write("pushd", "api", f"Release {new.name} created by user {user}: "
                                 f"{description}")
    if new.status == "pending":
        try:
            platform.support.release_cut(app, new)  # before the supervisor is told
        except RuntimeFailure as err:
            platform.store.set_release_status(app.id, new.version, "failed",
                                              only_if=new.status)
            raise ReleaseFailed(f"Release {new.name} failed: {err}") from None
    if new.status == "releasing":
        new = _release_phase(platform, app, new, manifest, out, phase)
    platform.notify()
    pause(platform, "after-launching")  # fault tests only
    if new.status != "pending" or not wait or not platform.running:
        return new
    done = wait_release(platform.store, app.id, new.version, rollout_timeout(platform),
                        poll=0.05)
    if done.status in ("failed", "superseded"):
        reason, output = read_failure(platform.paths, app.id, new.version) or (
            "its dynos did not come up (see `logs`)", [])
        successor = None if done.status != "superseded" else _carrying_successor(
            platform, app, new, config_only=slug is None and base is None)
        if successor is not None:
            return successor  # a newer release carries this one's change: it is live
        serving = platform.store.current_release(app.id)
        after = "the previous release keeps serving" if serving else "nothing was serving before"
        raise ReleaseFailed(f"Release {new.name} failed: {reason}; {after}",
                            [f"app[{reason.split(' ', 1)[0]}]: {line}" for line in output])
    if done.status == "pending":
        # given up: it must not go live later behind the back of a rejected push
        reason = f"its dynos were still starting after {rollout_timeout(platform):.0f}s"
        write_failure(platform.paths, app.id, new.version, reason, [])
        if platform.store.set_release_status(app.id, new.version, "failed", only_if="pending"):
            platform.notify()
            raise ReleaseFailed(f"Release {new.name} failed: {reason}")
        done = platform.store.release(app.id, new.version)  # it went live just now
    return done


def _release_phase(platform: Platform, app: App, new: Release, manifest: AppJson | None,
                   out: Callable[[str], None] | None, run: bool) -> Release:
    """Run vN's release phase; then it is `pending` for the supervisor, or failed."""
    if manifest is None:
        manifest = health.load(platform.paths, app.id, new.slug_id) if new.slug_id else None
    try:
        if run:
            releasephase.run(platform, app, new, manifest, out)
    except ReleaseFailed as err:
        write_failure(platform.paths, app.id, new.version, RELEASE_COMMAND_FAILED, [])
        platform.store.set_release_status(app.id, new.version, "failed", only_if="releasing")
        app_log(platform, app).write("pushd", "api", f"Release {new.name} failed: "
                                     f"{RELEASE_COMMAND_FAILED}")
        raise err from None
    except BaseException:
        platform.store.set_release_status(app.id, new.version, "failed", only_if="releasing")
        raise
    platform.store.set_release_status(app.id, new.version, "pending", only_if="releasing")
    return platform.store.release(app.id, new.version)


RELEASE_COMMAND_FAILED = "release command failed"


def settle(platform: Platform, app: App) -> bool:
    """Wait (up to a rollout's time) while a release of the app is still rolling out;
    whether none is any more."""
    deadline = time.monotonic() + rollout_timeout(platform)
    while platform.store.pending_release(app.id) is not None or releasing(platform, app):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def releasing(platform: Platform, app: App) -> bool:
    """Whether the app's newest release is in its release phase."""
    latest = platform.store.releases(app.id, limit=1)
    return bool(latest) and latest[0].status == "releasing"


def _carrying_successor(platform: Platform, app: App, release: Release,
                        config_only: bool) -> Release | None:
    """For a release superseded by newer ones (changes at once): the release serving once
    nothing newer rolls out, if it carries this one's change (the same slug; for a config
    change, its values: the config table is cumulative)."""
    settle(platform, app)
    serving = platform.store.current_release(app.id)
    if serving is None or serving.version < release.version:
        return None
    carried = serving.slug_id == release.slug_id or config_only and all(
        serving.config.get(k) == v for k, v in release.config.items())
    return serving if carried else None


def prune_slugs(platform: Platform, app: App, log: Callable[[str], None] | None = None) -> None:
    """Keep the slugs of the newest `releases_kept` releases (and the serving one)."""
    store = platform.store
    for slug in store.slugs_to_prune(app.id, platform.settings.releases_kept):
        store.delete_slug(slug.id)
        if slug.path:  # an image slug (Dockerfile deploy) has no tarball nor folder
            Path(slug.path).unlink(missing_ok=True)
        if slug.dir:
            shutil.rmtree(slug.dir, ignore_errors=True)
        if log:
            log(f"Removed old slug {slug.id}")
