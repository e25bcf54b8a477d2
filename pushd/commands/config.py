"""config, config:get, config:set, config:unset: every change is a new release."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import shlex
from collections.abc import Iterator
from typing import Any

from .. import deploy, names
from ..errors import Forbidden, NotFound, ReleaseFailed, UsageError
from ..governance import enforce
from ..models import App
from .registry import Context, command, no_more, one_arg, parse_options


def show_vars(ctx: Context, values: dict[str, str], not_live: frozenset[str] = frozenset()
              ) -> None:
    width = max((len(k) for k in values), default=0) + 2
    for key, value in values.items():
        ctx.line(f"{key + ':':<{width}}{value}" + ("  [not live]" if key in not_live else ""))


def not_live(ctx: Context, app: App, values: dict[str, str]) -> tuple[frozenset[str], str]:
    """Keys whose stored value the serving release does not run with (set or unset by a
    change whose release failed, or is still rolling out), and one line saying why."""
    serving = ctx.store.current_release(app.id)
    if serving is None:
        return frozenset(), ""
    live = serving.config
    changed = frozenset(k for k in values if live.get(k) != values[k])
    removed = sorted(k for k in live if k not in values)
    if not changed and not removed:
        return frozenset(), ""
    pending = ctx.store.pending_release(app.id)
    why = (f"{pending.name} is still rolling out" if pending else
           "the release that carried them failed (see `releases`); they go live with the "
           "next release")
    gone = f"; unset but still live: {', '.join(removed)}" if removed else ""
    return changed, f" !    Not live in the serving release {serving.name}: {why}{gone}"


@command("config", "APP [-s|--shell] [-j|--json]", "Show the app's config vars")
def config_show(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, {}, {"-s": "shell", "--shell": "shell", "-j": "json",
                                          "--json": "json"})
    no_more(rest)
    values = ctx.store.config(app.id)
    if opts.get("json"):
        ctx.line(json.dumps(values, indent=2, ensure_ascii=False))
    elif opts.get("shell"):
        for key, value in values.items():
            ctx.line(f"{key}={shlex.quote(value)}")
    else:
        marked, why = not_live(ctx, app, values)
        ctx.line(f"=== {app.name} Config Vars")
        show_vars(ctx, values, marked)
        if why:
            ctx.line(why)


@command("config:get", "APP KEY", "Print one config var's value, exactly as stored")
def config_get(ctx: Context, app: App, args: list[str]) -> None:
    key = names.config_key(one_arg(args, "config:get", "one KEY"))
    values = ctx.store.config(app.id)
    if key not in values:
        raise NotFound(f"{key} is not set on {app.name}")
    ctx.line(values[key])


def parse_assignments(args: list[str], encoded: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in args:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} is not KEY=value")
        names.config_key(key)
        if encoded:
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise UsageError(f"{key}: value is not base64 of UTF-8 text") from None
        if "\x00" in value:
            raise UsageError(f"{key}: values cannot contain NUL bytes")
        values[key] = value
    return values


def _describe(keys: list[str]) -> str:
    return ", ".join(keys)


# The dynos restart with the new release either way; these only skip waiting for them.
# `--no-restart` is accepted because earlier usage text advertised it.
NO_WAIT = {"--no-wait": "nowait", "--no-restart": "norestart"}
# Heroku's limit for all of an app's config vars together; it also keeps every value well
# below what one environment string may hold when a dyno starts (128 KB)
CONFIG_LIMIT = 32 * 1024


@contextlib.contextmanager
def _kept_not_live(keys: list[str], done: str) -> Iterator[None]:
    """A change whose release fails stays in `config`, marked not live (the serving release
    keeps its values): the failure says so."""
    try:
        yield
    except ReleaseFailed as err:
        verb = "stays" if len(keys) == 1 else "stay"
        raise ReleaseFailed(f"{err}. {_describe(keys)} {verb} {done} in `config`, marked "
                            "[not live] until a release with the change comes up", err.output
                            ) from None


def _change(ctx: Context, app: App, opts: dict[str, Any], keys: list[str], done: str,
            **change: Any) -> None:
    """Set or unset (`done`) config vars: in a new release, or with `--no-restart` only in
    `config` (Dokku's: no release now; the next release carries them)."""
    gerund, description = {"set": ("Setting", "Set"), "unset": ("Unsetting", "Remove")}[done]
    if opts.get("norestart"):
        ctx.out(f"{gerund} {_describe(keys)} on {app.name} without a restart... ")
        ctx.store.change_config(app.id, **change)
        ctx.line("done (live with the next release)")
        return
    ctx.out(f"{gerund} {_describe(keys)}{restarting(ctx, app)}... ")
    with _kept_not_live(keys, done):
        new = deploy.release(ctx.platform, app,
                             description=f"{description} {_describe(keys)} config vars",
                             user=ctx.user.name, wait=not opts.get("nowait"), out=ctx.err,
                             **change)
    ctx.line(f"done, {new.name}")


def refuse_addon_vars(ctx: Context, app: App, keys: list[str]) -> None:
    """Vars an add-on attachment owns change only through the addons commands."""
    owners = ctx.store.addon_var_owners(app.id)
    for key in keys:
        if key in owners:
            raise Forbidden(f"{key} is set by the add-on {owners[key]}; use addons:detach or "
                            "addons:credentials:rotate")


def config_size(config: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in config.items())


def restarting(ctx: Context, app: App) -> str:
    """` and restarting myapp`, only when the app has dynos to restart (a release to run)."""
    release = ctx.store.current_release(app.id)
    return f" and restarting {app.name}" if release is not None and release.slug_id else \
        f" on {app.name}"


@command("config:set", "APP KEY=value ... [--encoded] [--no-wait] [--no-restart]",
         "Set config vars: a new release (--no-wait: don't wait for its dynos; "
         "--no-restart: no release, the next one has them)")
def config_set(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, {}, {"--encoded": "encoded", **NO_WAIT})
    if not rest:
        raise UsageError("config:set needs at least one KEY=value")
    values = parse_assignments(rest, bool(opts.get("encoded")))
    keys = list(values)
    refuse_addon_vars(ctx, app, keys)
    total = config_size({**ctx.store.config(app.id), **values})
    if total > CONFIG_LIMIT:
        raise UsageError(f"Config vars would take {total // 1024} KB; the limit is "
                         f"{CONFIG_LIMIT // 1024} KB for all of an app's vars together")
    enforce.check_config(ctx.platform, app, values)
    _change(ctx, app, opts, keys, "set", config_set=values)
    show_vars(ctx, values)


@command("config:unset", "APP KEY ... [--no-wait] [--no-restart]",
         "Remove config vars: a new release (--no-wait: don't wait for its dynos; "
         "--no-restart: no release, the next one has them)")
def config_unset(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, {}, NO_WAIT)
    if not rest:
        raise UsageError("config:unset needs at least one KEY")
    keys = [names.config_key(k) for k in rest]
    refuse_addon_vars(ctx, app, keys)
    current = ctx.store.config(app.id)
    missing = [k for k in keys if k not in current]
    if missing:
        raise NotFound(f"{', '.join(missing)} not set on {app.name}")
    _change(ctx, app, opts, keys, "unset", config_unset=keys)
