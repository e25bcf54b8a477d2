"""resource:limit, resource:limit-clear, resource:report (Dokku's names): the memory and CPU
of an app's dynos, for every process type or one.

A change restarts the dynos it concerns as `ps:restart` does (web: the successor first, so
nothing is dropped), without a new release: like Heroku's `ps:resize`, limits belong to the
formation, not to the code or the config. From the local CLI, or while pushd is down, the
restart is queued for the daemon's supervisor (it runs when pushd is up again).
"""

from __future__ import annotations

from ..errors import NotFound
from ..governance import enforce
from ..limits import (
    APP_WIDE,
    Effective,
    Limit,
    check_bounds,
    cpu_text,
    effective,
    memory_text,
    parse_cpu,
    parse_memory,
)
from ..models import App
from ..names import process_type
from .registry import Context, command, no_more, parse_options

VALUES = {"--memory": "memory", "--cpu": "cpu", "--process-type": "type"}
SOURCES = {"type": "set", "app": "set for every type", "default": "default"}
ANY = "*"  # the report's one row while the app declares no process type (never a type)
ONEOFF = "run"  # `--process-type run`: one-off dynos (`run`), never restarted by a change


def scope_of(ctx: Context, app: App, given: str | None) -> str:
    """The process type a limit is for (APP_WIDE when none is given). Once the app has a
    release, a type it does not declare is refused, as ps:scale does."""
    if given is None:
        return APP_WIDE
    kind = process_type(given)
    known = types_of(ctx, app, with_stored=False)
    if known and kind not in known and kind != ONEOFF:
        raise NotFound(f"Couldn't find that process type ({kind}); the current release "
                       f"declares: {', '.join(sorted(known))}")
    return kind


def types_of(ctx: Context, app: App, with_stored: bool = True) -> list[str]:
    release = ctx.store.current_release(app.id)
    kinds = set(release.process_types) - {"release"} if release else set()
    kinds |= set(ctx.store.formation(app.id))
    if with_stored:
        kinds |= set(ctx.store.resource_limits(app.id)) - {APP_WIDE}
    return sorted(kinds)


def limits_of(ctx: Context, stored: dict[str, Limit], kind: str) -> Effective:
    settings = ctx.platform.settings
    return effective(stored, kind, settings.memory_for(kind), settings.cpu_limit)


def describe(scope: str, app: App) -> str:
    return f"every dyno of {app.name}" if scope == APP_WIDE else f"{scope} dynos of {app.name}"


def restart(ctx: Context, app: App, scope: str) -> bool:
    """Replace the dynos the change concerns; False when none runs to be replaced."""
    if scope == ONEOFF or app.stopped or ctx.store.current_release(app.id) is None:
        return False
    target = None if scope == APP_WIDE else scope
    ctx.platform.the_supervisor().restart(app.id, target)
    return True


def show(ctx: Context, app: App, kinds: list[str]) -> None:
    stored = ctx.store.resource_limits(app.id)
    rows = [("Type", "Memory", "CPU (cores)")]
    for kind in kinds or [ANY]:
        limit = limits_of(ctx, stored, kind)
        rows.append((kind, f"{memory_text(limit.memory_mb)} ({SOURCES[limit.memory_from]})",
                     f"{cpu_text(limit.cpu)} ({SOURCES[limit.cpu_from]})"))
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(2)]
    for first, second, third in rows:
        ctx.line(f"{first:<{widths[0]}}{second:<{widths[1]}}{third}")


@command("resource:limit", "APP [--memory SIZE] [--cpu CORES] [--process-type TYPE]",
         "Limit memory (512m) and CPU (0.5 cores) per dyno; 0 resets; dynos restart",
         options=VALUES)
def resource_limit(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, VALUES, {})
    no_more(rest)
    scope = scope_of(ctx, app, opts.get("type"))
    if "memory" not in opts and "cpu" not in opts:  # as Dokku: no value shows them
        resource_report(ctx, app, [])
        return
    memory = parse_memory(opts["memory"]) if "memory" in opts else None  # 0: reset
    cpu = parse_cpu(opts["cpu"]) if "cpu" in opts else None  # 0: reset
    settings = ctx.platform.settings
    check_bounds(memory, cpu, settings.max_dyno_memory_mb, settings.max_dyno_cpu)
    stored = ctx.store.resource_limits(app.id)
    old = stored.get(scope, Limit())
    stored[scope] = new = Limit(old.memory_mb if memory is None else memory or None,
                                old.cpu if cpu is None else cpu or None)
    enforce.check_limits(ctx.platform, app, lambda kind: limits_of(ctx, stored, kind).memory_mb)
    ctx.out(f"Setting limits of {describe(scope, app)}... ")
    ctx.store.set_resource_limit(app.id, scope, new)
    ctx.line("done, restarting them" if restart(ctx, app, scope)
             else "done; dynos get them when they start")
    show(ctx, app, [scope] if scope != APP_WIDE else types_of(ctx, app))


@command("resource:limit-clear", "APP [--process-type TYPE]",
         "Remove the app's resource limits (all, or one type's)", options=VALUES)
def resource_limit_clear(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, {"--process-type": "type"}, {})
    no_more(rest)
    scope = scope_of(ctx, app, opts.get("type")) if "type" in opts else None
    ctx.out(f"Clearing the limits of {describe(scope, app) if scope else app.name}... ")
    if not ctx.store.clear_resource_limits(app.id, scope):
        ctx.line("none were set")
        return
    ctx.line("done, restarting them" if restart(ctx, app, scope or APP_WIDE)
             else "done; dynos get the defaults when they start")


@command("resource:report", "APP", "Show each process type's memory and CPU limits")
def resource_report(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.line(f"=== {app.name} Resource Limits")
    show(ctx, app, types_of(ctx, app))
