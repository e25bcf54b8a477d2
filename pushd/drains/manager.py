"""The daemon's drain manager: for each app with drains, one thread follows its log from the
moment the drain is seen (new lines only) and offers every line to that app's shippers.
The store is read again every `RECONCILE` seconds, so `drains:add`/`drains:remove` from any
process take effect without a signal. Each drain's figures (sent, dropped, last error) go to
`drains.json` in the state dir (root's only) for `drains` to show."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from ..files import replace_file
from ..logs import AppLog
from . import urls
from .shipper import Shipper

log = logging.getLogger("pushd.drains")

RECONCILE = 2.0
STATUS_FILE = "drains.json"


class _AppFollower:
    def __init__(self, app: str, log_path: Path) -> None:
        self.app = app
        self.shippers: dict[str, Shipper] = {}
        self._stop = threading.Event()
        self._log = AppLog(log_path)
        self._since = self._log.end()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"drains-{app}")
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._log.follow(stop=self._stop.is_set, poll=0.2, since=self._since):
                for shipper in list(self.shippers.values()):
                    shipper.offer(line)
        except Exception:  # the follower must not take the daemon down
            log.exception("drain follower of %s ended", self.app)

    def stop(self) -> None:
        self._stop.set()
        for shipper in self.shippers.values():
            shipper.stop()


class DrainManager:
    def __init__(self, store: Any, paths: Any) -> None:
        self.store, self.paths = store, paths
        self.followers: dict[int, _AppFollower] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("drain reconcile failed")
            stop.wait(RECONCILE)
        for follower in self.followers.values():
            follower.stop()

    def reconcile(self) -> None:
        wanted: dict[int, dict[str, tuple[str, bool]]] = {}
        names: dict[int, str] = {}
        for row in self.store.all_drains():
            wanted.setdefault(row.app_id, {})[row.url] = (row.app_name, row.admin_added)
            names[row.app_id] = row.app_name
        for app_id in list(self.followers):
            if app_id not in wanted:
                self.followers.pop(app_id).stop()
        for app_id, drains in wanted.items():
            follower = self.followers.get(app_id)
            if follower is None or follower.app != names[app_id]:  # renamed: start afresh
                if follower is not None:
                    follower.stop()
                follower = _AppFollower(names[app_id], self.paths.log_file(app_id))
                self.followers[app_id] = follower
            for url in list(follower.shippers):
                if url not in drains:
                    follower.shippers.pop(url).stop()
            for url, (app, admin_added) in drains.items():
                if url not in follower.shippers:
                    follower.shippers[url] = Shipper(app, urls.parse(url), admin_added).start()
        self._write_status()

    def dropped(self) -> int:
        """Lines dropped by every drain since the daemon started (for the metrics)."""
        return sum(s.stats.dropped for f in self.followers.values()
                   for s in f.shippers.values())

    def _write_status(self) -> None:
        status = {status_key(app_id, url): {"sent": s.stats.sent, "dropped": s.stats.dropped,
                                             "error": s.stats.error}
                  for app_id, f in self.followers.items() for url, s in f.shippers.items()}
        path = self.paths.root / STATUS_FILE
        data = json.dumps(status, sort_keys=True)
        try:
            if path.exists() and path.read_text() == data:
                return
            replace_file(path, data, mode=0o600)
        except OSError as err:
            log.warning("could not write %s: %s", path, err)


def status_key(app_id: int, url: str) -> str:
    return f"{app_id} {url}"


def read_status(root: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((root / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
