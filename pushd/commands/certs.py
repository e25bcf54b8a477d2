"""certs, certs:info, certs:add, certs:remove, certs:platform; features, features:enable,
features:disable (redirect-https, hsts).

`certs:add` reads one PEM bundle on stdin: the certificate chain (leaf first) and its
unencrypted private key, concatenated in either order:
    cat fullchain.pem privkey.pem | ssh platform certs:add myapp
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CertificateError, Conflict, NotFound, UsageError
from ..models import App
from ..tls import certs
from ..tls.install import app_hosts, install, now
from ..tls.sites import FEATURES
from .registry import Context, command, no_more, one_arg


def expiry(info: certs.Certificate) -> str:
    days = info.expires_in(now()).days
    return f"{info.not_after:%Y-%m-%d %H:%M} UTC ({days} days)"


@command("certs", "APP", "List the app's SSL certificate")
def certs_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    found = ctx.platform.certs.app_cert(app.id)
    ctx.line(f"=== {app.name} SSL Certificates")
    if found is None:
        ctx.line(f"{app.name} has no SSL certificates.")
        ctx.line(f"Use `certs:add {app.name}` (PEM chain and key on stdin) or "
                 f"`certs:auto:enable {app.name}`.")
        return
    rows = [("Common Name(s)", "Expires", "Trusted", "Type"),
            (", ".join(found.info.names), expiry(found.info),
             "False" if found.info.self_signed else "True",
             "ACM" if found.source == "acme" else "SNI")]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        ctx.line("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@command("certs:info", "APP", "Show the app's SSL certificate in detail")
def certs_info(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    found = ctx.platform.certs.app_cert(app.id)
    if found is None:
        raise NotFound(f"{app.name} has no SSL certificate")
    info = found.info
    ctx.line(f"=== {app.name} SSL Certificate")
    for label, value in (
        ("Common Name(s)", ", ".join(info.names)),
        ("Domains", ", ".join(h for h in app_hosts(ctx.platform, app) if info.covers(h)) or "none"),
        ("Starts At", f"{info.not_before:%Y-%m-%d %H:%M} UTC"),
        ("Expires At", expiry(info)),
        ("Issuer", info.issuer),
        ("Subject", info.subject),
        ("Fingerprint", info.fingerprint),
        ("Source", {"acme": "ACM (certs:auto)"}.get(found.source, "certs:add")),
        ("Trusted", "no (self-signed)" if info.self_signed else "yes"),
    ):
        ctx.line(f"{label + ':':<16}{value}")


@command("certs:add", "APP [FULLCHAIN KEY]  (over SSH: the PEM chain + key on stdin)",
         "Add an SSL certificate for the app's domains")
def certs_add(ctx: Context, app: App, args: list[str]) -> None:
    if ctx.platform.certs.state(app.id).get("auto"):
        raise Conflict(f"Automatic certificates are enabled for {app.name}: run "
                       f"certs:auto:disable {app.name} first")
    bundle = read_bundle(ctx, args, f"cat fullchain.pem privkey.pem | ssh platform certs:add "
                                    f"{app.name}")
    ctx.out(f"Adding SSL certificate to {app.name}... ")
    chain, key = certs.split_bundle(bundle)
    installed = install(ctx.platform, app, chain, key, "manual")
    ctx.line("done")
    ctx.line(f"Certificate for {', '.join(installed.info.names)}, expires "
             f"{expiry(installed.info)}")


def read_bundle(ctx: Context, args: list[str], example: str) -> bytes:
    """FULLCHAIN KEY files for the local CLI (root on this host) and for admins; the PEM
    bundle on stdin for everyone (a user's key must never name a file of the host)."""
    if not args:
        return ctx.read_stdin()
    if len(args) != 2:
        raise UsageError(f"Expected FULLCHAIN KEY, or the PEM bundle on stdin: {example}")
    if not ctx.user.is_admin:
        raise UsageError(f"Over SSH the certificate comes on stdin: {example}")
    try:
        return Path(args[0]).read_bytes() + b"\n" + Path(args[1]).read_bytes()
    except OSError as err:
        raise CertificateError(f"Cannot read {err.filename}: {err.strerror}") from None


@command("certs:remove", "APP", "Remove the app's SSL certificate")
def certs_remove(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.out(f"Removing SSL certificate from {app.name}... ")
    if not ctx.platform.certs.remove_app(app.id):
        ctx.line("")
        raise NotFound(f"{app.name} has no SSL certificate")
    ctx.platform.notify()
    ctx.line("done")


@command("certs:platform", "[FULLCHAIN KEY]  (or the PEM bundle on stdin)",
         "Set the certificate of *.DOMAIN (admins)", app=False, admin=True)
def certs_platform(ctx: Context, args: list[str]) -> None:
    chain, key = certs.split_bundle(read_bundle(
        ctx, args, "cat fullchain.pem privkey.pem | ssh platform certs:platform"))
    info = certs.check_pair(chain, key, now())
    domain = ctx.platform.settings.domain
    certs.check_domains(info, [f"*.{domain}"])
    ctx.out(f"Setting the certificate of *.{domain}... ")
    ctx.platform.certs.install_platform(chain, key)
    ctx.platform.notify()
    ctx.line("done")
    ctx.line(f"Certificate for {', '.join(info.names)}, expires {expiry(info)}")


def _feature(args: list[str], command_name: str) -> str:
    name = one_arg(args, command_name, "a feature name").lower()
    if name not in FEATURES:
        raise UsageError(f"Unknown feature {name[:40]!r}: {', '.join(sorted(FEATURES))}")
    return name


@command("features", "APP", "List the app's features")
def features_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    enabled = ctx.platform.certs.state(app.id).get("features", [])
    ctx.line(f"=== App Features {app.name}")
    for name, summary in sorted(FEATURES.items()):
        ctx.line(f"[{'+' if name in enabled else ' '}] {name:<16}{summary}")


@command("features:enable", "APP FEATURE", "Enable an app feature (redirect-https, hsts)")
def features_enable(ctx: Context, app: App, args: list[str]) -> None:
    _set_feature(ctx, app, _feature(args, "features:enable"), True)


@command("features:disable", "APP FEATURE", "Disable an app feature")
def features_disable(ctx: Context, app: App, args: list[str]) -> None:
    _set_feature(ctx, app, _feature(args, "features:disable"), False)


def _set_feature(ctx: Context, app: App, name: str, on: bool) -> None:
    enabled = set(ctx.platform.certs.state(app.id).get("features", []))
    enabled = enabled | {name} if on else enabled - {name}
    ctx.platform.certs.update_state(app.id, features=sorted(enabled))
    ctx.platform.notify()
    ctx.line(f"{'Enabled' if on else 'Disabled'} {name} for {app.name}.")
