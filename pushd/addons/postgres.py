"""The postgres provider: one database and one login role per add-on, owner-only.

Each add-on gets a NOLOGIN owner role (`o_<name>`), the database owned by it with CONNECT
revoked from PUBLIC, and a LOGIN role (`u_<name>_<n>`) that is a member of the owner and
whose sessions run as it (`ALTER ROLE ... SET role`), so what the app creates belongs to the
owner role. Rotation adds the next login role (`n+1`) beside the old one; `revoke` drops the
old one once every attached app runs with the new URL.

The server is pushd's own cluster (`pgcluster.py`), or an external one an operator registered
(`providers:add postgres postgres://admin:pass@host:5432/postgres`, or `addon_servers` in
pushd.yaml), whose admin role needs CREATEDB and CREATEROLE.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import AddonError, ProviderEnv, State, password, register
from .pgcluster import PG_BIN, Cluster
from .proc import run


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parse_server(url: str) -> dict[str, str]:
    """An external server's admin URL; AddonError (UsageError-like) when malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname or not parts.username:
        raise AddonError("A postgres server is postgres://USER[:PASSWORD]@HOST[:PORT]/DB")
    try:
        port = parts.port or 5432
    except ValueError:
        raise AddonError("A postgres server's port must be a number") from None
    return {"host": parts.hostname, "port": str(port), "user": unquote(parts.username),
            "password": unquote(parts.password or ""),
            "db": parts.path.lstrip("/") or "postgres"}


@register("postgres")
class PostgresProvider:
    kind = "postgres"
    default_attachment = "DATABASE"

    def __init__(self, env: ProviderEnv) -> None:
        self.env = env
        self.cluster = Cluster(env)

    # connections as the server's admin
    def _admin(self, state: State, tool: str, db: str = "postgres"
               ) -> tuple[list[str], dict[str, str]]:
        env = {"PGCONNECT_TIMEOUT": "5"}
        if not state.get("server"):
            self.cluster.ensure()
            return self.cluster.admin_argv(tool, db), env
        server = parse_server(state["server"])
        env["PGPASSWORD"] = server["password"]
        return [str(PG_BIN / tool), "-h", server["host"], "-p", server["port"],
                "-U", server["user"], "-d", db], env

    def _sql(self, state: State, sql: str, what: str, db: str = "postgres") -> str:
        argv, env = self._admin(state, "psql", db)
        return run([*argv, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"], what,
                   stdin=sql, env=env)

    def create(self, name: str) -> State:
        base = name.replace("-", "_")
        server = self.env.servers.get("postgres", "")
        state: State = {"server": server, "db": f"d_{base}", "owner": f"o_{base}", "n": 1,
                        "user": f"u_{base}_1", "password": password()}
        if server:
            parsed = parse_server(server)
            state.update(host=parsed["host"], port=int(parsed["port"]))
        else:
            self.cluster.ensure()
            state.update(host="127.0.0.1", port=self.cluster.port)
        try:
            self._sql(state, f"CREATE ROLE {ident(state['owner'])} NOLOGIN;\n"
                      + self._login_sql(state), f"creating {name}")
            self._sql(state, f"CREATE DATABASE {ident(state['db'])} OWNER "
                      f"{ident(state['owner'])};\n"
                      f"REVOKE ALL ON DATABASE {ident(state['db'])} FROM PUBLIC;\n"
                      f"GRANT CONNECT, TEMPORARY ON DATABASE {ident(state['db'])} TO "
                      f"{ident(state['owner'])};\n", f"creating {name}")
            self._sql(state, "REVOKE ALL ON SCHEMA public FROM PUBLIC;\n"
                      f"GRANT ALL ON SCHEMA public TO {ident(state['owner'])};\n",
                      f"creating {name}", db=state["db"])
        except AddonError:
            with contextlib.suppress(AddonError):
                self.destroy(state)  # whatever was made before the failure
            raise
        return state

    @staticmethod
    def _login_sql(state: State) -> str:
        user, owner = ident(state["user"]), ident(state["owner"])
        return (f"CREATE ROLE {user} LOGIN PASSWORD {literal(state['password'])} "
                f"IN ROLE {owner};\nALTER ROLE {user} SET role TO {literal(state['owner'])};\n")

    def url(self, state: State) -> str:
        return (f"postgres://{state['user']}:{state['password']}@{state['host']}:"
                f"{state['port']}/{state['db']}")

    def ports(self, state: State) -> list[int]:
        return [] if state.get("server") else [int(state["port"])]

    def rotate(self, state: State) -> State:
        n = int(state["n"]) + 1
        new = {**state, "n": n, "user": f"u_{state['db'][2:]}_{n}", "password": password()}
        self._sql(new, self._login_sql(new), "rotating the credentials")
        return new

    def revoke(self, old: State, new: State) -> None:
        self._sql(old, f"REASSIGN OWNED BY {ident(old['user'])} TO {ident(old['owner'])};\n"
                  f"DROP OWNED BY {ident(old['user'])};\n", "revoking the old credentials",
                  db=old["db"])
        self._sql(old, f"DROP ROLE IF EXISTS {ident(old['user'])};\n",
                  "revoking the old credentials")

    def backup(self, state: State, dest: Path) -> None:
        argv, env = self._admin(state, "pg_dump", state["db"])
        run([*argv, "-Fc", "--no-owner", "-f", str(dest)], "pg_dump", env=env, timeout=600)

    def restore(self, state: State, src: Path) -> None:
        argv, env = self._admin(state, "pg_restore", state["db"])
        run([*argv, "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--single-transaction", f"--role={state['owner']}", str(src)],
            "pg_restore", env=env, timeout=600)

    def destroy(self, state: State) -> None:
        users = [f"u_{state['db'][2:]}_{n}" for n in range(1, int(state["n"]) + 1)]
        self._sql(state, f"DROP DATABASE IF EXISTS {ident(state['db'])} WITH (FORCE);\n"
                  + "".join(f"DROP ROLE IF EXISTS {ident(u)};\n" for u in users)
                  + f"DROP ROLE IF EXISTS {ident(state['owner'])};\n",
                  "removing the database")

    def info(self, state: State) -> dict[str, str]:
        where = (f"external server {state['host']}:{state['port']}" if state.get("server")
                 else f"pushd's own cluster, 127.0.0.1:{state['port']}")
        return {"Server": where, "Database": state["db"], "Role": state["user"]}

    def shutdown(self, states: list[State]) -> None:
        self.cluster.stop()

    def keep_up(self, state: State) -> None:
        if not state.get("server"):
            self.cluster.ensure()
