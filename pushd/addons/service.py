"""What the addons commands do, through any provider: create, attach, detach, rotate,
destroy, backups; and `keep_up` for the daemon. Attach, detach and rotate cut releases of
kind "addon" (`Release.kind`), which a release phase skips."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from .. import deploy
from ..errors import Conflict, InvalidName, NotFound, ReleaseFailed
from ..models import App, Release
from ..platform import Platform
from ..store_addons import Addon, Attachment
from .base import AddonError, Provider, ProviderEnv, make_provider

ATTACHMENT_RE = re.compile(r"[A-Z][A-Z0-9_]{0,30}")
ADDON_RE = re.compile(r"[a-z][a-z0-9]{0,19}-[a-z]{3,10}-[0-9]{4}")
BACKUP_RE = re.compile(r"b([0-9]{3,6})")
WORDS = ("amber", "aqua", "black", "blue", "bronze", "coral", "crimson", "cyan", "gold",
         "gray", "green", "indigo", "ivory", "jade", "lime", "navy", "olive", "onyx", "pink",
         "plum", "purple", "red", "rose", "ruby", "silver", "teal", "violet", "white")
KIND = "addon"


def attachment_name(value: str) -> str:
    """`--as` names: the config var's prefix (DATABASE for DATABASE_URL)."""
    name = value.upper().removesuffix("_URL")
    if not ATTACHMENT_RE.fullmatch(name):
        raise InvalidName(f"Invalid attachment name {value[:40]!r}: use letters, digits and "
                          "underscores, starting with a letter (at most 31)")
    return name


def addon_name(value: str) -> str:
    if not ADDON_RE.fullmatch(value):
        raise InvalidName(f"Invalid add-on name {value[:40]!r}: add-ons are named like "
                          "postgres-amber-1234")
    return value


def provider(platform: Platform, kind: str) -> Provider:
    store = platform.store
    servers = {**platform.settings.addon_servers, **store.addon_servers()}
    taken = frozenset(p for a in store.addons() for p in a.ports)
    return make_provider(kind, ProviderEnv(platform.settings, platform.paths, servers, taken))


def _release(platform: Platform, app: App, description: str, user: str, *,
             config_set: dict[str, str] | None = None,
             config_unset: list[str] | None = None) -> Release:
    return deploy.release(platform, app, description=description, user=user,
                          config_set=config_set, config_unset=config_unset, kind=KIND)


def _pick_attachment(platform: Platform, app: App, default: str, addon: str,
                     wanted: str | None) -> str:
    config = platform.store.config(app.id)
    taken = {a.name for a in platform.store.attachments(app_id=app.id)}
    if wanted is not None:
        name = attachment_name(wanted)
        if name in taken or f"{name}_URL" in config:
            raise Conflict(f"{name}_URL is already set on {app.name}; choose another --as")
        return name
    for name in (default, addon.upper().replace("-", "_")):
        if name not in taken and f"{name}_URL" not in config:
            return name
    raise Conflict(f"{default}_URL is already set on {app.name}; name this one with --as")


def create(platform: Platform, app: App, kind: str, wanted: str | None, user: str
           ) -> tuple[Addon, Attachment, Release]:
    prov = provider(platform, kind)
    existing = {a.name for a in platform.store.addons()}
    name = next(n for n in (f"{kind}-{random.choice(WORDS)}-{random.randint(1000, 9999)}"
                            for _ in range(1000)) if n not in existing)
    att_name = _pick_attachment(platform, app, prov.default_attachment, name, wanted)
    state = prov.create(name)  # AddonError: the provider left nothing behind
    try:
        addon = platform.store.add_addon(name, kind, app.id, state, prov.ports(state))
    except BaseException:
        prov.destroy(state)
        raise
    att, new = attach(platform, addon, app, att_name, user)
    return addon, att, new


def attach(platform: Platform, addon: Addon, app: App, att_name: str, user: str
           ) -> tuple[Attachment, Release]:
    prov = provider(platform, addon.kind)
    att = platform.store.attach_addon(app.id, att_name, addon.name)
    new = _release(platform, app, f"Attach {att.name}", user,
                   config_set={att.var: prov.url(addon.state)})
    return att, new


def attach_named(platform: Platform, addon: Addon, app: App, wanted: str | None, user: str
                 ) -> tuple[Attachment, Release]:
    default = provider(platform, addon.kind).default_attachment
    return attach(platform, addon, app,
                  _pick_attachment(platform, app, default, addon.name, wanted), user)


def detach(platform: Platform, app: App, att: Attachment, user: str) -> Release:
    platform.store.detach_addon(app.id, att.name)
    return _release(platform, app, f"Detach {att.name}", user, config_unset=[att.var])


def find_attachment(platform: Platform, app: App, name: str) -> Attachment:
    """An app's attachment by its name (DATABASE, DATABASE_URL) or its add-on's name."""
    for att in platform.store.attachments(app_id=app.id):
        if name in (att.name, att.var, att.addon):
            return att
    raise NotFound(f"Couldn't find that add-on attachment on {app.name}: {name}")


def rotate(platform: Platform, addon: Addon, user: str) -> list[Release]:
    """New credentials beside the old; every attached app gets the new URL in a release and
    rolls onto it; only then is the old password revoked. A release that fails keeps the old
    password valid (both work) and says so."""
    prov = provider(platform, addon.kind)
    current = {k: v for k, v in addon.state.items() if k != "revoke"}
    new_state = prov.rotate(current)
    # both valid until the apps run with the new one: kept, should we die before revoking
    platform.store.set_addon_state(addon.name, {**new_state, "revoke": current})
    releases = []
    for att in platform.store.attachments(addon=addon.name):
        app = platform.store.app_by_id(att.app_id)
        if app is None:
            continue
        try:
            new = _release(platform, app, f"Rotate {att.name} credentials", user,
                           config_set={att.var: prov.url(new_state)})
        except ReleaseFailed as err:
            raise ReleaseFailed(f"{err}; the old credentials stay valid until a rotation "
                                "completes") from None
        releases.append(new)
        _wait_old_dynos_gone(platform, app.id, new.version)
    prov.revoke(current, new_state)
    # when these credentials were made: their age is a metric (pushd_addon_credential_age)
    platform.store.set_addon_state(addon.name, {**new_state, "rotated_at": time.time()})
    return releases


def _wait_old_dynos_gone(platform: Platform, app_id: int, version: int) -> None:
    """The dynos of releases before `version` still draining finish with the old password."""
    if not platform.running:
        return
    deadline = time.monotonic() + platform.settings.stop_timeout + 10
    while time.monotonic() < deadline:
        if not any(i.running and i.spec.app_id == app_id and i.spec.release < version
                   and i.spec.process_type != "run" for i in platform.runtime.list()):
            return
        time.sleep(0.1)


def destroy(platform: Platform, addon: Addon, user: str) -> list[str]:
    """Detach from every app (vars removed in a release each), then remove the data. An app
    whose release without the var fails (it needs it to boot) does not keep the data: its
    previous release serves on, and the returned lines say so."""
    warnings = []
    for att in platform.store.attachments(addon=addon.name):
        app = platform.store.app_by_id(att.app_id)
        if app is not None:
            try:
                detach(platform, app, att, user)
            except ReleaseFailed as err:
                warnings.append(f"{app.name}: {err}; {att.var} is removed from its config")
    provider(platform, addon.kind).destroy(addon.state)
    platform.store.delete_addon(addon.name)
    for backup in backups(platform, addon):
        backup.unlink(missing_ok=True)
    return warnings


def backup_dir(platform: Platform, addon: Addon) -> Path:
    folder = platform.paths.root / "addons" / "backups" / addon.name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def backups(platform: Platform, addon: Addon) -> list[Path]:
    return sorted(p for p in backup_dir(platform, addon).iterdir()
                  if BACKUP_RE.fullmatch(p.stem))


def backup(platform: Platform, addon: Addon) -> Path:
    folder = backup_dir(platform, addon)
    taken = [int(BACKUP_RE.fullmatch(p.stem).group(1)) for p in backups(platform, addon)]
    dest = folder / f"b{max(taken, default=0) + 1:03d}.dump"
    partial = dest.with_suffix(".partial")
    try:
        provider(platform, addon.kind).backup(addon.state, partial)
        partial.rename(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def restore(platform: Platform, addon: Addon, name: str) -> None:
    if not BACKUP_RE.fullmatch(name):
        raise InvalidName(f"Invalid backup name {name[:20]!r}: backups are named like b001")
    path = backup_dir(platform, addon) / f"{name}.dump"
    if not path.exists():
        raise NotFound(f"No backup {name} of {addon.name}")
    provider(platform, addon.kind).restore(addon.state, path)


def keep_up(platform: Platform) -> None:
    """Start or adopt every add-on's service (the daemon calls this every few seconds)."""
    for addon in platform.store.addons():
        try:
            provider(platform, addon.kind).keep_up(addon.state)
        except AddonError as err:
            import logging

            logging.getLogger("pushd.addons").error("%s: %s", addon.name, err)


def release_app_addons(platform: Platform, app: App, force: bool, user: str) -> None:
    """Before `apps:destroy`: refuse while add-ons are attached or owned, unless `force`,
    which destroys the app's own add-ons and detaches the others'."""
    store = platform.store
    own = [a for a in store.addons() if a.app_id == app.id]
    atts = store.attachments(app_id=app.id)
    if not own and not atts:
        return
    if not force:
        listed = ", ".join(sorted({a.name for a in own} | {a.addon for a in atts}))
        raise Conflict(f"{app.name} has add-ons ({listed}): destroy or detach them first, or "
                       "add --force to destroy its own and detach the others")
    for att in atts:
        if store.addon(att.addon).app_id != app.id:
            store.detach_addon(app.id, att.name)  # the app goes: no release needed
    for addon in own:
        destroy(platform, addon, user)


def stop_all(platform: Platform) -> None:
    """`pushd down --all`: stop every add-on's server (their data stays)."""
    from .base import kinds

    addons = platform.store.addons()
    for kind in kinds():
        provider(platform, kind).shutdown([a.state for a in addons if a.kind == kind])
