"""The state database's table of log drains (`drains:add`), composed into `store.Store`.
Uses `Store.tx` and `Store._all`. A destroyed app's drains go with it (cascade)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

DRAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS drains (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    url TEXT NOT NULL, admin_added INTEGER NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (app_id, url));
"""

MAX_DRAINS = 5


@dataclass(frozen=True)
class DrainRow:
    app_id: int
    app_name: str
    url: str
    admin_added: bool


class DrainTables:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]

    def drains(self, app_id: int) -> list[str]:
        return [r[0] for r in self._all(
            "SELECT url FROM drains WHERE app_id=? ORDER BY created_at", app_id)]

    def all_drains(self) -> list[DrainRow]:
        return [DrainRow(r[0], r[1], r[2], bool(r[3])) for r in self._all(
            "SELECT d.app_id, a.name, d.url, d.admin_added FROM drains d "
            "JOIN apps a ON a.id = d.app_id ORDER BY d.app_id, d.created_at")]

    def add_drain(self, app_id: int, url: str, admin_added: bool) -> bool:
        """Add a drain; False if the app has it already. Raises ValueError past MAX_DRAINS."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM drains WHERE app_id=? AND url=?",
                          (app_id, url)).fetchone():
                return False
            count = db.execute("SELECT COUNT(*) FROM drains WHERE app_id=?",
                               (app_id,)).fetchone()[0]
            if count >= MAX_DRAINS:
                raise ValueError(f"an app has at most {MAX_DRAINS} drains")
            db.execute("INSERT INTO drains VALUES (?,?,?,?)",
                       (app_id, url, int(admin_added), time.time()))
            return True

    def remove_drain(self, app_id: int, url: str) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM drains WHERE app_id=? AND url=?",
                              (app_id, url)).rowcount > 0
