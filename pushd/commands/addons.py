"""addons, addons:create, addons:info, addons:attach, addons:detach, addons:destroy,
addons:credentials:rotate, addons:backup, addons:backups, addons:restore; providers:add."""

from __future__ import annotations

import time

from .. import metrics
from ..addons import service
from ..addons.base import AddonError, kinds
from ..addons.postgres import parse_server
from ..errors import Forbidden, InvalidValue, PushdError, UsageError
from ..models import App
from ..store_addons import Addon
from .registry import Context, command, no_more, one_arg, parse_options

AS_OPTION = {"--as": "as"}
CONFIRM = {"--confirm": "confirm"}


def _addon(ctx: Context, name: str, owner: bool = False) -> Addon:
    """An add-on the caller may act on: attached to an app they can reach (`owner`: its
    owning app, for what changes or removes its data or credentials)."""
    addon = ctx.store.addon(service.addon_name(name))
    apps = {addon.app_id} | ({a.app_id for a in ctx.store.attachments(addon=addon.name)}
                             if not owner else set())
    if not any((app := ctx.store.app_by_id(i)) is not None and ctx.can_access(app)
               for i in apps):
        raise Forbidden(f"You do not have access to the add-on {name}")
    return addon


def _app_names(ctx: Context, addon: Addon) -> list[str]:
    out = []
    for att in ctx.store.attachments(addon=addon.name):
        app = ctx.store.app_by_id(att.app_id)
        if app is not None:
            out.append(f"{app.name}::{att.name}")
    return out


@command("addons:create", "APP postgres|redis [--as NAME]",
         "Create an add-on and attach it as NAME_URL (DATABASE_URL, REDIS_URL)",
         options=AS_OPTION)
def addons_create(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, AS_OPTION, {})
    kind = one_arg(rest, "addons:create", f"a service: {' or '.join(kinds())}")
    ctx.out(f"Creating {kind} on {app.name}... ")
    addon, att, new = service.create(ctx.platform, app, kind, opts.get("as"), ctx.user.name)
    ctx.line(f"done, {new.name}")
    ctx.line(f"Created {addon.name} as {att.var}")


@command("addons", "[APP]", "List add-ons (of an app, or every one you can reach)", app=False)
def addons_list(ctx: Context, args: list[str]) -> None:
    opts, rest = parse_options(args, {"-a": "app", "--app": "app"}, {})
    no_more(rest[1:])
    name = opts.get("app") or (rest[0] if rest else None)
    app = ctx.app(name) if name else None
    shown = []
    for addon in ctx.store.addons():
        atts = ctx.store.attachments(addon=addon.name)
        if app is not None and app.id not in {a.app_id for a in atts} | {addon.app_id}:
            continue
        owner = ctx.store.app_by_id(addon.app_id)
        if app is None and (owner is None or not ctx.can_access(owner)):
            continue
        shown.append((addon, owner.name if owner else "?", ", ".join(_app_names(ctx, addon))))
    if not shown:
        ctx.line(f"No add-ons for app {app.name}." if app else "No add-ons.")
        return
    ctx.line(f"{'Add-on':<28} {'Kind':<9} {'Owner':<20} Attachments")
    for addon, owner, attached in shown:
        ctx.line(f"{addon.name:<28} {addon.kind:<9} {owner:<20} {attached or '-'}")


@command("addons:info", "ADDON", "Show an add-on (never its password)", app=False)
def addons_info(ctx: Context, args: list[str]) -> None:
    addon = _addon(ctx, one_arg(args, "addons:info", "one ADDON"))
    owner = ctx.store.app_by_id(addon.app_id)
    ctx.line(f"=== {addon.name}")
    rows = {"Attachments": ", ".join(_app_names(ctx, addon)) or "-",
            "Installed at": time.strftime("%Y-%m-%d %H:%M:%S %z",
                                          time.localtime(addon.created_at)),
            "Owning app": owner.name if owner else "-", "Service": addon.kind,
            **service.provider(ctx.platform, addon.kind).info(addon.state)}
    width = max(len(k) for k in rows) + 2
    for key, value in rows.items():
        ctx.line(f"{key + ':':<{width}}{value}")


@command("addons:attach", "ADDON -a APP [--as NAME]", "Attach an existing add-on to an app",
         options=AS_OPTION)
def addons_attach(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, AS_OPTION, {})
    addon = _addon(ctx, one_arg(rest, "addons:attach", "one ADDON"))
    ctx.out(f"Attaching {addon.name} to {app.name}... ")
    att, new = service.attach_named(ctx.platform, addon, app, opts.get("as"), ctx.user.name)
    ctx.line(f"done, {new.name}")
    ctx.line(f"Setting {att.var} config vars and restarting {app.name}... done, {new.name}")


@command("addons:detach", "NAME -a APP", "Detach an attachment (DATABASE) from an app")
def addons_detach(ctx: Context, app: App, args: list[str]) -> None:
    att = service.find_attachment(ctx.platform, app, one_arg(args, "addons:detach", "a NAME"))
    if len(ctx.store.attachments(addon=att.addon)) == 1:
        raise UsageError(f"{att.addon} is attached to {app.name} only; use addons:destroy "
                         f"{att.addon} --confirm {app.name}")
    ctx.out(f"Detaching {att.name} to {att.addon} from {app.name}... ")
    new = service.detach(ctx.platform, app, att, ctx.user.name)
    ctx.line(f"done, {new.name}")
    ctx.line(f"Unsetting {att.var} config vars and restarting {app.name}... done, {new.name}")


@command("addons:destroy", "ADDON --confirm APP", "Destroy an add-on and all its data",
         app=False, options=CONFIRM)
def addons_destroy(ctx: Context, args: list[str]) -> None:
    opts, rest = parse_options(args, CONFIRM, {})
    addon = _addon(ctx, one_arg(rest, "addons:destroy", "one ADDON"), owner=True)
    owner = ctx.store.app_by_id(addon.app_id)
    owner_name = owner.name if owner else addon.name
    if opts.get("confirm") != owner_name:
        raise UsageError(f"This destroys {addon.name} and all its data. To proceed, type: "
                         f"addons:destroy {addon.name} --confirm {owner_name}")
    ctx.out(f"Destroying {addon.name} on {owner_name}... ")
    warnings = service.destroy(ctx.platform, addon, ctx.user.name)
    ctx.line("done")
    for warning in warnings:
        ctx.err(f" !    {warning}\n")


@command("addons:credentials:rotate", "ADDON",
         "New credentials; attached apps roll onto them, then the old ones are revoked",
         app=False)
def addons_rotate(ctx: Context, args: list[str]) -> None:
    addon = _addon(ctx, one_arg(args, "addons:credentials:rotate", "one ADDON"), owner=True)
    ctx.out(f"Rotating credentials of {addon.name}... ")
    try:
        releases = service.rotate(ctx.platform, addon, ctx.user.name)
    except PushdError:
        metrics.addon_rotations.labels(addon.kind, "failed").inc()
        raise
    metrics.addon_rotations.labels(addon.kind, "ok").inc()
    ctx.line(f"done, {', '.join(r.name for r in releases) or 'no app attached'}")


@command("addons:backup", "ADDON", "Snapshot an add-on's data (pg_dump, Redis RDB)", app=False)
def addons_backup(ctx: Context, args: list[str]) -> None:
    addon = _addon(ctx, one_arg(args, "addons:backup", "one ADDON"), owner=True)
    ctx.out(f"Backing up {addon.name}... ")
    path = service.backup(ctx.platform, addon)
    ctx.line(f"done, {path.stem}")


@command("addons:backups", "ADDON", "List an add-on's backups", app=False)
def addons_backups(ctx: Context, args: list[str]) -> None:
    addon = _addon(ctx, one_arg(args, "addons:backups", "one ADDON"))
    ctx.line(f"=== Backups of {addon.name}")
    for path in service.backups(ctx.platform, addon):
        stat = path.stat()
        when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(stat.st_mtime))
        ctx.line(f"{path.stem}  {when}  {stat.st_size} bytes")


@command("addons:restore", "ADDON BACKUP", "Restore a backup into the same add-on", app=False)
def addons_restore(ctx: Context, args: list[str]) -> None:
    if len(args) != 2:
        raise UsageError("addons:restore needs ADDON and BACKUP (see addons:backups)")
    addon = _addon(ctx, args[0], owner=True)
    ctx.out(f"Restoring {args[1]} into {addon.name}... ")
    service.restore(ctx.platform, addon, args[1])
    ctx.line("done")


@command("providers:add", "postgres URL", "Use an external server for new add-ons of a kind",
         app=False, admin=True)
def providers_add(ctx: Context, args: list[str]) -> None:
    if len(args) != 2 or args[0] != "postgres":
        raise UsageError("providers:add takes postgres and the server's admin URL")
    try:
        parse_server(args[1])
    except AddonError as err:
        raise InvalidValue(str(err)) from None
    ctx.store.set_addon_server(args[0], args[1])
    ctx.line(f"New {args[0]} add-ons go to the server at {args[1].rsplit('@', 1)[-1]}")


@command("providers:remove", "postgres", "New add-ons of a kind go to pushd's own server again",
         app=False, admin=True)
def providers_remove(ctx: Context, args: list[str]) -> None:
    kind = one_arg(args, "providers:remove", "a kind")
    ctx.store.set_addon_server(kind, None)
    ctx.line(f"New {kind} add-ons go to pushd's own server")
