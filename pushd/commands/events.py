"""events: the audit trail (every admin command, who ran it, how it ended)."""

from __future__ import annotations

from ..errors import PushdError, UsageError
from ..governance import audit
from .registry import Context, command, no_more, number_option, parse_options

OPTIONS = {"-n": "num", "--num": "num", "-a": "app", "--app": "app"}


@command("events", "[-a APP] [-n NUM]",
         "The audit trail: admin actions, newest last (users see their apps' and their own)",
         app=False, options=OPTIONS)
def events(ctx: Context, args: list[str]) -> None:
    opts, rest = parse_options(args, OPTIONS, {})
    no_more(rest)
    limit = number_option(opts, "num", "-n", 50)
    if limit < 1:
        raise UsageError("-n needs a number above 0")
    only = ctx.app(opts["app"]).name if "app" in opts else None
    visible: dict[str, bool] = {}

    def may_see(entry: audit.Entry) -> bool:
        if ctx.user.is_admin:
            return True
        if not entry.app:
            return entry.actor == ctx.user.name
        if entry.app not in visible:
            try:
                ctx.app(entry.app)
                visible[entry.app] = True
            except PushdError:
                visible[entry.app] = False
        return visible[entry.app]

    shown = [e for e in audit.Trail(ctx.platform.paths.audit_log).entries()
             if (only is None or e.app == only) and may_see(e)][-limit:]
    if not shown:
        ctx.line("(no events)")
    for entry in shown:
        ctx.line(entry.line())
