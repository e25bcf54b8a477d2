"""`pushd` command line: up, down, status, and every admin command run locally
(`pushd config:set myapp A=1` runs the same code as `ssh platform config:set myapp A=1`)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from . import daemon, diskspace, firewall, ports
from .errors import PushdError, UsageError
from .models import LOCAL_ADMIN
from .platform import Platform
from .settings import Settings, load


def platform_for(live: bool = True, **flags: object) -> Platform:
    """The platform for these flags; a bad pushd.yaml or flag ends the CLI with one line.
    `live`: where the daemon runs, the ports and domain it was started with win (`pushd up
    --http-port 9000` is what `status` and `apps:info` must report)."""
    try:
        settings = load(flags)
        return Platform(daemon.live_settings(settings) if live else settings)
    except PushdError as err:
        _fail(err)
        raise  # not reached: _fail exits


class PushdGroup(click.Group):
    """Known click commands first; anything else is an admin command from the registry."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        from .commands import load_all
        from .commands.registry import COMMANDS

        load_all()
        if name not in COMMANDS:
            return None
        return admin_command(name, COMMANDS[name].summary)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PermissionError as err:  # one line, not a traceback
            click.echo(f" !    {err.strerror}: {err.filename or ''} (pushd's state belongs to "
                       "root: run this as root)", err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .commands import load_all
        from .commands.registry import COMMANDS

        load_all()
        return [*super().list_commands(ctx), *sorted(COMMANDS)]


def admin_command(name: str, summary: str) -> click.Command:
    @click.command(name=name, help=summary, add_help_option=False,
                   context_settings={"ignore_unknown_options": True,
                                     "allow_interspersed_args": False})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def run(obj: dict, args: tuple[str, ...]) -> None:
        """Handed to the running daemon over its control socket: the same code as over SSH."""
        from .control.client import NotRunning
        from .control.client import run as remote
        from .control.server import socket_path

        platform = platform_for(state_dir=obj.get("state_dir"))
        try:
            status = remote(socket_path(platform.paths.root), [name, *args])
        except NotRunning as err:
            if name != "help":
                _fail(err)
            from .commands.registry import Context, dispatch

            status = dispatch(Context(platform, LOCAL_ADMIN, sys.stdout.write, sys.stderr.write),
                              [name, *args])
        except KeyboardInterrupt:
            status = 130
        sys.exit(status)

    return run


@click.group(cls=PushdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", envvar="PUSHD_HOME", help="State directory (env PUSHD_HOME)")
@click.pass_context
def main(ctx: click.Context, state_dir: str | None) -> None:
    """pushd: git push to deploy, Heroku-style, on your own server."""
    ctx.obj = {"state_dir": state_dir}


def _fail(err: PushdError) -> NoReturn:
    click.echo(f" !    {err}", err=True)
    sys.exit(err.exit_code)


def daemon_argv(platform: Platform) -> list[str]:
    """`pushd up` arguments that give a detached daemon exactly these settings, whatever its
    working directory (absolute state dir; the admin key was registered by the caller)."""
    s = platform.settings
    argv = ["--state-dir", str(s.state_dir), "up", "--ssh-port", str(s.ssh_port),
            "--http-port", str(s.http_port), "--https-port", str(s.https_port),
            "--domain", s.domain, "--runtime", s.runtime, "--metrics-port", str(s.metrics_port)]
    return [*argv, "--system-nginx"] if s.system_nginx else argv


@main.command()
@click.option("--state-dir", help="State directory (default /var/lib/pushd, env PUSHD_HOME)")
@click.option("--ssh-port", type=int, help="SSH port (default 2222)")
@click.option("--http-port", type=int, help="HTTP port of the router (default 8080)")
@click.option("--https-port", type=int, help="HTTPS port of the router (443; default 0: off)")
@click.option("--domain", help="Apps answer at APP.DOMAIN (default localhost)")
@click.option("--admin-key", type=click.Path(exists=True, dir_okay=False),
              help="Register this public key file as an admin key")
@click.option("--runtime", help="Dyno runtime (default sandbox)")
@click.option("--metrics-port", type=int,
              help="Serve Prometheus metrics on this port (loopback; default: off)")
@click.option("--system-nginx", is_flag=True, default=None,
              help="Write an include for the system's nginx instead of running our own")
@click.option("--detach", is_flag=True, help="Run in the background; return once it is up")
@click.pass_obj
def up(obj: dict, state_dir: str | None, ssh_port: int | None, http_port: int | None,
       https_port: int | None, domain: str | None, admin_key: str | None, runtime: str | None,
       metrics_port: int | None, system_nginx: bool | None, detach: bool) -> None:
    """Start the platform: SSH server, process manager and router, in one daemon."""
    flags = {"state_dir": state_dir or obj.get("state_dir"), "ssh_port": ssh_port,
             "http_port": http_port, "https_port": https_port, "domain": domain,
             "runtime": runtime, "metrics_port": metrics_port, "system_nginx": system_nginx}
    try:
        platform = platform_for(live=False, **flags)
        clash = ports.ephemeral_clash(platform.settings.port_range, ports.kernel_ephemeral_range())
        if clash:
            raise UsageError(clash)
        platform.support.prepare_host(click.echo)  # e.g. the stack image of docker's
        if admin_key:
            click.echo(daemon.register_admin_key(platform, admin_key))
        if not platform.store.keys():
            click.echo("warning: no SSH key is registered yet; use --admin-key FILE", err=True)
        if detach:
            pid = daemon.start_detached(platform, daemon_argv(platform))
            s = platform.settings
            click.echo(f"pushd is up (pid {pid}): ssh on port {s.ssh_port}, "
                       f"http on port {s.http_port}, state in {s.state_dir}")
            return
        daemon.run(platform)
    except PushdError as err:
        _fail(err)


@main.command()
@click.option("--state-dir", help="State directory")
@click.option("--all", "everything", is_flag=True, help="Also stop every dyno and the router")
@click.pass_obj
def down(obj: dict, state_dir: str | None, everything: bool) -> None:
    """Stop the daemon (dynos keep serving unless --all)."""
    platform = platform_for(state_dir=state_dir or obj.get("state_dir"))
    try:
        click.echo(daemon.stop(platform, everything))
    except PushdError as err:
        _fail(err)


def _firewall_state(settings: Settings) -> str:
    if not settings.firewall:
        return "NOT private (firewall: false in pushd.yaml)"
    rules = firewall.installed(settings)
    if rules is None:
        return "unknown (reading the rules needs root)"
    return f"private (nft table {firewall.table_name(settings)})" if rules else (
        "NOT private (no rules: is pushd running?)")


@main.command()
@click.option("--state-dir", help="State directory")
@click.pass_obj
def status(obj: dict, state_dir: str | None) -> None:
    """Show what runs: the daemon, the router and the dynos."""
    platform = platform_for(state_dir=state_dir or obj.get("state_dir"))
    s = platform.settings
    pid = platform.daemon_pid()
    click.echo(f"State dir:  {s.state_dir}")
    click.echo(f"Disk:       {diskspace.status_line(s.state_dir, s.disk_warn_mb)}")
    click.echo(f"Daemon:     {'running, pid ' + str(pid) if pid else 'not running'}")
    click.echo(f"SSH:        port {s.ssh_port}")
    click.echo(f"HTTP:       port {s.http_port} (apps at http://APP.{s.domain}:{s.http_port}/)")
    if s.https_port:
        click.echo(f"HTTPS:      port {s.https_port}")
    click.echo(f"Router:     {platform.router.describe()}")
    click.echo(f"Dyno ports: {_firewall_state(s)}")
    click.echo(f"Runtime:    {s.runtime}")
    dynos = [d for d in platform.runtime.list() if d.running]
    click.echo(f"Dynos:      {len(dynos)} running")
    names = {a.id: a.name for a in platform.store.apps()}
    for dyno in sorted(dynos, key=lambda d: (d.spec.app, d.spec.dyno)):
        app = names.get(dyno.spec.app_id, dyno.spec.app)
        click.echo(f"  {app} {dyno.spec.dyno} v{dyno.spec.release} pid {dyno.pid}")



@main.command(name="stack:build")
@click.option("--state-dir", help="State directory (the temporary root is made under it)")
@click.option("--force", is_flag=True, help="Rebuild even if the image is present")
@click.pass_obj
def stack_build(obj: dict, state_dir: str | None, force: bool) -> None:
    """Make the stack image (Debian + buildpack needs) in the local Docker engine."""
    from . import stack

    try:
        settings = load({"state_dir": state_dir or obj.get("state_dir")})
        builder = stack.StackBuilder(stack.engine(), settings.state_dir / "tmp",
                                     lambda line: click.echo(line))
        builder.build(settings.stack, force=force)
    except PushdError as err:
        _fail(err)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
