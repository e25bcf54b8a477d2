"""The state database's config, releases and slugs, composed into `store.Store`: config vars
are changed with the release they cut, in one transaction (`create_release`); a release names
its slug, its config snapshot and its process types, and which one serves now is the newest
succeeded. Uses `Store.tx`, `Store._all`, `Store._one` and `Store._conn`, the formation's
`_prune_formation` and the add-on bindings a rollback keeps (`store_addons`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from .errors import NotFound
from .models import Release, Slug

RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (app_id, key));
CREATE TABLE IF NOT EXISTS slugs (
    id TEXT PRIMARY KEY, app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    path TEXT NOT NULL, dir TEXT NOT NULL, size INTEGER NOT NULL, commit_sha TEXT NOT NULL,
    process_types TEXT NOT NULL, buildpack TEXT NOT NULL, created_at REAL NOT NULL,
    image TEXT NOT NULL DEFAULT '', port INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS releases (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE, version INTEGER NOT NULL,
    slug_id TEXT, config TEXT NOT NULL, process_types TEXT NOT NULL, description TEXT NOT NULL,
    user TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL, commit_sha TEXT NOT NULL,
    PRIMARY KEY (app_id, version));
"""


def _release(row: sqlite3.Row) -> Release:
    return Release(row["app_id"], row["version"], row["slug_id"], json.loads(row["config"]),
                   json.loads(row["process_types"]), row["description"], row["user"],
                   row["created_at"], row["status"], row["commit_sha"], row["kind"])


def _slug(row: sqlite3.Row) -> Slug:
    return Slug(row["id"], row["app_id"], row["path"], row["dir"], row["size"], row["commit_sha"],
                json.loads(row["process_types"]), row["buildpack"], row["created_at"],
                row["image"], row["port"])



class ReleaseTables:
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _all: Callable[..., list[sqlite3.Row]]
    _one: Callable[..., sqlite3.Row | None]
    _conn: Callable[[], sqlite3.Connection]
    _prune_formation: Callable[[sqlite3.Connection, int], None]
    _bound_values: Callable[[sqlite3.Connection, int], dict[str, str]]
    _keep_bindings: Callable[[sqlite3.Connection, int, dict[str, str]], None]

    # config and releases
    def config(self, app_id: int) -> dict[str, str]:
        rows = self._all("SELECT key, value FROM config WHERE app_id=? ORDER BY key", app_id)
        return {r[0]: r[1] for r in rows}

    def create_release(self, app_id: int, *, description: str, user: str,
                       slug: Slug | None = None, config_set: dict[str, str] | None = None,
                       config_unset: list[str] | None = None, base: Release | None = None,
                       status: str = "pending", kind: str = "") -> Release:
        """Cut the next release in one transaction, applying config changes with it.

        The slug and process types come from `slug`, else from `base` (rollback), else from
        the newest succeeded release. The config snapshot is the app's config after the change,
        or `base`'s config for a rollback.
        """
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT next_version FROM apps WHERE id=?", (app_id,)).fetchone()
            if row is None:
                raise NotFound("That app no longer exists")
            version = row[0]
            db.execute("UPDATE apps SET next_version=? WHERE id=?", (version + 1, app_id))
            if base is not None:
                bound = self._bound_values(db, app_id)
                db.execute("DELETE FROM config WHERE app_id=?", (app_id,))
                db.executemany("INSERT INTO config VALUES (?,?,?)",
                               [(app_id, k, v) for k, v in base.config.items()])
                self._keep_bindings(db, app_id, bound)
            for key, value in (config_set or {}).items():
                db.execute("INSERT OR REPLACE INTO config VALUES (?,?,?)", (app_id, key, value))
            for key in config_unset or []:
                db.execute("DELETE FROM config WHERE app_id=? AND key=?", (app_id, key))
            config = {r[0]: r[1] for r in db.execute(
                "SELECT key, value FROM config WHERE app_id=? ORDER BY key", (app_id,))}
            if slug is not None:
                slug_id, types, commit = slug.id, slug.process_types, slug.commit
            else:
                source = base or self._current(db, app_id)
                slug_id = source.slug_id if source else None
                types = source.process_types if source else {}
                commit = source.commit if source else ""
            if slug_id is None:
                status = "succeeded"  # nothing to run: a config-only release is live at once
            db.execute("INSERT INTO releases (app_id, version, slug_id, config, process_types, "
                       "description, user, created_at, status, commit_sha, kind) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (app_id, version, slug_id, json.dumps(config), json.dumps(types),
                        description, user, now, status, commit, kind))
            self._prune_formation(db, app_id)
        return Release(app_id, version, slug_id, config, types, description, user, now, status,
                       commit, kind)

    def change_config(self, app_id: int, config_set: dict[str, str] | None = None,
                      config_unset: list[str] | None = None) -> None:
        """Change config vars without a release (`--no-restart`): the next release has them."""
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO config VALUES (?,?,?)",
                           [(app_id, k, v) for k, v in (config_set or {}).items()])
            db.executemany("DELETE FROM config WHERE app_id=? AND key=?",
                           [(app_id, k) for k in config_unset or []])

    def next_version(self, app_id: int) -> int:
        """The version the app's next release will take (if nothing cuts one first)."""
        row = self._one("SELECT next_version FROM apps WHERE id=?", app_id)
        if row is None:
            raise NotFound("That app no longer exists")
        return int(row[0])

    @staticmethod
    def _current(db: sqlite3.Connection, app_id: int) -> Release | None:
        row = db.execute("SELECT * FROM releases WHERE app_id=? AND status='succeeded' "
                         "ORDER BY version DESC LIMIT 1", (app_id,)).fetchone()
        return _release(row) if row else None

    def current_release(self, app_id: int) -> Release | None:
        """The newest release that came up: what serves now."""
        return self._current(self._conn(), app_id)

    def pending_release(self, app_id: int) -> Release | None:
        """The newest release still rolling out, if it is newer than the current one."""
        row = self._one("SELECT * FROM releases WHERE app_id=? AND status='pending' "
                        "ORDER BY version DESC LIMIT 1", app_id)
        if row is None:
            return None
        current = self.current_release(app_id)
        pending = _release(row)
        return pending if current is None or pending.version > current.version else None

    def release(self, app_id: int, version: int) -> Release:
        row = self._one("SELECT * FROM releases WHERE app_id=? AND version=?", app_id, version)
        if row is None:
            raise NotFound(f"No such release: v{version}")
        return _release(row)

    def releases(self, app_id: int, limit: int = 10) -> list[Release]:
        rows = self._all("SELECT * FROM releases WHERE app_id=? ORDER BY version DESC LIMIT ?",
                         app_id, limit)
        return [_release(r) for r in rows]

    def set_release_status(self, app_id: int, version: int, status: str,
                           only_if: str | None = None) -> bool:
        """Set vN's status (only when it is still `only_if`, if given); whether it changed."""
        with self.tx() as db:
            sql = "UPDATE releases SET status=? WHERE app_id=? AND version=?"
            args: tuple = (status, app_id, version)
            if only_if is not None:
                sql, args = sql + " AND status=?", (*args, only_if)
            changed = db.execute(sql, args).rowcount > 0
            self._prune_formation(db, app_id)
            return changed

    # slugs
    def add_slug(self, slug: Slug) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO slugs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (slug.id, slug.app_id, slug.path, slug.dir, slug.size, slug.commit,
                        json.dumps(slug.process_types), slug.buildpack,
                        slug.created_at or time.time(), slug.image, slug.port))

    def slug(self, slug_id: str) -> Slug:
        row = self._one("SELECT * FROM slugs WHERE id=?", slug_id)
        if row is None:
            raise NotFound(f"Slug {slug_id} is gone")
        return _slug(row)

    def slugs(self, app_id: int) -> list[Slug]:
        return [_slug(r) for r in self._all(
            "SELECT * FROM slugs WHERE app_id=? ORDER BY created_at", app_id)]

    def slugs_to_prune(self, app_id: int, keep_releases: int) -> list[Slug]:
        """Slugs no longer used by the newest `keep_releases` releases (nor a pending one)."""
        kept = {r[0] for r in self._all(
            "SELECT slug_id FROM releases WHERE app_id=? AND slug_id IS NOT NULL "
            "ORDER BY version DESC LIMIT ?", app_id, keep_releases)}
        current = self.current_release(app_id)
        if current and current.slug_id:
            kept.add(current.slug_id)
        return [s for s in self.slugs(app_id) if s.id not in kept]

    def delete_slug(self, slug_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM slugs WHERE id=?", (slug_id,))

    # what the formation keeps (`Store._prune_formation`)
    @classmethod
    def _declared_types(cls, db: sqlite3.Connection, app_id: int) -> set[str] | None:
        """Process types of the current release and of a newer one rolling out (None when
        the app has neither)."""
        current = cls._current(db, app_id)
        row = db.execute("SELECT * FROM releases WHERE app_id=? AND status='pending' AND "
                         "version>? ORDER BY version DESC LIMIT 1",
                         (app_id, current.version if current else 0)).fetchone()
        releases = [r for r in (current, _release(row) if row else None) if r is not None]
        if not releases:
            return None
        return {t for r in releases for t in r.process_types if t != "release"}
