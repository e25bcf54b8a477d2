"""An app's folder on disk: the deploy lock that guards it, its bare repo, and folders inside
it that must never bring a destroyed app's folder back. Shared by the git server, the
commands and the builder (none of which imports another for this)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dulwich.repo import Repo

from .errors import BuildError, Conflict, NotFound
from .models import App
from .platform import Platform
from .settings import app_uid


@contextmanager
def deploy_lock(platform: Platform, app: App, say: Callable[[str], None], *,
                wait: bool = True) -> Iterator[None]:
    """One push (or destroy) per app at a time. A second push waits for the first and says
    so; with `wait=False` a held lock is a Conflict. An app the store no longer has is
    NotFound, checked again once the lock is ours, and its folder is never left behind."""
    store = platform.store
    if store.app_by_id(app.id) is None:
        raise NotFound(f"Couldn't find that app: {app.name}")
    folder = platform.paths.app_dir(app.id)
    try:
        folder.mkdir(exist_ok=True)  # never parents: apps/ always exists
        folder.chmod(0o711)  # app uids traverse it to their slugs
        fd = os.open(platform.paths.deploy_lock(app.id), os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:  # destroyed between the check and here
        raise NotFound(f"Couldn't find that app: {app.name}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise Conflict(f"{app.name} is being deployed; try again when the push "
                               "ends") from None
            say(f"-----> {waiting_line(app.name, fd)}\n")
            fcntl.flock(fd, fcntl.LOCK_EX)
        # when this holder started, for the next push's waiting line (a holder that dies
        # loses the flock with its process: no lock outlives a crashed daemon)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{time.time():.3f}\n".encode(), 0)
        if store.app_by_id(app.id) is None:  # destroyed while we waited
            shutil.rmtree(folder, ignore_errors=True)
            raise NotFound(f"{app.name} was destroyed")
        yield
    finally:
        os.close(fd)


def waiting_line(name: str, fd: int) -> str:
    """`Waiting for the running build of myapp (started 12 s ago)...`, the start read from
    the lock file its holder wrote."""
    try:
        started = float(os.pread(fd, 64, 0).decode().strip())
    except (OSError, ValueError):
        return f"Waiting for the running build of {name}..."
    return (f"Waiting for the running build of {name} "
            f"(started {max(0, int(time.time() - started))} s ago)...")


def ensure_repo(platform: Platform, app: App) -> Path:
    """The app's bare repo, made if missing. It is initialised aside and renamed into place,
    so it is whole or absent: an app whose creation was cut short gets it on first use.
    Call it holding the app's deploy lock (which also makes the app's folder)."""
    repo = platform.paths.repo(app.id)
    # the app's source: pushd's, read by the app's own builds (their sandbox checks it out)
    gid = app_uid(platform.settings, app.id)
    if repo.exists():
        os.chown(repo, 0, gid)
        repo.chmod(0o750)
        return repo
    partial = Path(tempfile.mkdtemp(prefix=".repo-", dir=repo.parent))
    try:
        Repo.init_bare(str(partial)).close()
        os.chown(partial, 0, gid)
        partial.chmod(0o750)
        os.rename(partial, repo)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return repo


def app_subdir(path: Path, phase: str) -> Path:
    """Make `path`, a folder inside the app's folder, but never the app's folder itself: an
    app destroyed mid-build must fail the build, not come back as an empty folder."""
    try:
        path.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise BuildError("The app was destroyed during the build", phase=phase) from None
    return path
