"""ps, ps:scale, ps:restart, ps:stop, ps:start, run."""

from __future__ import annotations

import re
import shlex
import time

from .. import detached, names
from ..dynospec import oneoff_spec
from ..dynostatus import DynoStatus, read_status
from ..errors import NotFound, UsageError
from ..events import EventLog, run_oneoff
from ..governance import enforce
from ..models import App
from .registry import Context, command, no_more

SCALE_RE = re.compile(r"([A-Za-z0-9_-]+)(=|\+|-)([0-9]{1,3})")
MAX_DYNOS = 100


def ago(ts: float) -> str:
    delta = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"~ {int(delta // size)}{unit} ago"
    return f"~ {int(delta)}s ago"


def ps_lines(rows: list[DynoStatus], serving: int) -> list[str]:
    """`=== web (2): python3 app.py` / `web.1: up 2026/11/26 07:36:25 (~ 1h ago)` blocks for
    the dynos of the serving release. Dynos of an older release still draining after a
    deploy are listed after them (not counted); those of a release still rolling out are
    not shown until it serves."""
    lines: list[str] = []
    by_type: dict[str, list[DynoStatus]] = {}
    for status in rows:
        if status.release <= serving:
            by_type.setdefault(status.type, []).append(status)
    for ptype, group in by_type.items():
        live = [s for s in group if s.release == serving]
        draining = [s for s in group if s.release < serving]
        if lines:
            lines.append("")
        lines.append(f"=== {ptype} ({len(live)}): {(live or group)[0].command}")
        for status in live + draining:
            state = status.state if status.release == serving else "draining"
            stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(status.since))
            where = f" at 127.0.0.1:{status.port}" if status.port else ""  # the router's way in
            lines.append(f"{status.dyno}: {state} {stamp} ({ago(status.since)}){where}")
    return lines


def dyno_lines(ctx: Context, app: App) -> list[str]:
    current = ctx.store.current_release(app.id)
    lines = ps_lines(read_status(ctx.platform.paths, app.id), current.version if current else 0)
    oneoffs = detached.running(ctx.platform, app.id)  # run.N, scheduler.N
    if oneoffs:
        lines += [""] if lines else []
        lines.append(f"=== run: one-off dynos ({len(oneoffs)})")
        lines += [f"{o.dyno}: up ({ago(o.since)})" + (f": {o.command}" if o.command else "")
                  for o in oneoffs]
    return lines


@command("ps", "APP", "List the app's dynos")
def ps(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    lines = dyno_lines(ctx, app)
    if app.stopped:
        ctx.line(f"{app.name} is stopped (ps:start to run it again)")
    if not lines:
        ctx.line(f"No dynos on {app.name}")
    for line in lines:
        ctx.line(line)


def parse_scale(args: list[str], current: dict[str, int],
                known: set[str] | None) -> dict[str, int]:
    """`known`: the types the serving release declares (None before the first release)."""
    if not args:
        raise UsageError("ps:scale needs TYPE=N (or TYPE+N, TYPE-N)")
    wanted = dict(current)
    for item in args:
        match = SCALE_RE.fullmatch(item)
        if not match:
            raise UsageError(f"{item!r} is not TYPE=N, TYPE+N or TYPE-N")
        ptype, op, number = match.group(1), match.group(2), int(match.group(3))
        names.process_type(ptype)
        if known is not None and ptype not in known:
            raise NotFound(f"Couldn't find that process type ({ptype}); the current release "
                           f"declares: {', '.join(sorted(known)) or 'none'}")
        base = wanted.get(ptype, 0)
        value = number if op == "=" else base + number if op == "+" else base - number
        if not 0 <= value <= MAX_DYNOS:
            raise UsageError(f"{ptype} must be between 0 and {MAX_DYNOS}")
        wanted[ptype] = value
    return wanted


@command("ps:scale", "APP TYPE=N ...", "Scale process types (web=3 worker+1)")
def ps_scale(ctx: Context, app: App, args: list[str]) -> None:
    release = ctx.store.current_release(app.id)
    # None before the first deploy (config-only releases declare no type)
    known = set(release.process_types) - {"release"} if release and release.slug_id else None
    # the serving release's types only: not those of one still rolling out, nor removed ones;
    # before the first release, any type: the first release starts what was asked for
    formation = {t: q for t, q in ctx.store.formation(app.id).items()
                 if known is None or t in known}
    if not args:
        ctx.line(" ".join(f"{t}={q}" for t, q in formation.items()) or "No process types")
        return
    wanted = parse_scale(args, formation, known)
    enforce.check_formation(ctx.platform, app, wanted)
    ctx.out("Scaling dynos... ")
    ctx.store.set_formation(app.id, wanted)
    ctx.platform.notify()
    ctx.line("done, now running " + ", ".join(f"{t} at {q}" for t, q in wanted.items()))


@command("ps:restart", "APP [TYPE|DYNO]", "Restart dynos (all, one type, or one dyno)")
def ps_restart(ctx: Context, app: App, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("ps:restart takes at most one TYPE or DYNO")
    target = args[0] if args else None
    if target:
        names.process_type(target.split(".")[0])
        if target not in restart_targets(ctx, app):
            raise NotFound(f"No such process type or dyno: {target}")
    ctx.out(f"Restarting {target or 'all'} dynos on {app.name}... ")
    ctx.platform.the_supervisor().restart(app.id, target)  # web dynos: successor first
    ctx.line("done")


def restart_targets(ctx: Context, app: App) -> set[str]:
    """What `ps:restart` accepts: the app's process types and its dynos (by formation, and as
    `ps` lists them)."""
    formation = ctx.store.formation(app.id)
    release = ctx.store.current_release(app.id)
    types = set(formation) | (set(release.process_types) - {"release"} if release else set())
    dynos = {f"{t}.{i}" for t, quantity in formation.items() for i in range(1, quantity + 1)}
    dynos |= {status.dyno for status in read_status(ctx.platform.paths, app.id)}
    return types | dynos


def _set_stopped(ctx: Context, app: App, args: list[str], stopped: bool) -> None:
    no_more(args)
    ctx.out(f"{'Stopping' if stopped else 'Starting'} {app.name}... ")
    ctx.store.set_stopped(app.id, stopped)
    ctx.platform.notify()
    ctx.line("done")


@command("ps:stop", "APP", "Stop every dyno of the app (formation kept)")
def ps_stop(ctx: Context, app: App, args: list[str]) -> None:
    _set_stopped(ctx, app, args, True)


@command("ps:start", "APP", "Start the app's dynos again after ps:stop")
def ps_start(ctx: Context, app: App, args: list[str]) -> None:
    _set_stopped(ctx, app, args, False)


def oneoff_command(args: list[str], command_line: str | None = None) -> str:
    """The shell command of `run`, from its words (`args`) and, over SSH, the client's whole
    command line: OpenSSH sends the user's words joined by spaces, for a shell on our side
    (Heroku runs it with bash), so the text after the app is taken untouched and
    `run app 'echo $HOME | wc -c'` pipes. From argv alone (the local CLI) the words are
    joined by spaces as Heroku's CLI does, quoting only those with whitespace (or empty)."""
    words = _split(command_line) if command_line is not None else None
    if words is not None and len(words) >= len(args):
        rest = _text_after(command_line, len(words) - len(args))
        if rest is not None and _split(rest) == args:
            return rest
    if len(args) == 1:
        return args[0]
    return " ".join(shlex.quote(w) if not w or any(c.isspace() for c in w) else w
                    for w in args)


def procfile_command(text: str, process_types: dict[str, str]) -> str:
    """`run app console` runs the Procfile's `console:` command (Heroku's rule); a leading
    `--` (`run app -- --help`) only ends pushd's options and is dropped."""
    words = _split(text)
    if words and words[0] == "--":
        text = text.lstrip()[2:].lstrip()
        words = words[1:]
    if words is not None and len(words) == 1 and words[0] in process_types:
        return process_types[words[0]]
    return text


def _split(text: str) -> list[str] | None:
    try:
        return shlex.split(text)
    except ValueError:
        return None


def _text_after(line: str, words: int) -> str | None:
    """`line` from its (words+1)-th shell word on, as written; None if it has fewer words."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # as shlex.split: '#' is a word like any other
    try:
        for _ in range(words):
            if lexer.get_token() is None:
                return None
    except ValueError:
        return None
    return line[lexer.instream.tell():].lstrip()


@command("run", "APP COMMAND ...", "Run a one-off dyno with the app's current release",
         raw=True)
def run(ctx: Context, app: App, args: list[str]) -> int:
    if not args:
        raise UsageError("run needs a command")
    release = ctx.store.current_release(app.id)
    if release is None or not release.slug_id:
        raise NotFound(f"{app.name} has no release to run; git push first")
    command_text = procfile_command(oneoff_command(args, getattr(ctx.io, "command_line", None)),
                                    release.process_types)
    if not command_text.strip():
        raise UsageError("run needs a command")
    platform = ctx.platform
    enforce.check_oneoff(platform, app)
    # on a terminal the dyno gets the client's TERM (Heroku's CLI passes it on too)
    term = getattr(ctx.io, "term", None) if getattr(ctx.io, "tty", False) else None
    spec = oneoff_spec(platform.store, platform.settings, platform.paths, app.id, command_text,
                       env={"TERM": term} if term else None)
    ctx.err(f"Running {command_text} on {app.name}... up, {spec.dyno}\n")
    return run_oneoff(platform.runtime, spec, ctx.io,
                      EventLog(platform.paths, platform.settings.log_max_bytes))
