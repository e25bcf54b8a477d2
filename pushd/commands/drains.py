"""drains, drains:add, drains:remove: an app's log stream shipped elsewhere."""

from __future__ import annotations

from ..drains import urls
from ..drains.manager import read_status, status_key
from ..errors import InvalidValue, NotFound
from ..models import App
from .registry import Context, command, no_more, one_arg


@command("drains", "APP", "List the app's log drains and how each is doing")
def drains_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    drains = ctx.store.drains(app.id)
    if not drains:
        ctx.line(f"{app.name} has no drains.")
        return
    status = read_status(ctx.platform.paths.root)
    ctx.line(f"=== {app.name} Drains")
    for url in drains:
        drain = urls.parse(url)
        figures = status.get(status_key(app.id, url))
        note = "(waiting for the daemon)"
        if figures is not None:
            note = f"sent {figures['sent']}, dropped {figures['dropped']}"
            if figures["error"]:
                note += f", failing: {figures['error']}"
        ctx.line(f"{drain.shown} ({drain.token})  {note}")


@command("drains:add", "APP URL",
         "Ship the app's logs to syslog+tcp://HOST:PORT or https://HOST/PATH")
def drains_add(ctx: Context, app: App, args: list[str]) -> None:
    drain = urls.parse(one_arg(args, "drains:add", "a drain URL"))
    urls.check_target(drain, ctx.user.is_admin)
    try:
        added = ctx.store.add_drain(app.id, drain.url, ctx.user.is_admin)
    except ValueError as err:
        raise InvalidValue(f"Cannot add a drain to {app.name}: {err}") from None
    if not added:
        raise InvalidValue(f"{app.name} already drains to {drain.shown}")
    ctx.line(f"Successfully added drain {drain.shown}")


@command("drains:remove", "APP URL", "Stop shipping the app's logs to URL")
def drains_remove(ctx: Context, app: App, args: list[str]) -> None:
    url = one_arg(args, "drains:remove", "the drain URL")
    if not ctx.store.remove_drain(app.id, url):
        raise NotFound(f"{app.name} has no drain {urls.parse(url).shown}")
    ctx.line(f"Successfully removed drain {urls.parse(url).shown}")
