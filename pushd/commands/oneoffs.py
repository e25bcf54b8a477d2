"""run:detached, cron:list."""

from __future__ import annotations

from .. import detached
from ..errors import NotFound, UsageError
from ..governance import enforce
from ..models import App
from ..scheduler import release_entries
from .ps import oneoff_command, procfile_command
from .registry import Context, command, no_more


@command("run:detached", "APP COMMAND ...",
         "Run a one-off dyno in the background; its output goes to `logs`", raw=True)
def run_detached(ctx: Context, app: App, args: list[str]) -> None:
    release = ctx.store.current_release(app.id)
    if release is None or not release.slug_id:
        raise NotFound(f"{app.name} has no release to run; git push first")
    text = procfile_command(oneoff_command(args, getattr(ctx.io, "command_line", None)),
                            release.process_types) if args else ""
    if not text.strip():
        raise UsageError("run:detached needs a command")
    enforce.check_oneoff(ctx.platform, app)
    ctx.out(f"Running {text} on {app.name}... ")
    spec = detached.start(ctx.platform, app, text)
    ctx.line(f"up, {spec.dyno}")
    ctx.line(f"Run `logs {app.name} --dyno {spec.dyno}` to see its output.")


@command("cron:list", "APP", "List the cron entries of the app's app.json")
def cron_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    release = ctx.store.current_release(app.id)
    entries = release_entries(ctx.platform, app, release) if release else []
    ctx.line(f"=== {app.name} Cron Tasks")
    if not entries:
        ctx.line("(no cron entries: add `cron` to app.json)")
        return
    width = max(len(e.schedule.text) for e in entries)
    for entry in entries:
        ctx.line(f"{entry.schedule.text:<{width}}  {entry.command}")

