"""The state database's table of per-dyno resource limits (`resource:limit`), composed into
`store.Store`: one row per app and scope (every process type: '', or one type). A column
left NULL sets nothing for that scope. Uses `Store.tx` and `Store._all`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from .limits import Limit

RESOURCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS resource_limits (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    process_type TEXT NOT NULL, memory_mb INTEGER, cpu REAL,
    PRIMARY KEY (app_id, process_type));
"""


class ResourceTables:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]

    def resource_limits(self, app_id: int) -> dict[str, Limit]:
        """The app's stored limits by scope ('' for every process type)."""
        return {r[0]: Limit(r[1], r[2]) for r in self._all(
            "SELECT process_type, memory_mb, cpu FROM resource_limits WHERE app_id=? "
            "ORDER BY process_type", app_id)}

    def set_resource_limit(self, app_id: int, process_type: str, limit: Limit) -> None:
        """What one scope sets from now on (a scope that sets nothing goes)."""
        with self.tx() as db:
            if limit.empty:
                db.execute("DELETE FROM resource_limits WHERE app_id=? AND process_type=?",
                           (app_id, process_type))
            else:
                db.execute("INSERT OR REPLACE INTO resource_limits VALUES (?,?,?,?)",
                           (app_id, process_type, limit.memory_mb, limit.cpu))

    def clear_resource_limits(self, app_id: int, process_type: str | None = None) -> int:
        """Remove the limits of one scope, or every scope of the app (None); the count."""
        with self.tx() as db:
            if process_type is None:
                return db.execute("DELETE FROM resource_limits WHERE app_id=?",
                                  (app_id,)).rowcount
            return db.execute("DELETE FROM resource_limits WHERE app_id=? AND process_type=?",
                              (app_id, process_type)).rowcount
