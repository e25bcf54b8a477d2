"""The state database's add-on tables, composed into `store.Store`: add-ons (their provider
state holds their secrets: the database file is root's alone, 0600), their attachments to
apps (`<NAME>_URL` config vars they own), the config keys an app ever had from an add-on
(so a rollback drops a binding that is gone and keeps today's), and external servers
registered with `providers:add`."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from .errors import Conflict, NotFound

ADDON_SCHEMA = """
CREATE TABLE IF NOT EXISTS addons (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, app_id INTEGER NOT NULL,
    state TEXT NOT NULL, ports TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS addon_attachments (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL, addon TEXT NOT NULL REFERENCES addons(name) ON DELETE CASCADE,
    PRIMARY KEY (app_id, name));
CREATE TABLE IF NOT EXISTS addon_keys_seen (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key TEXT NOT NULL, PRIMARY KEY (app_id, key));
CREATE TABLE IF NOT EXISTS addon_servers (kind TEXT PRIMARY KEY, url TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Addon:
    name: str
    kind: str
    app_id: int  # the app it was created for (its owner)
    state: dict[str, Any]  # the provider's, with secrets
    ports: tuple[int, ...]
    created_at: float


@dataclass(frozen=True)
class Attachment:
    app_id: int
    name: str  # DATABASE: the config var is DATABASE_URL
    addon: str

    @property
    def var(self) -> str:
        return f"{self.name}_URL"


def _addon(row: sqlite3.Row) -> Addon:
    return Addon(row["name"], row["kind"], row["app_id"], json.loads(row["state"]),
                 tuple(json.loads(row["ports"])), row["created_at"])


class AddonTables:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]
    _one: Callable[..., sqlite3.Row | None]

    def add_addon(self, name: str, kind: str, app_id: int, state: dict[str, Any],
                  ports: list[int]) -> Addon:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM addons WHERE name=?", (name,)).fetchone():
                raise Conflict(f"An add-on named {name} exists")
            now = time.time()
            db.execute("INSERT INTO addons VALUES (?,?,?,?,?,?)",
                       (name, kind, app_id, json.dumps(state), json.dumps(ports), now))
        return Addon(name, kind, app_id, state, tuple(ports), now)

    def addon(self, name: str) -> Addon:
        row = self._one("SELECT * FROM addons WHERE name=?", name)
        if row is None:
            raise NotFound(f"Couldn't find that add-on: {name}")
        return _addon(row)

    def addons(self) -> list[Addon]:
        return [_addon(r) for r in self._all("SELECT * FROM addons ORDER BY name")]

    def set_addon_state(self, name: str, state: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("UPDATE addons SET state=? WHERE name=?", (json.dumps(state), name))

    def delete_addon(self, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM addons WHERE name=?", (name,))

    def attach_addon(self, app_id: int, name: str, addon: str) -> Attachment:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM addon_attachments WHERE app_id=? AND name=?",
                          (app_id, name)).fetchone():
                raise Conflict(f"{name} is already an attachment name on this app")
            db.execute("INSERT INTO addon_attachments VALUES (?,?,?)", (app_id, name, addon))
            db.execute("INSERT OR IGNORE INTO addon_keys_seen VALUES (?,?)",
                       (app_id, f"{name}_URL"))
        return Attachment(app_id, name, addon)

    def detach_addon(self, app_id: int, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM addon_attachments WHERE app_id=? AND name=?",
                       (app_id, name))

    def attachments(self, *, app_id: int | None = None, addon: str | None = None
                    ) -> list[Attachment]:
        rows = self._all("SELECT * FROM addon_attachments WHERE (?1 IS NULL OR app_id=?1) "
                         "AND (?2 IS NULL OR addon=?2) ORDER BY app_id, name", app_id, addon)
        return [Attachment(r["app_id"], r["name"], r["addon"]) for r in rows]

    def addon_var_owners(self, app_id: int) -> dict[str, str]:
        """Config key -> the add-on that owns it, for the app's attachments."""
        return {a.var: a.addon for a in self.attachments(app_id=app_id)}

    def addon_ports(self, app_id: int) -> list[int]:
        """The host loopback ports of every add-on attached to the app."""
        rows = self._all("SELECT a.ports FROM addons a JOIN addon_attachments t "
                         "ON t.addon = a.name WHERE t.app_id=?", app_id)
        return sorted({int(p) for r in rows for p in json.loads(r[0])})

    @staticmethod
    def _keep_bindings(db: sqlite3.Connection, app_id: int, bound: dict[str, str]) -> None:
        """After a rollback put back an old release's config: the add-on keys are today's
        (`bound`: their values before), never an old binding or a revoked password."""
        seen = [r[0] for r in db.execute("SELECT key FROM addon_keys_seen WHERE app_id=?",
                                         (app_id,))]
        for key in seen:
            if key in bound:
                db.execute("INSERT OR REPLACE INTO config VALUES (?,?,?)",
                           (app_id, key, bound[key]))
            else:
                db.execute("DELETE FROM config WHERE app_id=? AND key=?", (app_id, key))

    @staticmethod
    def _bound_values(db: sqlite3.Connection, app_id: int) -> dict[str, str]:
        return {r[0]: r[1] for r in db.execute(
            "SELECT c.key, c.value FROM config c JOIN addon_attachments t ON "
            "c.app_id = t.app_id AND c.key = t.name || '_URL' WHERE c.app_id=?", (app_id,))}

    def addon_servers(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._all("SELECT kind, url FROM addon_servers")}

    def set_addon_server(self, kind: str, url: str | None) -> None:
        with self.tx() as db:
            if url is None:
                db.execute("DELETE FROM addon_servers WHERE kind=?", (kind,))
            else:
                db.execute("INSERT OR REPLACE INTO addon_servers VALUES (?,?)", (kind, url))
