"""The admin command registry, shared by the SSH server and the local CLI.

A command is a function registered with `@command(...)`; it receives a Context (who is
calling, where output goes, the platform) and its arguments with the app already resolved
from `myapp` (Dokku style, first positional) or `-a myapp` (Heroku style).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import diskspace, metrics, names
from ..errors import Forbidden, InvalidName, InvalidValue, NotFound, PushdError, UsageError
from ..governance import audit
from ..models import App, Key
from ..platform import Platform
from ..slo import SLIFile


@dataclass
class Context:
    platform: Platform
    user: Key
    out: Callable[[str], None]  # stdout text
    err: Callable[[str], None]  # stderr text
    read_stdin: Callable[[], bytes] = lambda: b""
    cancelled: Callable[[], bool] = lambda: False  # the client went away (logs -t)
    io: Any = None  # OneOffIO for `run`
    ssh_target: str = "platform"  # how users reach us, for printed git URLs

    def line(self, text: str = "") -> None:
        self.out(text + "\n")

    @property
    def store(self):  # noqa: ANN201  (Store; typed loosely to keep imports light)
        return self.platform.store

    def app(self, name: str) -> App:
        """The named app, if this key may act on it."""
        app = self.store.app(names.app_name(name))
        if not self.can_access(app):
            raise Forbidden(f"You do not have access to the app {name}")
        return app

    def can_access(self, app: App) -> bool:
        return (self.user.is_admin or app.owner == self.user.name
                or self.store.has_access(app.id, self.user.name))


Handler = Callable[..., int | None]


@dataclass
class Command:
    name: str
    func: Handler
    usage: str
    summary: str
    takes_app: bool = True
    admin: bool = False
    raw: bool = False  # everything after the app is passed verbatim (run)
    options: frozenset[str] = frozenset()  # spellings that take a value (`-n 5`)
    names_app: bool = False  # app-less, but its first argument is an app's name (apps:create)
    topic: str = field(init=False)

    def __post_init__(self) -> None:
        self.topic = self.name.split(":")[0]


COMMANDS: dict[str, Command] = {}
# commands that only read, or free space (apps:destroy): they still run on a full disk; every
# other one first checks that the state dir has room, so it fails before changing anything
# instead of halfway
NO_ROOM_NEEDED = frozenset({
    "help", "apps", "apps:info", "ps", "config", "config:get", "releases", "releases:info",
    "logs", "keys", "access", "domains", "buildpacks", "quotas", "policies", "policies:check",
    "resource:report", "apps:destroy", "events", "drains", "metrics", "slo", "certs",
    "certs:info", "certs:auto", "features", "builds", "builds:output", "builds:cancel",
    "cron:list", "addons", "addons:info", "addons:backups"})


def command(name: str, usage: str = "", summary: str = "", *, app: bool = True,
            admin: bool = False, raw: bool = False, options: Collection[str] = (),
            names_app: bool = False) -> Callable[[Handler], Handler]:
    """Register a command. `options` lists every spelling of its options that take a value,
    so that value is never mistaken for the app (`releases -n 5 myapp`). `names_app`: an
    app-less command whose first argument names an app all the same (for the audit trail)."""
    def deco(func: Handler) -> Handler:
        COMMANDS[name] = Command(name, func, usage, summary, app, admin, raw, frozenset(options),
                                 names_app)
        return func
    return deco


def split_app(args: Sequence[str], raw: bool, options: Collection[str] = ()
              ) -> tuple[str | None, list[str]]:
    """Find the app: `-a NAME`/`--app NAME`/`--app=NAME` (anywhere; for raw commands only
    before the command), else the first positional argument that is not the value of one of
    `options` (the command's value-taking options)."""
    items = list(args)
    if raw:
        if items[:1] in (["-a"], ["--app"]) and len(items) > 1:
            return items[1], items[2:]
        if items and items[0].startswith("--app="):
            return items[0].split("=", 1)[1], items[1:]
        return (items[0], items[1:]) if items else (None, [])
    for i, item in enumerate(items):
        if item in ("-a", "--app"):
            if i + 1 >= len(items):
                raise UsageError(f"{item} needs an app name")
            return items[i + 1], items[:i] + items[i + 2:]
        if item.startswith("--app="):
            return item.split("=", 1)[1], items[:i] + items[i + 1:]
    i = 0
    while i < len(items):
        item = items[i]
        if item in options:
            i += 2  # skip the option and its value
            continue
        if not item.startswith("-"):
            return item, items[:i] + items[i + 1:]
        i += 1
    return None, items


def no_more(args: Sequence[str]) -> None:
    """Refuse leftover arguments: a typo must not be silently ignored."""
    if args:
        raise UsageError(f"Unexpected argument {args[0]!r}")


def one_arg(args: Sequence[str], command: str, what: str) -> str:
    """The single argument a command takes, or a usage error naming what it needs."""
    if len(args) != 1:
        raise UsageError(f"{command} needs {what}")
    return args[0]


def parse_options(args: Sequence[str], options: dict[str, str], flags: dict[str, str]
                  ) -> tuple[dict[str, Any], list[str]]:
    """Tiny option parser: `options` take a value (`-n 10`, `--num=10`), `flags` don't.
    Both map every spelling to a destination name. Returns (values, positionals)."""
    values: dict[str, Any] = {}
    positional: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        key, _, inline = item.partition("=") if item.startswith("--") else (item, "", "")
        if key in options:
            if inline:
                values[options[key]] = inline
            elif i + 1 < len(items):
                values[options[key]] = items[i + 1]
                i += 1
            else:
                raise UsageError(f"{key} needs a value")
        elif item in flags:
            values[flags[item]] = True
        elif item.startswith("-") and len(item) > 1 and item != "-":
            raise UsageError(f"Unknown option {item}")
        else:
            positional.append(item)
        i += 1
    return values, positional


def number_option(opts: dict[str, Any], name: str, flag: str, default: int) -> int:
    """The whole number option `name` holds (`default` when not given); a usage error naming
    `flag` when it is not one."""
    try:
        return int(opts.get(name, default))
    except ValueError:
        raise UsageError(f"{flag} needs a number") from None


def usage_of(cmd: Command) -> str:
    return f"Usage: {cmd.name} {cmd.usage}".rstrip()


def _app_first(argv: list[str], is_app: Callable[[str], bool]) -> list[str]:
    """The app before the command, as some type it, goes after it: `-a APP COMMAND ...`, and
    `APP COMMAND ...` (what is left of `ssh platform -a APP COMMAND`: OpenSSH takes the `-a`
    as its own option, no agent forwarding) become `COMMAND -a APP ...`."""
    if len(argv) >= 3 and argv[0] in ("-a", "--app"):
        return [argv[2], argv[0], argv[1], *argv[3:]]
    if len(argv) >= 2 and argv[0].startswith("--app="):
        return [argv[1], argv[0], *argv[2:]]
    if (len(argv) >= 2 and argv[0] not in COMMANDS and argv[1] in COMMANDS
            and is_app(argv[0])):  # an app's name, not a mistyped command (`destory logs`)
        return [argv[1], "-a", argv[0], *argv[2:]]
    return argv


def dispatch(ctx: Context, argv: Sequence[str]) -> int:
    """Run one admin command; returns the exit status. Errors become one line on stderr.
    Every command is recorded in the audit trail with its outcome (values redacted)."""
    from . import load_all

    load_all()
    argv = _app_first(list(argv), lambda name: name in {a.name for a in ctx.store.apps()})
    status, internal = 1, True
    try:
        status = _dispatch(ctx, argv)
        internal = False
        return status
    finally:
        cmd = COMMANDS.get(argv[0]) if argv else None
        app = None
        if cmd is not None:
            try:  # an app-less command may still name one with -a (`events -a myapp`)
                named = cmd.takes_app or cmd.names_app
                app, _ = split_app(argv[1:] if named else _only_flag(argv[1:]),
                                   cmd.raw, cmd.options)
            except UsageError:
                app = None
        metrics.commands.labels(cmd.name if cmd else "unknown",
                                metrics.command_outcome(status, internal)).inc()
        SLIFile(ctx.platform.paths.slo_file).record("api", not internal)
        trail = audit.Trail(ctx.platform.paths.audit_log)
        trail.command(ctx.user.name, ctx.user.fingerprint, argv, app or "", status)


def _only_flag(args: Sequence[str]) -> list[str]:
    """Just the `-a APP` / `--app=APP` of `args`, if there is one."""
    for i, item in enumerate(args):
        if item in ("-a", "--app") and i + 1 < len(args):
            return [item, args[i + 1]]
        if item.startswith("--app="):
            return [item]
    return []


def _dispatch(ctx: Context, argv: list[str]) -> int:
    if not argv or argv[0] in ("help", "--help", "-h"):
        return COMMANDS["help"].func(ctx, list(argv[1:])) or 0
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        ctx.err(f" !    Unknown command: {argv[0]!r}. Run 'help' to list the commands.\n")
        return 2
    args = list(argv[1:])
    if "--help" in args[:1] or "-h" in args[:1]:
        ctx.line(usage_of(cmd))
        ctx.line(f"  {cmd.summary}")
        return 0
    try:
        if cmd.admin and not ctx.user.is_admin:
            raise Forbidden(f"{cmd.name} is for admins only")
        if cmd.takes_app:
            app_name, args = split_app(args, cmd.raw, cmd.options)
            if app_name is None:
                raise UsageError(f"{cmd.name} needs an app: {cmd.name} APP ... or -a APP")
            try:
                app = ctx.app(app_name)
            except NotFound:
                raise
            if cmd.name not in NO_ROOM_NEEDED:
                diskspace.require_space(ctx.platform.settings.state_dir)
            status = cmd.func(ctx, app, args)
        else:
            if cmd.name not in NO_ROOM_NEEDED:
                diskspace.require_space(ctx.platform.settings.state_dir)
            status = cmd.func(ctx, args)
        return int(status or 0)
    except (InvalidName, InvalidValue) as err:
        ctx.err(f" !    {err}\n")  # the message says what a good one is: no usage line
        return err.exit_code
    except UsageError as err:
        ctx.err(f" !    {err}\n")
        ctx.err(f"{usage_of(cmd)}\n")
        return err.exit_code
    except PushdError as err:
        ctx.err(f" !    {err}\n")
        return err.exit_code
    except Exception as err:
        if not diskspace.is_full(err):
            raise
        ctx.err(f" !    {diskspace.disk_full(ctx.platform.settings.state_dir, err)}\n")
        return 1
