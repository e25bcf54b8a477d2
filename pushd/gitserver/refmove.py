"""The deploy branch and the serving release agree after any single fault.

One order: the branch moves when the push's release has gone live. dulwich moves it once
the update step returns; a push that dies between the two (its pusher gone, the daemon
killed) would leave new code serving under the old branch. So before the release is cut, the
push writes down the move it means to make (`push.json`, synced); the move is then settled
from the store when the push ends however it ends, and at daemon start for a push a killed
daemon left: made if the push's release went live (status `succeeded`, or a newer live
release carries its slug), dropped otherwise (the branch stays; the previous release
serves, pushing again retries)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from dulwich.repo import Repo

from ..files import replace_file
from ..models import App
from ..platform import Platform

log = logging.getLogger("pushd.push")
MOVE_FILE = "push.json"


@dataclass(frozen=True)
class RefMove:
    ref: str
    old: str  # 40 hex, or 40 zeros for a new branch
    new: str
    after: int  # the app's newest release version when the push began releasing


def _file(platform: Platform, app_id: int) -> Path:
    return platform.paths.app_dir(app_id) / MOVE_FILE


def record(platform: Platform, app: App, move: RefMove) -> None:
    replace_file(_file(platform, app.id), json.dumps(asdict(move)), sync=True)


def _read(path: Path) -> RefMove | None:
    try:
        return RefMove(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def went_live(platform: Platform, app: App, move: RefMove) -> int | None:
    """The version of the push's release if its code went live (itself or a successor
    carrying its slug), else None."""
    store = platform.store
    newer = [r for r in store.releases(app.id, limit=50) if r.version > move.after]
    ours = [r for r in newer if r.commit == move.new and r.slug_id
            and r.description == f"Deploy {move.new[:7]}"]
    if not ours:
        return None
    push = min(ours, key=lambda r: r.version)
    live = [r for r in newer if r.status == "succeeded" and r.slug_id == push.slug_id]
    return push.version if live else None


def settle(platform: Platform, app: App) -> str | None:
    """Make or drop the move a push recorded for `app`; what was done, for the log."""
    path = _file(platform, app.id)
    move = _read(path)
    if move is None:
        path.unlink(missing_ok=True)
        return None
    said = None
    version = went_live(platform, app, move)
    repo_path = platform.paths.repo(app.id)
    if version is not None and repo_path.exists():
        repo = Repo(str(repo_path))
        try:
            ref, old, new = move.ref.encode(), move.old.encode(), move.new.encode()
            now = repo.refs.as_dict().get(ref)
            if now != new and new in repo.object_store and repo.refs.set_if_equals(
                    ref, None if old == b"0" * 40 else old, new):
                said = (f"{move.ref} moved to {move.new[:7]}: release v{version} went live "
                        "before its push ended")
        finally:
            repo.close()
    path.unlink(missing_ok=True)
    return said


def settle_all(platform: Platform) -> None:
    """At daemon start (no push runs yet): settle what killed pushes left."""
    for app in platform.store.apps():
        said = settle(platform, app)
        if said:
            log.warning("%s: %s", app.name, said)
