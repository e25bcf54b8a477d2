"""gc: what a deploy prunes, done by hand for every app, and what destroyed apps left."""

from __future__ import annotations

from ..appfiles import deploy_lock
from ..deploy import prune_slugs
from ..errors import Conflict, NotFound
from .registry import Context, command, no_more


@command("gc", "", "Remove old release images, exited and leftover containers, dangling "
         "layers and old slugs; print what was freed (admins)", app=False, admin=True)
def gc(ctx: Context, args: list[str]) -> None:
    no_more(args)
    from ..runtime.support import Freed

    platform = ctx.platform
    support = platform.support
    freed, slugs, busy = Freed(), [], []
    for app in platform.store.apps():
        try:
            with deploy_lock(platform, app, ctx.err, wait=False):
                prune_slugs(platform, app, slugs.append)
                freed.add(support.prune(app))
        except Conflict:
            busy.append(app.name)  # a push is building it: its containers are in use
        except NotFound:
            continue  # destroyed meanwhile
    freed.add(support.orphans())
    if busy:
        ctx.line(f"Skipped {', '.join(busy)}: a push is in progress")
    ctx.line(f"Removed {len(slugs)} old slug{'s' * (len(slugs) != 1)}")
    if not support.keeps_images:
        ctx.line(f"Runtime {platform.settings.runtime}: no images to collect")
        return
    ctx.line(freed.describe())
