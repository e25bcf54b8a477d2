"""Add-ons end to end: real PostgreSQL and Redis bound to a pushed Python app (psycopg and
redis-py from PyPI) through DATABASE_URL and REDIS_URL, reached from inside its dyno.

The tests run in order on one app (module fixture) on the session's daemon, whose state dir
holds the one postgres cluster of the session."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pushd.addons.base import AddonError
from pushd.addons.redis import call

from ..polling import wait_until
from .harness import Poller, PushdUnderTest, http_app, sh

PSQL = "/usr/lib/postgresql/15/bin/psql"
APP, OTHER = "addons-counter", "addons-other"

COUNTER_APP = http_app(head="""\
import socket

import psycopg
import redis


def pg():
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, connect_timeout=5)


def answer(path):
    if path == "/pg":
        with pg() as conn:
            conn.execute("INSERT INTO hits DEFAULT VALUES")
            return "pg=%d" % conn.execute("SELECT count(*) FROM hits").fetchone()[0]
    if path == "/pg-peek":
        with pg() as conn:
            return "pg=%d" % conn.execute("SELECT count(*) FROM hits").fetchone()[0]
    if path == "/redis":
        return "redis=%d" % redis.Redis.from_url(os.environ["REDIS_URL"]).incr("hits")
    if path.startswith("/probe/"):
        try:
            socket.create_connection(("127.0.0.1", int(path[7:])), timeout=2).close()
            return "open"
        except OSError:
            return "closed"
    return "up"
""", serve="""\
with pg() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS hits (id serial PRIMARY KEY)")
""")
FILES = {"app.py": COUNTER_APP, "requirements.txt": "psycopg[binary]\nredis\n",
         "Procfile": "web: python3 app.py\n"}


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return sh([PSQL, url, "-XAtqc", sql], timeout=30)


def superuser(pushd: PushdUnderTest, sql: str) -> str:
    root = pushd.state / "addons" / "postgres"
    port = (root / "port").read_text().strip()
    return ok(sh([PSQL, "-h", str(root / "run"), "-p", port, "-U", "postgres", "-d",
                  "postgres", "-XAtqc", sql]))


def redis_cmd(url: str, *args: str) -> str:
    """A command over RESP with the URL's password (the error's text when refused)."""
    parts = urlsplit(url)
    try:
        return str(call(parts.port, parts.password, *args))
    except AddonError as err:
        return str(err)


def var(pushd: PushdUnderTest, app: str, key: str) -> str:
    return ok(pushd.ssh("config:get", key, "-a", app)).strip()


def counter(pushd: PushdUnderTest, path: str) -> int:
    answer = pushd.http(APP, path)
    assert answer.status == 200, answer.body
    return int(answer.body.split("=")[1])


def addon_of(output: str, kind: str) -> str:
    return next(w for w in output.split() if w.startswith(f"{kind}-"))


@pytest.fixture(scope="module")
def pushd(addons_pushd: PushdUnderTest) -> PushdUnderTest:
    return addons_pushd


@pytest.fixture(scope="module")
def bound(pushd: PushdUnderTest) -> dict[str, str]:
    ok(pushd.ssh("apps:create", APP))
    made = {}
    for kind, var_name in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")):
        out = ok(pushd.ssh("addons:create", kind, "-a", APP))
        assert f" as {var_name}" in out, out
        made[kind] = addon_of(out.split("Created", 1)[1], kind)
    push = pushd.push(pushd.new_app_repo(APP, FILES))
    assert push.returncode == 0, push.stderr
    assert "postgres://" not in push.stderr + push.stdout  # no password in the push output
    pushd.wait_for(APP, "up")
    return made


def test_counters_survive_redeploy_restart_and_daemon_kill(pushd: PushdUnderTest, bound):
    first_pg, first_redis = counter(pushd, "/pg"), counter(pushd, "/redis")
    repo = pushd.root / "src" / f"{APP}-admin"
    pushd.commit(repo, {"README": "again"})
    assert pushd.push(repo).returncode == 0
    assert counter(pushd, "/pg") == first_pg + 1
    assert counter(pushd, "/redis") == first_redis + 1
    ok(pushd.ssh("ps:restart", "-a", APP))
    pushd.wait_for(APP, "up")
    redis_pid = (pushd.state / "addons" / "redis" / bound["redis"] / "redis.pid").read_text()
    os.kill(pushd.daemon_pid(), signal.SIGKILL)
    pushd.up()
    assert counter(pushd, "/pg") == first_pg + 2
    assert counter(pushd, "/redis") == first_redis + 2
    # adopted, not restarted; and restarted when it dies
    assert (pushd.state / "addons" / "redis" / bound["redis"] / "redis.pid"
            ).read_text() == redis_pid
    os.kill(int(redis_pid.split()[0]), signal.SIGKILL)
    wait_until(lambda: pushd.http(APP, "/redis").status == 200, timeout=30)
    assert counter(pushd, "/redis") >= first_redis + 3  # the AOF kept the count


def test_addon_vars_are_owned_and_passwords_stay_out_of_info(pushd: PushdUnderTest, bound):
    refused = pushd.ssh("config:set", "DATABASE_URL=postgres://x@y/z", "-a", APP)
    assert refused.returncode != 0
    assert bound["postgres"] in refused.stderr
    refused = pushd.ssh("config:unset", "REDIS_URL", "-a", APP)
    assert refused.returncode != 0 and bound["redis"] in refused.stderr
    info = ok(pushd.ssh("addons:info", bound["postgres"]))
    password = var(pushd, APP, "DATABASE_URL").split(":")[2].split("@")[0]
    assert password not in info and APP in info
    listed = ok(pushd.ssh("addons", "-a", APP))
    assert bound["postgres"] in listed and bound["redis"] in listed
    assert password not in (pushd.state / "pushd.log").read_text()
    stranger = pushd.ssh("addons:info", bound["postgres"], user="bob")
    assert stranger.returncode != 0 and "do not have access" in stranger.stderr
    unknown = pushd.ssh("addons:create", "mysql", "-a", APP)
    assert unknown.returncode != 0 and "Unknown add-on service 'mysql'" in unknown.stderr
    bad = pushd.ssh("addons:create", "postgres", "--as", "bad-name!", "-a", APP)
    assert bad.returncode != 0 and "Invalid attachment name" in bad.stderr


def test_two_apps_cannot_read_each_other(pushd: PushdUnderTest, bound):
    ok(pushd.ssh("apps:create", OTHER))
    ok(pushd.ssh("addons:create", "postgres", "-a", OTHER))
    ok(pushd.ssh("addons:create", "redis", "-a", OTHER))
    mine, theirs = var(pushd, APP, "DATABASE_URL"), var(pushd, OTHER, "DATABASE_URL")
    assert psql(theirs, "SELECT 1").stdout.strip() == "1"
    db_of_mine = mine.rsplit("/", 1)[1]
    denied = psql(theirs.rsplit("/", 1)[0] + "/" + db_of_mine, "SELECT count(*) FROM hits")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    my_redis, their_redis = var(pushd, APP, "REDIS_URL"), var(pushd, OTHER, "REDIS_URL")
    assert redis_cmd(their_redis, "GET", "hits") == "None"  # their own keyspace
    assert int(redis_cmd(my_redis, "GET", "hits")) > 0
    their_password = urlsplit(their_redis).password
    crossed = redis_cmd(my_redis.replace(urlsplit(my_redis).password, their_password),
                        "GET", "hits")
    assert "WRONGPASS" in crossed
    # from inside the dyno: its own add-ons' ports only
    my_port, their_port = my_redis.rsplit(":", 1)[1].split("/")[0], \
        their_redis.rsplit(":", 1)[1].split("/")[0]
    assert pushd.http(APP, f"/probe/{my_port}").body == "open"
    assert pushd.http(APP, f"/probe/{their_port}").body == "closed"
    assert pushd.http(APP, f"/probe/{pushd.ssh_port}").body == "closed"


def test_attach_shares_and_rotation_serves_throughout(pushd: PushdUnderTest, bound):
    out = ok(pushd.ssh("addons:attach", bound["postgres"], "-a", OTHER, "--as", "SHARED"))
    assert "SHARED_URL" in out
    old = var(pushd, APP, "DATABASE_URL")
    assert var(pushd, OTHER, "SHARED_URL") == old
    assert "Attach SHARED" in ok(pushd.ssh("releases", "-a", OTHER))
    with Poller(pushd, APP) as poll:
        out = ok(pushd.ssh("addons:credentials:rotate", bound["postgres"]))
    assert poll.failures == [], poll.failures[:5]
    assert poll.total > 10
    new = var(pushd, APP, "DATABASE_URL")
    assert new != old and var(pushd, OTHER, "SHARED_URL") == new
    assert psql(new, "SELECT 1").returncode == 0
    refused = psql(old, "SELECT 1")
    assert refused.returncode != 0 and "authentication failed" in refused.stderr
    assert "Rotate DATABASE credentials" in ok(pushd.ssh("releases", "-a", APP))
    # a rollback keeps today's binding: never the revoked password
    ok(pushd.ssh("rollback", "-a", APP))
    assert var(pushd, APP, "DATABASE_URL") == new
    assert pushd.http(APP, "/pg-peek").status == 200


def test_backup_restore_brings_a_row_back(pushd: PushdUnderTest, bound):
    url = var(pushd, APP, "DATABASE_URL")
    before = int(psql(url, "SELECT count(*) FROM hits").stdout)
    out = ok(pushd.ssh("addons:backup", bound["postgres"]))
    assert "b001" in out
    assert "b001" in ok(pushd.ssh("addons:backups", bound["postgres"]))
    ok(psql(url, "DELETE FROM hits WHERE id = (SELECT max(id) FROM hits)"))
    assert int(psql(url, "SELECT count(*) FROM hits").stdout) == before - 1
    ok(pushd.ssh("addons:restore", bound["postgres"], "b001"))
    assert int(psql(url, "SELECT count(*) FROM hits").stdout) == before
    assert counter(pushd, "/pg") == before + 1  # the app writes on after the restore


def test_redis_backup_restore_and_rotation(pushd: PushdUnderTest, bound):
    url = var(pushd, APP, "REDIS_URL")
    assert redis_cmd(url, "SET", "kept", "yes") in ("True", "OK", "b'OK'")
    out = ok(pushd.ssh("addons:backup", bound["redis"]))
    backup = next(w for w in out.split() if w.startswith("b0"))
    assert backup in ok(pushd.ssh("addons:backups", bound["redis"]))
    redis_cmd(url, "DEL", "kept")
    assert redis_cmd(url, "GET", "kept") == "None"
    ok(pushd.ssh("addons:restore", bound["redis"], backup))
    assert redis_cmd(url, "GET", "kept") in ("yes", "b'yes'")  # the snapshot's key is back
    with Poller(pushd, APP) as poll:
        ok(pushd.ssh("addons:credentials:rotate", bound["redis"]))
    assert poll.failures == [], poll.failures[:5]
    new = var(pushd, APP, "REDIS_URL")
    assert new != url and "WRONGPASS" in redis_cmd(url, "PING")  # the old password is gone
    assert counter(pushd, "/redis") > 0  # the app runs on the new one


def test_provider_down_makes_nothing(pushd: PushdUnderTest, bound):
    ok(pushd.ssh("providers:add", "postgres", "postgres://admin:pw@127.0.0.1:9/postgres"))
    try:
        before = ok(pushd.ssh("releases", "-a", OTHER))
        failed = pushd.ssh("addons:create", "postgres", "--as", "SPARE", "-a", OTHER)
        assert failed.returncode != 0
        assert "failed" in failed.stderr and "pw" not in failed.stderr
        assert "SPARE_URL" not in ok(pushd.ssh("config", "-a", OTHER))
        assert ok(pushd.ssh("releases", "-a", OTHER)) == before
        assert ok(pushd.ssh("addons", "-a", OTHER)).count("postgres-") == 2
    finally:
        ok(pushd.ssh("providers:remove", "postgres"))


ONE_OFF = """\
import os, psycopg, redis
print("redis", redis.Redis.from_url(os.environ["REDIS_URL"]).get("hits").decode())
conn = psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5)
print("pg", conn.execute("SELECT count(*) FROM hits").fetchone()[0])
port = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])["port"]
try:  # the cluster's superuser, through the same socket: never from a dyno
    psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                    connect_timeout=5)
    print("superuser admitted")
except psycopg.OperationalError as err:
    print("superuser", "refused" if "authentication failed" in str(err) else err)
"""


def test_a_one_off_reaches_the_addons_with_no_dyno_running(pushd: PushdUnderTest, bound):
    hits = counter(pushd, "/pg-peek")
    ok(pushd.ssh("ps:scale", APP, "web=0"))
    wait_until(lambda: "web." not in ok(pushd.ssh("ps", APP)), timeout=30)
    out = ok(pushd.ssh("run", APP, "python3", "-c", shlex.quote(ONE_OFF))).split()
    assert out[0] == "redis" and int(out[1]) > 0
    assert out[2:] == ["pg", str(hits), "superuser", "refused"]  # peer: root or postgres only


def test_detach_removes_the_var_and_cuts_a_release(pushd: PushdUnderTest, bound):
    if pushd.ssh("apps:info", OTHER).returncode != 0:  # this test alone (-k)
        ok(pushd.ssh("apps:create", OTHER))
    if "SHARED_URL" not in ok(pushd.ssh("config", "-a", OTHER)):
        ok(pushd.ssh("addons:attach", bound["postgres"], "-a", OTHER, "--as", "SHARED"))
    ok(pushd.ssh("addons:detach", "SHARED", "-a", OTHER))
    assert "SHARED_URL" not in ok(pushd.ssh("config", "-a", OTHER))
    assert "Detach SHARED" in ok(pushd.ssh("releases", "-a", OTHER))
    assert var(pushd, APP, "DATABASE_URL").startswith("postgres")  # the owner keeps it


def test_destroy_removes_data_and_apps_destroy_refuses(pushd: PushdUnderTest, bound):
    refused = pushd.ssh("apps:destroy", APP, "--confirm", APP)
    assert refused.returncode != 0 and "add-ons" in refused.stderr
    redis_dir = pushd.state / "addons" / "redis" / bound["redis"]
    redis_pid = int((redis_dir / "redis.pid").read_text().split()[0])
    ok(pushd.ssh("addons:destroy", bound["redis"], "--confirm", APP))
    assert not redis_dir.exists()
    wait_until(lambda: not Path(f"/proc/{redis_pid}").exists(), timeout=10)
    assert "REDIS_URL=" not in ok(pushd.ssh("config", "-s", "-a", APP))
    db = var(pushd, APP, "DATABASE_URL").rsplit("/", 1)[1]
    ok(pushd.ssh("addons:destroy", bound["postgres"], "--confirm", APP))
    assert "SHARED_URL=" not in ok(pushd.ssh("config", "-s", "-a", OTHER))
    assert superuser(pushd, f"SELECT count(*) FROM pg_database WHERE datname='{db}'"
                     ).strip() == "0"
    assert superuser(pushd, f"SELECT count(*) FROM pg_roles WHERE rolname LIKE "
                     f"'%{db[2:]}%'").strip() == "0"
    ok(pushd.ssh("apps:destroy", OTHER, "--confirm", OTHER, "--force"))
    ok(pushd.ssh("apps:destroy", APP, "--confirm", APP))
