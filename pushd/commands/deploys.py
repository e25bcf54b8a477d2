"""maintenance, maintenance:on/off, checks, checks:disable/enable/set/run."""

from __future__ import annotations

from .. import health, maintenance, names
from ..dynostatus import read_status
from ..errors import PushdError, UsageError
from ..models import App
from ..runtime.records import Endpoint
from .registry import Context, command, no_more


@command("maintenance", "APP", "Show whether the app is in maintenance mode")
def maintenance_show(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.line("on" if maintenance.is_on(ctx.platform.paths, app.id) else "off")


def _switch(ctx: Context, app: App, args: list[str], on: bool) -> None:
    no_more(args)
    ctx.out(f"{'Enabling' if on else 'Disabling'} maintenance mode for {app.name}... ")
    maintenance.set_on(ctx.platform.paths, app.id, on)
    ctx.platform.notify()
    ctx.line("done")


@command("maintenance:on", "APP", "The router answers 503 with the maintenance page (H80); "
         "dynos keep running")
def maintenance_on(ctx: Context, app: App, args: list[str]) -> None:
    _switch(ctx, app, args, True)


@command("maintenance:off", "APP", "Route requests to the app's dynos again")
def maintenance_off(ctx: Context, app: App, args: list[str]) -> None:
    _switch(ctx, app, args, False)


@command("checks", "APP", "Show the app's health check settings")
def checks_report(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    s = maintenance.checks(ctx.platform.paths, app.id)
    ctx.line(f"=== {app.name} checks")
    disabled = "all" if "_all_" in s.disabled else ", ".join(sorted(s.disabled)) or "none"
    ctx.line(f"Disabled:        {disabled}")
    ctx.line(f"Wait to retire:  {s.wait_to_retire if s.wait_to_retire is not None else '-'}")
    ctx.line(f"Attempts:        {s.attempts if s.attempts is not None else '-'}")
    ctx.line(f"Worker overlap:  {'true' if s.worker_overlap else 'false'}")


def _types(args: list[str]) -> set[str]:
    return {names.process_type(t) for t in args} or {"_all_"}


@command("checks:disable", "APP [TYPE ...]", "Route new dynos without running their checks")
def checks_disable(ctx: Context, app: App, args: list[str]) -> None:
    now = maintenance.checks(ctx.platform.paths, app.id).disabled | _types(args)
    maintenance.update_checks(ctx.platform.paths, app.id, disabled=sorted(now))
    which = "all types" if "_all_" in now else ", ".join(sorted(now))
    ctx.line(f"Checks disabled for {app.name} ({which})")


@command("checks:enable", "APP [TYPE ...]", "Run the checks again before routing new dynos")
def checks_enable(ctx: Context, app: App, args: list[str]) -> None:
    before = maintenance.checks(ctx.platform.paths, app.id).disabled
    now = set() if not args else before - _types(args)
    maintenance.update_checks(ctx.platform.paths, app.id, disabled=sorted(now))
    ctx.line(f"Checks enabled for {app.name}")


@command("checks:set", "APP KEY=VALUE ...",
         "wait-to-retire=SECONDS, attempts=N (1-20), worker-overlap=true|false")
def checks_set(ctx: Context, app: App, args: list[str]) -> None:
    if not args:
        raise UsageError("checks:set needs KEY=VALUE (wait-to-retire, attempts, "
                         "worker-overlap)")
    changes = {}
    for item in args:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"Expected KEY=VALUE, got {item[:40]!r}")
        changes[key] = maintenance.parse_setting(key, value)
    maintenance.update_checks(ctx.platform.paths, app.id, **changes)
    ctx.line(" ".join(f"{k}={str(v).lower()}" for k, v in changes.items()))


@command("checks:run", "APP", "Run the web checks now against the serving web dynos")
def checks_run(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    current = ctx.store.current_release(app.id)
    if current is None:
        raise UsageError(f"{app.name} has no release yet")
    checks = health.load(ctx.platform.paths, app.id, current.slug_id).checks("web")
    host = f"{app.name}.{ctx.platform.settings.domain}"
    rows = [r for r in read_status(ctx.platform.paths, app.id)
            if r.type == "web" and r.release == current.version and r.state == "up" and r.port]
    if not rows:
        raise UsageError(f"{app.name} has no web dyno up to check")
    failed = 0
    for row in rows:
        result = health.run_checks(Endpoint("127.0.0.1", row.port), host, checks)
        failed += not result.ok
        ctx.line(f"{row.dyno}: {'ok' if result.ok else result.detail}")
    if failed:
        raise PushdError(f"{failed} of {len(rows)} web dynos failed their checks")
