"""The state database (SQLite in WAL mode) and nothing else.

Every write that must be whole (a release, a config change with its release, an app's removal)
happens in one transaction, so a crash at any moment leaves either all of it or none of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import Conflict, NotFound
from .models import App, Key
from .settings import APP_UID_SPAN
from .store_addons import ADDON_SCHEMA, AddonTables
from .store_builds import BUILD_HISTORY_SCHEMA, BuildHistory
from .store_drains import DRAIN_SCHEMA, DrainTables
from .store_releases import RELEASE_SCHEMA, ReleaseTables
from .store_resources import RESOURCE_SCHEMA, ResourceTables
from .store_tenants import TENANT_SCHEMA, TenantTables

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    created_at REAL NOT NULL, deploy_branch TEXT, buildpacks TEXT NOT NULL DEFAULT '[]',
    next_version INTEGER NOT NULL DEFAULT 1, stopped INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS access (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key_name TEXT NOT NULL, PRIMARY KEY (app_id, key_name));
CREATE TABLE IF NOT EXISTS formation (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    type TEXT NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (app_id, type));
"""


def _app(row: sqlite3.Row) -> App:
    return App(row["id"], row["name"], row["owner"], row["created_at"], row["deploy_branch"],
               tuple(json.loads(row["buildpacks"])), bool(row["stopped"]))


class Store(ReleaseTables, TenantTables, ResourceTables, DrainTables, BuildHistory,
            AddonTables):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        # secrets live here: the file exists 0600 before SQLite opens it, so the -wal and -shm
        # files it creates take the same mode (and older ones are tightened)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for name in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{name}", 0o600)
        # idempotent; executescript commits on its own
        self._conn().executescript(SCHEMA + RELEASE_SCHEMA + TENANT_SCHEMA + RESOURCE_SCHEMA
                                     + DRAIN_SCHEMA + BUILD_HISTORY_SCHEMA + ADDON_SCHEMA)
        self._add_columns("slugs", {"image": "TEXT NOT NULL DEFAULT ''",
                                    "port": "INTEGER NOT NULL DEFAULT 0"})
        # "addon": cut by addons:attach/detach/credentials:rotate (no release phase for it)
        self._add_columns("releases", {"kind": "TEXT NOT NULL DEFAULT ''"})

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Columns added since a state database was made (CREATE IF NOT EXISTS keeps an
        older table as it was)."""
        have = {row[1] for row in self._conn().execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                self._conn().execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; taken IMMEDIATE so concurrent writers queue, never deadlock."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _all(self, sql: str, *args: object) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    def _one(self, sql: str, *args: object) -> sqlite3.Row | None:
        return self._conn().execute(sql, args).fetchone()

    # keys
    def add_key(self, key: Key) -> None:
        try:
            with self.tx() as db:
                db.execute("INSERT INTO keys VALUES (?,?,?,?,?)", (key.name, key.role,
                           key.public_key, key.fingerprint, key.created_at or time.time()))
        except sqlite3.IntegrityError:
            raise Conflict(f"A key named {key.name} or with the same fingerprint exists") from None

    def remove_key(self, name: str) -> None:
        """Remove a key and its access grants. Refused while it owns apps: ownership is by
        name, so a new key of the same name would silently inherit them."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM keys WHERE name=?", (name,)).fetchone() is None:
                raise NotFound(f"No key named {name}")
            owned = [r[0] for r in db.execute("SELECT name FROM apps WHERE owner=? ORDER BY name",
                                              (name,))]
            if owned:
                raise Conflict(f"{name} still owns {', '.join(owned)}; destroy "
                               f"{'it' if len(owned) == 1 else 'them'} first")
            db.execute("DELETE FROM keys WHERE name=?", (name,))
            db.execute("DELETE FROM access WHERE key_name=?", (name,))
            db.execute("DELETE FROM quotas WHERE key_name=?", (name,))  # a new alice starts afresh

    def key_by_fingerprint(self, fingerprint: str) -> Key | None:
        row = self._one("SELECT * FROM keys WHERE fingerprint=?", fingerprint)
        return Key(**dict(row)) if row else None

    def keys(self) -> list[Key]:
        return [Key(**dict(r)) for r in self._all("SELECT * FROM keys ORDER BY name")]

    # apps
    def create_app(self, name: str, owner: str,
                   usable: Callable[[int], bool] = lambda _id: True, admin: bool = False,
                   admit: Callable[[int], None] | None = None) -> App:
        """The app gets the lowest id no app has and `usable` accepts (the id is its uid:
        `appids.reusable` refuses one while anything of a destroyed app that had it remains).
        A name held after a rename goes only to its holder or an admin. `admit(apps the
        owner has)` may refuse (raise) in the same transaction."""
        try:
            with self.tx() as db:
                if admit is not None:
                    admit(db.execute("SELECT COUNT(*) FROM apps WHERE owner=?",
                                     (owner,)).fetchone()[0])
                taken = {row[0] for row in db.execute("SELECT id FROM apps")}
                if db.execute("SELECT 1 FROM apps WHERE name=?", (name,)).fetchone():
                    raise sqlite3.IntegrityError(name)
                self._take_name(db, name, owner, admin)
                app_id = next((i for i in range(1, APP_UID_SPAN)
                               if i not in taken and usable(i)), None)
                if app_id is None:
                    raise Conflict(f"No app ids left: all {APP_UID_SPAN - 1} are in use or "
                                   "still held by destroyed apps")
                db.execute("INSERT INTO apps (id, name, owner, created_at) VALUES (?,?,?,?)",
                           (app_id, name, owner, time.time()))
        except sqlite3.IntegrityError:
            raise Conflict(f"Name {name} is already taken") from None
        return self.app(name)

    def app(self, name: str) -> App:
        row = self._one("SELECT * FROM apps WHERE name=?", name)
        if row is None:
            raise NotFound(f"Couldn't find that app: {name}")
        return _app(row)

    def app_by_id(self, app_id: int) -> App | None:
        row = self._one("SELECT * FROM apps WHERE id=?", app_id)
        return _app(row) if row else None

    def apps(self) -> list[App]:
        return [_app(r) for r in self._all("SELECT * FROM apps ORDER BY name")]

    def rename_app(self, app_id: int, new_name: str, *, by: str = "", admin: bool = False,
                   hold_seconds: float = 0.0) -> None:
        """Rename; the old name stays held for the app's owner for `hold_seconds`, so nobody
        else takes over its URL and git remote at once."""
        try:
            with self.tx() as db:
                row = db.execute("SELECT name, owner FROM apps WHERE id=?", (app_id,)).fetchone()
                if row is None:
                    raise NotFound("That app no longer exists")
                self._take_name(db, new_name, by, admin)
                db.execute("UPDATE apps SET name=? WHERE id=?", (new_name, app_id))
                if hold_seconds > 0:
                    db.execute("INSERT OR REPLACE INTO name_holds VALUES (?,?,?)",
                               (row["name"], row["owner"], time.time() + hold_seconds))
        except sqlite3.IntegrityError:
            raise Conflict(f"Name {new_name} is already taken") from None

    def delete_app(self, app_id: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM apps WHERE id=?", (app_id,))

    def set_deploy_branch(self, app_id: int, branch: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE apps SET deploy_branch=? WHERE id=? AND deploy_branch IS NULL",
                       (branch, app_id))

    def set_buildpacks(self, app_id: int, buildpacks: list[str]) -> None:
        with self.tx() as db:
            db.execute("UPDATE apps SET buildpacks=? WHERE id=?", (json.dumps(buildpacks), app_id))

    def set_stopped(self, app_id: int, stopped: bool) -> None:
        """`ps:stop` / `ps:start`: keep the formation, run nothing while stopped."""
        with self.tx() as db:
            db.execute("UPDATE apps SET stopped=? WHERE id=?", (int(stopped), app_id))

    # access
    def grant(self, app_id: int, key_name: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO access VALUES (?,?)", (app_id, key_name))

    def revoke(self, app_id: int, key_name: str) -> None:
        with self.tx() as db:
            if not db.execute("DELETE FROM access WHERE app_id=? AND key_name=?",
                              (app_id, key_name)).rowcount:
                raise NotFound(f"{key_name} has no access to this app")

    def collaborators(self, app_id: int) -> list[str]:
        rows = self._all("SELECT key_name FROM access WHERE app_id=? ORDER BY key_name", app_id)
        return [r[0] for r in rows]

    def has_access(self, app_id: int, key_name: str) -> bool:
        return self._one("SELECT 1 FROM access WHERE app_id=? AND key_name=?",
                         app_id, key_name) is not None

    # formation
    def formation(self, app_id: int) -> dict[str, int]:
        """The wanted count of each process type the app's releases in play declare (the
        serving one and the one rolling out). As on Heroku, a type no longer declared leaves
        the formation (`_prune_formation`), so adding it back later starts afresh."""
        return {r[0]: r[1] for r in self._all(
            "SELECT type, quantity FROM formation WHERE app_id=? ORDER BY type", app_id)}

    @classmethod
    def _prune_formation(cls, db: sqlite3.Connection, app_id: int) -> None:
        """Drop entries of types neither the serving release nor one rolling out declares:
        done wherever those change (a release cut, a status set), so reading is only a read."""
        declared = cls._declared_types(db, app_id)
        if declared is not None:  # no release yet: nothing to judge the entries by
            db.execute(f"DELETE FROM formation WHERE app_id=? AND type NOT IN "
                       f"({','.join('?' * len(declared)) or 'NULL'})", (app_id, *declared))

    def set_formation(self, app_id: int, quantities: dict[str, int]) -> None:
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO formation VALUES (?,?,?)",
                           [(app_id, t, q) for t, q in quantities.items()])
