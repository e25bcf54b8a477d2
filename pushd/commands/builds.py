"""builds, builds:output, builds:cancel."""

from __future__ import annotations

import re

from .. import buildlog
from ..errors import NotFound, UsageError
from ..models import App
from ..store_builds import RUNNING, BuildRecord
from .registry import Context, command, no_more
from .releases import when

BUILD_ID = re.compile(r"[0-9]{1,9}")


def shown_status(record: BuildRecord) -> str:
    """A row left running by a daemon that died is failed, whatever the row says."""
    if record.status in RUNNING and not buildlog.alive(record.pid):
        return "failed"
    return {"canceling": "canceling"}.get(record.status, record.status)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@command("builds", "APP", "List the app's builds, newest first")
def builds_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    records = ctx.store.build_records(app.id)
    ctx.line(f"=== {app.name} Builds")
    if not records:
        ctx.line("(no builds yet: git push to build)")
        return
    for record in records:
        ctx.line(f"{record.number:<4} {shown_status(record):<10} {record.commit[:7]}  "
                 f"{duration(record.duration()):>7}  {record.user}  {when(record.started_at)}")


@command("builds:output", "APP [ID]", "Show a build's output (default: the latest build)")
def builds_output(ctx: Context, app: App, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("builds:output takes one build ID")
    if args:
        if not BUILD_ID.fullmatch(args[0]):
            raise UsageError(f"{args[0]!r} is not a build ID (a number, as `builds` lists)")
        record = ctx.store.build_record(app.id, int(args[0]))
    else:
        found = ctx.store.build_records(app.id, 1)
        record = found[0] if found else None
    if record is None:
        raise NotFound(f"No such build of {app.name}" if args else f"{app.name} has no builds")
    try:
        with open(buildlog.output_file(ctx.platform, app.id, record.number), "rb") as f:
            while chunk := f.read(65536):
                ctx.out(chunk.decode("utf-8", "replace"))
    except FileNotFoundError:
        raise NotFound(f"The output of build {record.number} is gone") from None


@command("builds:cancel", "APP", "Stop the app's running build")
def builds_cancel(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.out(f"Canceling the running build of {app.name}... ")
    record = buildlog.cancel(ctx.platform, app, ctx.err)
    if record is None:
        ctx.line("")
        raise NotFound(f"No build of {app.name} is running")
    ctx.line(f"done, build {record.number} canceled")
