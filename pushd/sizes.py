"""app.json `formation.<type>.size` (Heroku's dyno sizes) as the platform's resource limits:
each size is a memory limit per dyno, stored as that type's `resource:limit` at the push
(unless the type already has a memory limit of its own: an explicit `resource:limit` wins,
and a size only sets a type once, as formation's quantity does). Both runtimes get it like
any limit. The operator's maximum per dyno and the owner's memory quota still hold."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .appjson import SIZES, Formation
from .governance import enforce, quotas
from .limits import Limit, check_bounds, for_dyno, memory_text
from .models import App


def apply(platform, app: App, formation: Mapping[str, Formation],  # noqa: ANN001
          process_types: Iterable[str], out: Callable[[str], None] = lambda _: None
          ) -> dict[str, int]:
    """Store the memory of each sized type the release declares that has no memory limit
    of its own; Refused (nothing stored) past the platform's maximum or the owner's memory
    quota. What it set, by type (MB)."""
    store, settings = platform.store, platform.settings
    types = [t for t in process_types if t != "release"]
    stored = store.resource_limits(app.id)
    sized = {kind: SIZES[entry.size] for kind, entry in formation.items()
             if entry.size and kind in types
             and stored.get(kind, Limit()).memory_mb is None}
    if not sized:
        return {}
    for megabytes in sized.values():
        check_bounds(megabytes, None, settings.max_dyno_memory_mb, settings.max_dyno_cpu)
    limits = store.quotas(app.owner)
    if "memory" in limits:
        def after(kind: str) -> int:
            return sized.get(kind) or for_dyno(store, settings, app.id, kind).memory_mb

        current = store.formation(app.id)
        started = {t: current.get(t, formation[t].quantity if t in formation
                                  else int(t == "web")) for t in types}
        quotas.check_formation(app.owner, limits, enforce.usage(platform, app.owner),
                               quotas.formation_cost(current, enforce.memory_of(platform,
                                                                                 app.id)),
                               quotas.formation_cost(started, after))
    for kind, megabytes in sized.items():
        store.set_resource_limit(app.id, kind, Limit(megabytes, stored.get(kind, Limit()).cpu))
        out(f"-----> {kind} dynos are {formation[kind].size}: {memory_text(megabytes)} of "
            "memory each (resource:report)\n")
    return sized
