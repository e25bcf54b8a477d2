"""logs APP [-n N] [-t] [-p TYPE] [-d DYNO] [-s app|pushd]"""

from __future__ import annotations

from .. import deploy, names
from ..errors import UsageError
from ..logs import LogFilter, display
from ..models import App
from .registry import Context, command, no_more, number_option, parse_options

LOGS_OPTIONS = {"-n": "num", "--num": "num", "-p": "ptype", "--process-type": "ptype",
                "-d": "dyno", "--dyno": "dyno", "-s": "source", "--source": "source"}
TAIL_FLAG = {"-t": "tail", "--tail": "tail"}
FLUSH_BYTES = 65536


@command("logs", "APP [-n NUM] [-t|--tail] [-p TYPE] [-d DYNO] [-s app|pushd]",
         "Show the app's logs; -t keeps streaming until you disconnect", options=LOGS_OPTIONS)
def logs(ctx: Context, app: App, args: list[str]) -> None:
    opts, rest = parse_options(args, LOGS_OPTIONS, TAIL_FLAG)
    no_more(rest)
    num = number_option(opts, "num", "-n", 100)
    if num < 0:
        raise UsageError("-n needs a number of lines, 0 or more")
    source = opts.get("source")
    if source not in (None, "app", "pushd"):
        raise UsageError("-s must be app or pushd")
    ptype = opts.get("ptype")
    if ptype:
        names.process_type(ptype)
    match = LogFilter(process_type=ptype, dyno=opts.get("dyno"), source=source)
    log = deploy.app_log(ctx.platform, app)
    lines, end = log.tail(num, match)
    for line in lines:
        ctx.out(display(line))
    if opts.get("tail"):  # from where the lines above end: nothing written since is lost
        batch: list[str] = []
        size = 0
        for line in log.follow(match, stop=ctx.cancelled, since=end, caught_up=True):
            if line:
                batch.append(display(line))
                size += len(line)
            # one send per 64 KB, or as soon as the log has nothing more: a flood is not
            # sent one packet per line (the follower would fall behind), a trickle is not held
            if batch and (not line or size >= FLUSH_BYTES):
                ctx.out("".join(batch))
                batch, size = [], 0
