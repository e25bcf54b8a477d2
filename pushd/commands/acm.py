"""certs:auto, certs:auto:enable, certs:auto:disable (Heroku's ACM): certificates for the
app's custom domains from the `acme_directory` CA, ordered and renewed by the daemon."""

from __future__ import annotations

from ..errors import UsageError
from ..models import App
from .certs import expiry
from .registry import Context, command, no_more


@command("certs:auto", "APP", "Show the status of automatic certificates")
def auto_status(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    state = ctx.platform.certs.state(app.id)
    ctx.line(f"=== Automatic Certificate Management is "
             f"{'enabled' if state.get('auto') else 'disabled'} on {app.name}")
    if not state.get("auto"):
        return
    cert = ctx.platform.certs.app_cert(app.id)
    domains = ctx.store.domains(app.id)
    if not domains:
        ctx.line(f"No custom domains: add one with domains:add {app.name} HOST")
    for host in domains:
        ok = cert is not None and cert.source == "acme" and cert.info.covers(host)
        shown = f"OK, expires {expiry(cert.info)}" if ok and cert else (
            "Failing" if state.get("status") == "failing" else "In progress")
        ctx.line(f"{host:<40}{shown}")
    if state.get("status") == "failing" and state.get("error"):
        ctx.line(f"Last failure: {state['error']}")
        ctx.line(f"Failures: {state.get('failures', 1)}; retried with backoff")


@command("certs:auto:enable", "APP", "Order and renew certificates automatically (ACME)")
def auto_enable(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    if not ctx.platform.settings.https_port:
        raise UsageError("HTTPS is off: start pushd with --https-port (https_port)")
    ctx.out(f"Enabling Automatic Certificate Management for {app.name}... ")
    ctx.platform.certs.update_state(app.id, auto=True, status="pending", error=None,
                                    failures=0, next_attempt=0)
    _wake(ctx)
    ctx.line("done")


@command("certs:auto:disable", "APP", "Stop automatic certificates (the current one stays)")
def auto_disable(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.out(f"Disabling Automatic Certificate Management for {app.name}... ")
    ctx.platform.certs.update_state(app.id, auto=False, status=None, error=None)
    ctx.line("done")


def _wake(ctx: Context) -> None:
    renewer = getattr(ctx.platform, "renewer", None)
    if renewer is not None:
        renewer.wake()  # in the daemon; from the CLI its next pass (2 s) picks it up
