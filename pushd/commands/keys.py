"""keys, keys:add, keys:remove (admins) and access, access:add, access:remove."""

from __future__ import annotations

from .. import names
from ..errors import Forbidden, NotFound, UsageError
from ..models import App, Key
from ..sshkeys import parse_public_key
from .registry import Context, command, no_more, one_arg, parse_options

ROLES = ("admin", "user")


@command("keys", "", "List registered SSH keys (admins)", app=False, admin=True)
def keys_list(ctx: Context, args: list[str]) -> None:
    if args:
        raise UsageError("keys takes no arguments")
    keys = ctx.store.keys()
    ctx.line("=== Keys")
    width = max((len(k.name) for k in keys), default=4)
    for key in keys:
        ctx.line(f"{key.name:<{width}}  {key.role:<5}  {key.fingerprint}")


def add_key(store, name: str, role: str, line: str) -> Key:  # noqa: ANN001
    names.key_name(name)
    if role not in ROLES:
        raise UsageError(f"Unknown role {role!r}: use admin or user")
    public, fingerprint = parse_public_key(line)
    key = Key(name=name, role=role, public_key=public, fingerprint=fingerprint)
    store.add_key(key)
    return key


@command("keys:add", "NAME [--role admin|user]  (public key on stdin)",
         "Register an SSH public key", app=False, admin=True)
def keys_add(ctx: Context, args: list[str]) -> None:
    opts, rest = parse_options(args, {"--role": "role", "-r": "role"}, {})
    name = one_arg(rest, "keys:add", "a NAME")
    line = ctx.read_stdin().decode("utf-8", "replace")
    key = add_key(ctx.store, name, opts.get("role", "user"), line)
    ctx.line(f"Added key {key.name} ({key.role}) {key.fingerprint}")


@command("keys:remove", "NAME", "Remove an SSH key (refused while it owns apps)", app=False,
         admin=True)
def keys_remove(ctx: Context, args: list[str]) -> None:
    name = names.key_name(one_arg(args, "keys:remove", "a NAME"))
    if name == ctx.user.name:
        raise UsageError("You cannot remove the key you are using")
    ctx.store.remove_key(name)
    ctx.line(f"Removed key {name}")


def _owner_or_admin(ctx: Context, app: App) -> None:
    if not (ctx.user.is_admin or app.owner == ctx.user.name):
        raise Forbidden(f"Only the owner of {app.name} or an admin can change its access")


@command("access", "APP", "List who can act on the app")
def access_list(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    ctx.line(f"=== {app.name} Access")
    ctx.line(f"{app.owner}  owner")
    for name in ctx.store.collaborators(app.id):
        ctx.line(f"{name}  collaborator")


@command("access:add", "APP KEYNAME", "Let another key act on the app")
def access_add(ctx: Context, app: App, args: list[str]) -> None:
    _owner_or_admin(ctx, app)
    name = names.key_name(one_arg(args, "access:add", "a key name"))
    if name not in {k.name for k in ctx.store.keys()}:
        raise NotFound(f"No key named {name}")
    ctx.store.grant(app.id, name)
    ctx.line(f"Adding {name} access to {app.name}... done")


@command("access:remove", "APP KEYNAME", "Take a key's access to the app away")
def access_remove(ctx: Context, app: App, args: list[str]) -> None:
    _owner_or_admin(ctx, app)
    name = names.key_name(one_arg(args, "access:remove", "a key name"))
    ctx.store.revoke(app.id, name)
    ctx.line(f"Removing {name} access from {app.name}... done")
