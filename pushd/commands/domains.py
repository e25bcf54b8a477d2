"""domains, domains:add, domains:remove."""

from __future__ import annotations

from collections.abc import Callable

from .. import names
from ..dynostatus import router_state, wait_router
from ..errors import Conflict, RouterError
from ..governance import enforce
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
        cert = ctx.platform.certs.app_cert(app.id)
        for host in custom:
            if cert is not None and cert.info.covers(host):
                ctx.line(f"{host}  (certificate expires {cert.info.not_after:%Y-%m-%d})")
            else:
                ctx.line(host)


@command("domains:add", "APP HOST", "Route another host name to the app")
def domains_add(ctx: Context, app: App, args: list[str]) -> None:
    host = names.domain(one_arg(args, "domains:add", "one host name"))
    settings = ctx.platform.settings
    if names.domains_overlap(host, f"*.{settings.domain}") or host == settings.domain:
        # APP.DOMAIN names come with the apps (and go with a rename): none can be claimed,
        # nor a wildcard over them (it would answer for every name no app has yet)
        raise Conflict(f"{host} overlaps the platform's own domain {settings.domain}: every "
                       f"app answers at APP.{settings.domain} already")
    enforce.check_domain(ctx.platform, app, host)
    # nginx must accept the result before anything is stored
    ctx.platform.router.check([Route(app.name, (f"{app.name}.{settings.domain}", host), ())])
    ctx.out(f"Adding {host} to {app.name}... ")
    _switch(ctx, host, True, lambda: ctx.store.add_domain(app.id, host),
            lambda: ctx.store.remove_domain(app.id, host))
    ctx.line("done")


@command("domains:remove", "APP HOST", "Stop routing a host name to the app")
def domains_remove(ctx: Context, app: App, args: list[str]) -> None:
    host = names.domain(one_arg(args, "domains:remove", "one host name"))
    ctx.out(f"Removing {host} from {app.name}... ")
    _switch(ctx, host, False, lambda: ctx.store.remove_domain(app.id, host),
            lambda: ctx.store.add_domain(app.id, host))
    ctx.line("done")


def _switch(ctx: Context, host: str, present: bool, change: Callable[[], None],
            undo: Callable[[], None]) -> None:
    """Store `change`, wake the supervisor and return once the running router serves `host`
    (or no longer does). If nginx refuses, `undo` it: store and router agree again."""
    _, before = router_state(ctx.platform.paths)
    change()
    ctx.platform.notify()
    try:
        routed = wait_router(ctx.platform.paths, lambda hosts: (host in hosts) == present,
                             before)
    except RouterError:
        undo()
        ctx.platform.notify()
        raise
    if not routed:
        ctx.out("(the router has not picked it up yet) ")
