"""help: every command with its usage, grouped by topic."""

from __future__ import annotations

from .registry import COMMANDS, Context, command, usage_of


@command("help", "[COMMAND]", "Show this help, or one command's usage", app=False)
def help_command(ctx: Context, args: list[str]) -> int:
    if args:
        cmd = COMMANDS.get(args[0])
        if cmd is None:
            ctx.err(f" !    Unknown command: {args[0]!r}\n")
            return 2
        ctx.line(usage_of(cmd))
        ctx.line(f"  {cmd.summary}")
        return 0
    ctx.line("Usage: ssh platform COMMAND [APP] [ARGS...]   (or -a APP anywhere)")
    ctx.line("       git push platform main                 deploy (creates the app if new)")
    ctx.line("")
    visible = [c for c in COMMANDS.values() if ctx.user.is_admin or not c.admin]
    width = min(max(len(f"{c.name} {c.usage}") for c in visible), 34) + 2
    topic = None
    for cmd in sorted(visible, key=lambda c: (c.topic, c.name)):
        if cmd.topic != topic:
            if topic is not None:
                ctx.line("")
            topic = cmd.topic
        synopsis = f"{cmd.name} {cmd.usage}".strip()
        if len(synopsis) >= width:
            ctx.line(f"  {synopsis}")
            synopsis = ""
        ctx.line(f"  {synopsis:<{width}}{cmd.summary}")
    return 0
