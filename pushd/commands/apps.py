"""apps, apps:create, apps:destroy, apps:info, apps:rename."""

from __future__ import annotations

import shutil

from .. import names
from ..appfiles import deploy_lock, ensure_repo
from ..appids import reusable
from ..build.slug import size_text
from ..dynostatus import router_state, wait_router
from ..errors import Conflict, Forbidden, RuntimeFailure, UsageError
from ..governance import enforce
from ..models import App, Key
from ..platform import Platform
from .registry import Context, command, no_more, one_arg, parse_options


def create_app(platform: Platform, name: str, owner: Key) -> App:
    """Create an app with its bare repo; the one place apps come into being. The row comes
    first: if we die before the repo exists, the first push or clone makes it."""
    names.app_name(name)
    app = platform.store.create_app(name, owner.name,
                                    usable=reusable(platform.settings, platform.paths),
                                    admin=owner.is_admin,
                                    admit=enforce.admit_app(platform, owner))
    with deploy_lock(platform, app, lambda _text: None):
        ensure_repo(platform, app)
    return app


def git_url(ctx: Context, app: App) -> str:
    return f"ssh://git@{ctx.ssh_target}/{app.name}"


@command("apps", "", "List the apps you can act on", app=False)
def apps_list(ctx: Context, args: list[str]) -> None:
    if args:
        raise UsageError("apps takes no arguments")
    ctx.line("=== Apps")
    for app in ctx.store.apps():
        if ctx.can_access(app):
            ctx.line(app.name)


@command("apps:create", "NAME", "Create an app (pushing to a new name creates it too)", app=False,
         names_app=True)
def apps_create(ctx: Context, args: list[str]) -> None:
    _, positional = parse_options(args, {}, {})
    if len(positional) != 1:
        raise UsageError("apps:create needs exactly one app name")
    names.app_name(positional[0])
    ctx.out(f"Creating {positional[0]}... ")
    app = create_app(ctx.platform, positional[0], ctx.user)
    ctx.line("done")
    ctx.line(f"{ctx.platform.app_url(app.name)} | {git_url(ctx, app)}")


CONFIRM_OPTION = {"--confirm": "confirm", "-c": "confirm"}


@command("apps:destroy", "APP --confirm APP [--force]", "Destroy an app: dynos, repo, slugs, "
         "cache, config and logs (--force: and its add-ons)", options=CONFIRM_OPTION)
def apps_destroy(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, CONFIRM_OPTION, {"--force": "force"})
    no_more(rest)
    if app.owner != ctx.user.name and not ctx.user.is_admin:
        raise Forbidden(f"Only the owner of {app.name} or an admin can destroy it")
    if opts.get("confirm") != app.name:
        raise UsageError(f"This destroys {app.name} and everything in it. To proceed, "
                         f"type: apps:destroy {app.name} --confirm {app.name}")
    platform = ctx.platform
    from ..addons.service import release_app_addons

    release_app_addons(platform, app, bool(opts.get("force")), ctx.user.name)
    # a push in progress holds the lock: refuse rather than pull its app from under it
    with deploy_lock(platform, app, ctx.err, wait=False):
        ctx.out(f"Destroying {app.name} (including all add-ons)... ")
        _stop_dynos(platform, app)  # first: if they will not stop, the app is still whole
        hosts = {f"{app.name}.{platform.settings.domain}", *platform.store.domains(app.id)}
        platform.support.destroy(app.id)  # the app's images, containers and volumes
        platform.store.delete_app(app.id)
        try:
            platform.notify()
        finally:  # the row is gone: nothing would ever remove the folder later
            shutil.rmtree(platform.paths.app_dir(app.id), ignore_errors=True)
            platform.certs.forget(app.id)  # its id may go to a new app: no certificate with it
    if not _wait_unrouted(platform, hosts):
        ctx.out("(the router has not dropped it yet) ")
    ctx.line("done")


def _wait_unrouted(platform: Platform, hosts: set[str]) -> bool:
    """Wait until the running router serves none of `hosts` (its stopped dynos left them
    answering 503 until the supervisor saw the app go), so "done" means they are 404 now."""
    _, before = router_state(platform.paths)
    return wait_router(platform.paths, lambda served: not hosts & served, before)


def _stop_dynos(platform: Platform, app: App) -> None:
    """Stop every dyno of the app; RuntimeFailure, with nothing deleted, if they would not."""
    try:
        platform.the_supervisor().stop_all(app.id)
    except RuntimeFailure:
        raise RuntimeFailure(f"Timed out stopping the dynos of {app.name}; nothing was "
                             f"deleted: run apps:destroy {app.name} again") from None


@command("apps:info", "APP", "Show an app's details")
def apps_info(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    store = ctx.store
    current = store.current_release(app.id)
    rows = [("Owner", app.owner),
            ("Collaborators", ", ".join(store.collaborators(app.id)) or "-"),
            ("Git URL", git_url(ctx, app)),
            ("Web URL", ctx.platform.app_url(app.name)),
            ("Domains", ", ".join(store.domains(app.id)) or "-"),
            ("Deploy branch", app.deploy_branch or "-"),
            ("Buildpacks", ", ".join(app.buildpacks) or "(detected)"),
            ("Release", f"{current.name} ({current.description})" if current else "-"),
            ("Stack", ctx.platform.settings.stack),
            ("Status", "stopped" if app.stopped else "running")]
    if current and current.slug_id:
        slug = store.slug(current.slug_id)
        rows.append(("Slug size", size_text(slug.size)))
    formation = store.formation(app.id)
    rows.append(("Formation", ", ".join(f"{t}={q}" for t, q in formation.items()) or "-"))
    ctx.line(f"=== {app.name}")
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        ctx.line(f"{key + ':':<{width}}{value}")
    from .ps import dyno_lines

    lines = dyno_lines(ctx, app)
    if lines:
        ctx.line("")
        ctx.line("=== Dynos")
        for line in lines:
            ctx.line(line)


@command("apps:rename", "OLD NEW", "Rename an app (its URL changes with it; the old name "
         "stays yours for a while)")
def apps_rename(ctx: Context, app: App, args: list[str]) -> None:
    new = names.app_name(one_arg(args, "apps:rename", "the new name"))
    if app.owner != ctx.user.name and not ctx.user.is_admin:
        raise Forbidden(f"Only the owner of {app.name} or an admin can rename it")
    if new == app.name:
        raise Conflict(f"{app.name} is already called {new}")
    ctx.out(f"Renaming {app.name} to {new}... ")
    domain = ctx.platform.settings.domain
    _, before = router_state(ctx.platform.paths)
    ctx.store.rename_app(app.id, new, by=ctx.user.name, admin=ctx.user.is_admin,
                         hold_seconds=ctx.platform.settings.rename_hold_hours * 3600)
    ctx.platform.notify()
    # "done" means the new URL answers and the old one no longer does
    if not wait_router(ctx.platform.paths, lambda hosts: f"{new}.{domain}" in hosts
                       and f"{app.name}.{domain}" not in hosts, before):
        ctx.out("(the router has not picked it up yet) ")
    ctx.line("done")
    ctx.line(f"{ctx.platform.app_url(new)} | ssh://git@{ctx.ssh_target}/{new}")
