"""The state database's tables for what tenants contend for, composed into `store.Store`:
names held after a rename, custom domains (no overlap with another app's), per-user quotas
and the builds running against them. Uses `Store.tx` and `Store._all`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from .errors import Conflict, NotFound
from .names import domains_overlap

TENANT_SCHEMA = """
CREATE TABLE IF NOT EXISTS name_holds (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY, app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS quotas (
    key_name TEXT NOT NULL, kind TEXT NOT NULL, quantity INTEGER NOT NULL,
    PRIMARY KEY (key_name, kind));
CREATE TABLE IF NOT EXISTS builds (
    id TEXT PRIMARY KEY, app_id INTEGER NOT NULL, owner TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at REAL NOT NULL);
"""


class TenantTables:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]

    # names held after a rename
    @staticmethod
    def _take_name(db: sqlite3.Connection, name: str, claimant: str, admin: bool) -> None:
        """Conflict if `name` is held for someone other than `claimant` (admins may take it);
        else its hold, if any, ends: the name is in use again."""
        now = time.time()
        held = db.execute("SELECT owner, until FROM name_holds WHERE name=? AND until>?",
                          (name, now)).fetchone()
        if held is not None and held["owner"] != claimant and not admin:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(held["until"]))
            raise Conflict(f"Name {name} was just given up by a rename and is held for its "
                           f"previous owner until {until}")
        db.execute("DELETE FROM name_holds WHERE name=? OR until<=?", (name, now))

    # domains
    def add_domain(self, app_id: int, domain: str) -> None:
        """Attach `domain` (validated by names.domain); Conflict if another app serves it or
        a name it overlaps (a wildcard over theirs, or theirs over it)."""
        try:
            with self.tx() as db:
                others = [row[0] for row in db.execute(
                    "SELECT domain FROM domains WHERE app_id!=? ORDER BY domain", (app_id,))]
                for other in [] if domain in others else others:  # the same: already in use
                    if domains_overlap(domain, other):
                        raise Conflict(f"Domain {domain} overlaps {other}, which another app "
                                       "serves")
                db.execute("INSERT INTO domains VALUES (?,?)", (domain, app_id))
        except sqlite3.IntegrityError:
            raise Conflict(f"Domain {domain} is already in use") from None

    def remove_domain(self, app_id: int, domain: str) -> None:
        with self.tx() as db:
            if not db.execute("DELETE FROM domains WHERE domain=? AND app_id=?",
                              (domain, app_id)).rowcount:
                raise NotFound(f"Domain {domain} is not attached to this app")

    def domains_by_app(self) -> dict[int, list[str]]:
        """Every custom domain, in one query (the supervisor asks on every pass)."""
        found: dict[int, list[str]] = {}
        for row in self._all("SELECT app_id, domain FROM domains ORDER BY domain"):
            found.setdefault(row[0], []).append(row[1])
        return found

    def domains(self, app_id: int) -> list[str]:
        return [r[0] for r in self._all(
            "SELECT domain FROM domains WHERE app_id=? ORDER BY domain", app_id)]

    # quotas (limits per key name; a kind without a row is unlimited) and running builds
    def quotas(self, key_name: str) -> dict[str, int]:
        return {r[0]: r[1] for r in self._all(
            "SELECT kind, quantity FROM quotas WHERE key_name=? ORDER BY kind", key_name)}

    def set_quotas(self, key_name: str, limits: dict[str, int | None]) -> None:
        """Set limits; None removes one (unlimited)."""
        with self.tx() as db:
            for kind, quantity in limits.items():
                if quantity is None:
                    db.execute("DELETE FROM quotas WHERE key_name=? AND kind=?",
                               (key_name, kind))
                else:
                    db.execute("INSERT OR REPLACE INTO quotas VALUES (?,?,?)",
                               (key_name, kind, quantity))

    def start_build(self, build_id: str, app_id: int, owner: str, pid: int,
                    live: Callable[[int], bool], admit: Callable[[int], None]) -> None:
        """Record a running build of `owner`'s app. Rows of dead processes (a daemon that
        died mid-build) are dropped first; `admit(builds still running)` may refuse (raise)
        in the same transaction, so two pushes never both take the last slot."""
        with self.tx() as db:
            rows = db.execute("SELECT id, pid FROM builds WHERE owner=?", (owner,)).fetchall()
            dead = [r[0] for r in rows if not live(r[1])]
            db.executemany("DELETE FROM builds WHERE id=?", [(d,) for d in dead])
            admit(len(rows) - len(dead))
            db.execute("INSERT INTO builds VALUES (?,?,?,?,?)",
                       (build_id, app_id, owner, pid, time.time()))

    def end_build(self, build_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM builds WHERE id=?", (build_id,))

    def running_builds(self, owner: str) -> list[int]:
        """The pids recorded for `owner`'s running builds (the caller judges which live)."""
        return [r[0] for r in self._all("SELECT pid FROM builds WHERE owner=?", owner)]
