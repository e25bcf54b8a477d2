"""The dyno status snapshot the supervisor keeps for `ps` (root's alone: it names every dyno), and
waiting for a release's outcome through the store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import RouterError
from .files import replace_file
from .models import Release
from .paths import Paths


@dataclass(frozen=True)
class DynoStatus:
    dyno: str  # web.1
    type: str
    state: str  # starting | up | crashed
    since: float  # when it entered that state (epoch seconds)
    command: str
    release: int
    port: int | None = None  # a web dyno's endpoint port (where the router reaches it)
    pid: int | None = None
    id: str = ""


def status_file(paths: Paths) -> Path:
    return paths.dynos_dir / "status.json"


def write_status(paths: Paths, by_app: dict[int, list[DynoStatus]],
                 router: dict | None = None) -> None:
    """`router`: {"hosts": [every host the live router config serves], "error": nginx's
    refusal of the newest config or None}."""
    path = status_file(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"written_at": time.time(), "router": router or {"hosts": [], "error": None},
            "apps": {str(app): [asdict(s) for s in rows] for app, rows in by_app.items()}}
    replace_file(path, json.dumps(data, sort_keys=True), mode=0o600)


def _read(paths: Paths, part: str) -> dict:
    try:
        return json.loads(status_file(paths).read_text()).get(part) or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _read_all(paths: Paths) -> dict[str, list[dict]]:
    return _read(paths, "apps")


def router_state(paths: Paths) -> tuple[set[str], str | None]:
    """The hosts the router serves now, and its last refusal (None if the newest config
    was taken), as the supervisor last recorded them."""
    router = _read(paths, "router")
    return set(router.get("hosts", [])), router.get("error")


def read_status(paths: Paths, app_id: int) -> list[DynoStatus]:
    """The dynos of one app as the supervisor last saw them, sorted by type and index."""
    rows = [DynoStatus(**row) for row in _read_all(paths).get(str(app_id), [])]
    return sorted(rows, key=lambda s: (s.type, int(s.dyno.rpartition(".")[2] or 0)))


def last_states(paths: Paths) -> dict[str, str]:
    """Runtime dyno id -> the state the previous supervisor last recorded (for adoption)."""
    return {row.get("id", ""): row.get("state", "")
            for rows in _read_all(paths).values() for row in rows}


def wait_router(paths: Paths, done: Callable[[set[str]], bool], before: str | None,
                timeout: float = 15.0) -> bool:
    """Poll the supervisor's snapshot until `done(hosts the router serves)` (True) or timeout
    (False), so a command's "done" means the next request is routed. A refusal other than
    `before` (the router's state when the change was stored) raises RouterError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts, error = router_state(paths)
        if done(hosts):
            return True
        if error and error != before:
            raise RouterError(f"the router refused the new configuration: {error}")
        time.sleep(0.05)
    return False


def _failure_file(paths: Paths, app_id: int) -> Path:
    return paths.app_dir(app_id) / "release-failure.json"


def write_failure(paths: Paths, app_id: int, version: int, reason: str,
                  output: list[str]) -> None:
    """Why vN failed and its failing dyno's last output, for the push or command waiting on
    it. Written before the release is marked failed; never recreates a destroyed app's dir."""
    path = _failure_file(paths, app_id)
    if not path.parent.is_dir():
        return
    replace_file(path, json.dumps({"version": version, "reason": reason, "output": output}))


def read_failure(paths: Paths, app_id: int, version: int) -> tuple[str, list[str]] | None:
    try:
        data = json.loads(_failure_file(paths, app_id).read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != version:
        return None
    return str(data.get("reason", "")), [str(line) for line in data.get("output", [])]


def wait_release(store, app_id: int, version: int, timeout: float,
                 poll: float = 0.2) -> Release:
    """Poll the store until vN is succeeded or failed (or timeout); returns it as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        release = store.release(app_id, version)
        if release.status != "pending" or time.monotonic() >= deadline:
            return release
        time.sleep(poll)
