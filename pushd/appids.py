"""When a destroyed app's id, and with it its uid (`settings.app_uid`), may go to a new app.

Ids are few (`APP_UID_SPAN`) and each is an app's unix uid, so a new app takes the lowest free
one; but never while anything of an app that had it remains: its folder (repo, slugs, cache,
logs), its dyno or one-off folders (with their layers), or a process running as its uid (in a
dyno's cgroups, in a build, anywhere). Otherwise the new app could read the old one's files or
signal its processes as their owner.

A dyno's cgroups are released before its folder goes (shim exit, `SandboxRuntime.remove`), so
the folder stands for them; and what they hold is processes, counted by uid. The cgroup tree
itself is not looked at: names in it are dyno ids, shared by every pushd on the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .paths import Paths
from .settings import Settings, app_uid


def running_uids(proc: Path = Path("/proc")) -> set[int]:
    """Every real, effective, saved and filesystem uid a process runs with right now."""
    uids: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    uids.update(int(uid) for uid in line.split()[1:])
                    break
        except (OSError, ValueError):  # it ended while we looked
            continue
    return uids


def remains(paths: Paths, app_id: int, uid: int, uids: set[int]) -> list[str]:
    """What is left of the app that had `app_id`, as short descriptions (empty: nothing)."""
    found = []
    if os.path.lexists(paths.app_dir(app_id)):
        found.append(f"folder {paths.app_dir(app_id)}")
    prefix = f"{app_id}-"  # dyno ids start with their app's id
    if paths.dynos_dir.exists():
        found += [f"dyno {entry.name}" for entry in paths.dynos_dir.iterdir()
                  if entry.name.startswith(prefix)]
    if uid in uids:
        found.append(f"processes of uid {uid}")
    return found


def reusable(settings: Settings, paths: Paths) -> Callable[[int], bool]:
    """For `Store.create_app`: whether an id no app has may be handed out now. The processes
    are looked up once, when the first id is asked about."""
    uids: set[int] | None = None

    def usable(app_id: int) -> bool:
        nonlocal uids
        if uids is None:
            uids = running_uids()
        return not remains(paths, app_id, app_uid(settings, app_id), uids)

    return usable
