"""domains, domains:add, domains:remove."""

from __future__ import annotations

from .. import names
from ..dynostatus import router_state, wait_router
from ..errors import Conflict, RouterError
from ..models import App
from ..router.base import Route
from .registry import Context, command, no_more, one_arg


@command("domains", "APP", "List the host names the app answers on")
def domains_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.line(f"=== {app.name} Default Domain")
    ctx.line(f"{app.name}.{ctx.platform.settings.domain}")
    custom = ctx.store.domains(app.id)
    if custom:
        ctx.line("")
        ctx.line(f"=== {app.name} Custom Domains")
        for host in custom:
            ctx.line(host)


@command("domains:add", "APP HOST", "Route another host name to the app")
def domains_add(ctx: Context, app: App, args: list[str]) -> None:
    host = names.domain(one_arg(args, "domains:add", "one host name"))
    settings = ctx.platform.settings
    if host.endswith("." + settings.domain) or host == settings.domain:
        # APP.DOMAIN names come with the apps (and go with a rename): none can be claimed
        raise Conflict(f"{host} is inside the platform's own domain {settings.domain}: every "
                       f"app answers at APP.{settings.domain} already")
    # nginx must accept the result before anything is stored
    ctx.platform.router.check([Route(app.name, (f"{app.name}.{settings.domain}", host), ())])
    ctx.out(f"Adding {host} to {app.name}... ")
    _, before = router_state(ctx.platform.paths)
    ctx.store.add_domain(app.id, host)
    ctx.platform.notify()
    try:
        _wait_routed(ctx, host, True, before)
    except RouterError:
        ctx.store.remove_domain(app.id, host)  # nothing half-done: the router keeps serving
        ctx.platform.notify()
        raise
    ctx.line("done")


@command("domains:remove", "APP HOST", "Stop routing a host name to the app")
def domains_remove(ctx: Context, app: App, args: list[str]) -> None:
    host = names.domain(one_arg(args, "domains:remove", "one host name"))
    ctx.out(f"Removing {host} from {app.name}... ")
    _, before = router_state(ctx.platform.paths)
    ctx.store.remove_domain(app.id, host)
    ctx.platform.notify()
    try:
        _wait_routed(ctx, host, False, before)
    except RouterError:
        ctx.store.add_domain(app.id, host)  # store and router agree again
        ctx.platform.notify()
        raise
    ctx.line("done")


def _wait_routed(ctx: Context, host: str, present: bool, before: str | None) -> None:
    """Return once the running router serves `host` (or no longer does); RouterError if
    nginx refused the change."""
    if ctx.platform.running and not wait_router(
            ctx.platform.paths, lambda hosts: (host in hosts) == present, before):
        ctx.out("(the router has not picked it up yet) ")
