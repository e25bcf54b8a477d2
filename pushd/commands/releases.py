"""releases, releases:info, rollback."""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import deploy, metrics, names, releasephase
from ..dynostatus import read_failure
from ..errors import NotFound, UsageError
from ..governance import enforce
from ..models import App, Release
from .config import show_vars
from .registry import Context, command, no_more, number_option, parse_options


def when(ts: float) -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(ts))


def status_note(release: Release, why: str | None = None) -> str:
    if release.status == "failed" and why == deploy.RELEASE_COMMAND_FAILED:
        return f" ({why})"
    return {"failed": " (failed)", "pending": " (deploying)", "releasing": " (releasing)",
            "superseded": " (superseded)"}.get(release.status, "")


def _why(ctx: Context, app: App, release: Release) -> str | None:
    failure = read_failure(ctx.platform.paths, app.id, release.version)
    return failure[0] if failure else None


NUM_OPTION = {"-n": "num", "--num": "num"}


@command("releases", "APP [-n NUM]", "List the app's releases, newest first",
         options=NUM_OPTION)
def releases_list(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, NUM_OPTION, {})
    no_more(rest)
    limit = number_option(opts, "num", "-n", 15)
    releases = ctx.store.releases(app.id, limit)
    ctx.line(f"=== {app.name} Releases")
    if not releases:
        ctx.line("(no releases yet: git push to deploy)")
        return
    current = ctx.store.current_release(app.id)
    rows = [(r.name, r.description + status_note(r, _why(ctx, app, r)), r.user, when(r.created_at),
             "*" if current and current.version == r.version else "") for r in releases]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, desc, user, stamp, mark in rows:
        ctx.line(f"{name:<{widths[0]}}  {desc:<{widths[1]}}  {user:<{widths[2]}}  {stamp}"
                 f"{'  ' + '(current)' if mark else ''}")


def _named_release(ctx: Context, app: App, args: list[str], command: str,
                   default: Callable[[], Release | None]) -> Release:
    """The release `args` names (vN), else `default()`; NotFound when the app has none."""
    if len(args) > 1:
        raise UsageError(f"{command} takes one release")
    release = ctx.store.release(app.id, names.release_version(args[0])) if args else default()
    if release is None:
        raise NotFound(f"{app.name} has no release yet")
    return release


@command("releases:info", "APP [vN]", "Show one release (default: the current one)")
def releases_info(ctx: Context, app: App, args: list[str]) -> None:
    release = _named_release(ctx, app, args, "releases:info",
                             lambda: ctx.store.current_release(app.id))
    ctx.line(f"=== Release {release.name}")
    rows = [("Add-ons", "-"), ("By", release.user), ("Change", release.description),
            ("Commit", release.commit or "-"), ("Status", release.status),
            ("When", when(release.created_at)),
            ("Process types", ", ".join(release.process_types) or "-")]
    if release.slug_id:
        rows.append(("Slug", release.slug_id))
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        ctx.line(f"{key + ':':<{width}}{value}")
    ctx.line("")
    ctx.line(f"=== {release.name} Config vars")
    show_vars(ctx, release.config)


@command("releases:output", "APP [vN]",
         "Print a release's release phase output (default: the newest release)")
def releases_output(ctx: Context, app: App, args: list[str]) -> None:
    release = _named_release(ctx, app, args, "releases:output",
                             lambda: next(iter(ctx.store.releases(app.id, limit=1)), None))
    output = releasephase.read_output(ctx.platform, app.id, release.version)
    if output is None:
        raise NotFound(f"{release.name} ran no release command")
    ctx.out(output)


@command("rollback", "APP [vN]", "Roll back to a kept release (default: the previous one)")
def rollback(ctx: Context, app: App, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("rollback takes one release")
    store = ctx.store
    current = store.current_release(app.id)
    if current is None:
        raise NotFound(f"{app.name} has no release to roll back from")
    if args:
        target = store.release(app.id, names.release_version(args[0]))
    else:
        older = [r for r in store.releases(app.id, 1000)
                 if r.version < current.version and r.status == "succeeded"]
        if not older:
            raise NotFound(f"{app.name} has no earlier release to roll back to")
        target = older[0]
    if target.slug_id:
        try:
            store.slug(target.slug_id)
        except NotFound:
            raise NotFound(f"The slug of {target.name} is no longer kept; deploy again") from None
    enforce.check_rollback(ctx.platform, app, target)
    ctx.out(f"Rolling back {app.name} to {target.name}... ")
    metrics.rollbacks.labels(app.name).inc()
    new = deploy.release(ctx.platform, app, description=f"Rollback to {target.name}",
                         user=ctx.user.name, base=target, out=ctx.err,
                         slug=store.slug(target.slug_id) if target.slug_id else None)
    ctx.line(f"done, {new.name}")
