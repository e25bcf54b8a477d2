"""The state database's build history, composed into `store.Store`: one row per build of
an app (`builds myapp`), numbered per app, with its commit, who pushed it, its status and
times. A row still `running` whose daemon is gone (a `kill -9` mid-build) is shown as failed
and settled as such by the next build of the app. Uses `Store.tx` and `Store._all`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

BUILD_HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_history (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    number INTEGER NOT NULL, commit_sha TEXT NOT NULL, user TEXT NOT NULL,
    status TEXT NOT NULL, pid INTEGER NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, PRIMARY KEY (app_id, number));
"""

# running -> succeeded | failed | canceled; `canceling` while builds:cancel stops it
RUNNING = ("running", "canceling")
KEPT = 50  # rows (and output files) kept per app


@dataclass(frozen=True)
class BuildRecord:
    app_id: int
    number: int
    commit: str
    user: str
    status: str
    pid: int
    started_at: float
    finished_at: float | None

    def duration(self, now: float | None = None) -> float:
        return max(0.0, (self.finished_at or now or time.time()) - self.started_at)


def _record(row: sqlite3.Row) -> BuildRecord:
    return BuildRecord(row["app_id"], row["number"], row["commit_sha"], row["user"],
                       row["status"], row["pid"], row["started_at"], row["finished_at"])


class BuildHistory:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]

    def begin_build(self, app_id: int, commit: str, user: str, pid: int,
                    live: Callable[[int], bool]) -> tuple[BuildRecord, list[int]]:
        """Record a new running build; rows left `running` by a dead daemon become failed.
        Returns the record and the numbers of rows dropped beyond `KEPT` (their output
        files go too)."""
        now = time.time()
        with self.tx() as db:
            for row in db.execute("SELECT number, pid FROM build_history WHERE app_id=? AND "
                                  "status IN (?,?)", (app_id, *RUNNING)).fetchall():
                if not live(row["pid"]):
                    db.execute("UPDATE build_history SET status='failed', finished_at=? "
                               "WHERE app_id=? AND number=?", (now, app_id, row["number"]))
            last = db.execute("SELECT MAX(number) FROM build_history WHERE app_id=?",
                              (app_id,)).fetchone()[0] or 0
            db.execute("INSERT INTO build_history VALUES (?,?,?,?,?,?,?,NULL)",
                       (app_id, last + 1, commit, user, "running", pid, now))
            old = [r[0] for r in db.execute(
                "SELECT number FROM build_history WHERE app_id=? AND number<=?",
                (app_id, last + 1 - KEPT))]
            db.execute("DELETE FROM build_history WHERE app_id=? AND number<=?",
                       (app_id, last + 1 - KEPT))
        return BuildRecord(app_id, last + 1, commit, user, "running", pid, now, None), old

    def finish_build(self, app_id: int, number: int, status: str) -> str:
        """Settle a build; one being canceled ends `canceled` whatever `status` says.
        Returns the status it ended with."""
        with self.tx() as db:
            row = db.execute("SELECT status FROM build_history WHERE app_id=? AND number=?",
                             (app_id, number)).fetchone()
            final = "canceled" if row is not None and row[0] == "canceling" else status
            db.execute("UPDATE build_history SET status=?, finished_at=? WHERE app_id=? AND "
                       "number=?", (final, time.time(), app_id, number))
        return final

    def cancel_build(self, app_id: int, live: Callable[[int], bool]) -> BuildRecord | None:
        """Mark the app's running build `canceling` (None if none runs)."""
        with self.tx() as db:
            for row in db.execute("SELECT * FROM build_history WHERE app_id=? AND status=? "
                                  "ORDER BY number DESC", (app_id, "running")).fetchall():
                if live(row["pid"]):
                    db.execute("UPDATE build_history SET status='canceling' WHERE app_id=? "
                               "AND number=?", (app_id, row["number"]))
                    return _record(row)
        return None

    def build_records(self, app_id: int, limit: int = KEPT) -> list[BuildRecord]:
        """The app's builds, newest first."""
        return [_record(r) for r in self._all(
            "SELECT * FROM build_history WHERE app_id=? ORDER BY number DESC LIMIT ?",
            app_id, limit)]

    def build_record(self, app_id: int, number: int) -> BuildRecord | None:
        rows = self._all("SELECT * FROM build_history WHERE app_id=? AND number=?",
                         app_id, number)
        return _record(rows[0]) if rows else None
