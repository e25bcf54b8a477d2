"""`scripts/bench --addons`: add-on times through a real daemon and a pushed app (psycopg and
redis-py from PyPI): `addons:create` -> the app's first query, and
`addons:credentials:rotate` -> the new URL live (the app answering with the new role)."""

from __future__ import annotations

import statistics
import threading
import time

# the app's `answer(path)`, for tests/e2e/harness.py's `http_app` (scripts/bench passes it)
ANSWER = """\
def answer(path):
    if path == "/pg":
        import psycopg
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
            user = conn.execute("SELECT session_user").fetchone()[0]
            return "pg=" + user
    if path == "/redis":
        import redis
        return "redis=%d" % redis.Redis.from_url(os.environ["REDIS_URL"]).incr("n")
    return "up"
"""


def _until(platform, app: str, path: str, good, start: float) -> float:  # noqa: ANN001
    while True:
        try:
            answer = platform.http(app, path)
            if answer.status == 200 and good(answer.body):
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)


def _timed(into: list, start: float, func, *args: str) -> None:  # noqa: ANN001
    into.append((func(*args), time.monotonic() - start))


def rows(platform, runs: int, http_app) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """Needs a started daemon; leaves its apps for the caller's `stop(everything=True)`."""
    files = {"app.py": http_app(ANSWER), "requirements.txt": "psycopg[binary]\nredis\n",
             "Procfile": "web: python3 app.py\n"}
    create_pg, create_redis, rotate, rotate_cmd = [], [], [], []
    for i in range(runs):
        app = f"addbench{i}"
        result = platform.push(platform.new_app_repo(app, files))
        assert result.returncode == 0, result.stderr[-2000:]
        start = time.monotonic()
        platform.ssh("addons:create", "postgres", "-a", app)
        create_pg.append(_until(platform, app, "/pg", lambda b: b.startswith("pg="), start))
        start = time.monotonic()
        platform.ssh("addons:create", "redis", "-a", app)
        create_redis.append(_until(platform, app, "/redis", lambda b: b.startswith("redis="),
                                   start))
        addon = next(w for w in platform.ssh("addons", "-a", app).stdout.split()
                     if w.startswith("postgres-"))
        before = platform.http(app, "/pg").body
        done: list = []
        start = time.monotonic()
        command = threading.Thread(target=_timed, args=(
            done, start, platform.ssh, "addons:credentials:rotate", addon))
        command.start()  # the app is polled meanwhile: when does it answer as the new role
        rotate.append(_until(platform, app, "/pg", lambda b, old=before: b.startswith("pg=")
                             and b != old, start))
        command.join()
        assert done[0][0].returncode == 0, done[0][0].stderr
        rotate_cmd.append(done[0][1])

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    return [("addons:create postgres -> first query (median)", ms(create_pg), "-"),
            ("addons:create redis -> first command (median)", ms(create_redis), "-"),
            ("rotate -> new URL live (median)", ms(rotate), "-"),
            ("rotate command, old password revoked (median)", ms(rotate_cmd), "-")]
