"""Health checks of web dynos before they are routed: each release's `app.json` checks (kept
per slug at deploy, `save`), run against a dyno's endpoint on a small thread pool so the
supervisor's loop never blocks on an app. `run_checks` is the checking itself (an HTTP GET
with the app's host name, bounded reads); the supervisor asks `result` on each pass.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import appjson
from .appjson import AppJson, Check
from .files import replace_file
from .paths import Paths
from .runtime.records import Endpoint

LIVENESS_EVERY = 5.0  # seconds between two rounds of a live dyno's liveness checks
MAX_BODY = 64 * 1024  # read of an answer's body
SHOWN_BODY = 120  # of it, in the push's failure line


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""  # the failing check's request and answer, one line


def appjson_file(paths: Paths, app_id: int, slug_id: str) -> Path:
    return paths.app_dir(app_id) / "appjson" / f"{slug_id}.json"


def save(paths: Paths, app_id: int, slug_id: str, data: bytes | None) -> None:
    """Keep a slug's app.json (already parsed once: valid) for its releases' dynos."""
    path = appjson_file(paths, app_id, slug_id)
    if data is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(mode=0o700, exist_ok=True)
    replace_file(path, data.decode("utf-8"))


def load(paths: Paths, app_id: int, slug_id: str | None) -> AppJson:
    """A slug's app.json records (the defaults without one, or if it became unreadable)."""
    if not slug_id:
        return appjson.EMPTY
    try:
        return appjson.parse(appjson_file(paths, app_id, slug_id).read_bytes())
    except (OSError, appjson.AppJsonError):
        return appjson.EMPTY


def attempt(endpoint: Endpoint, host: str, path: str, timeout: float) -> tuple[int, str]:
    """GET `path` from the dyno: (status, body start); OSError/HTTPException when it fails."""
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "pushd-healthcheck",
                                           "Connection": "close"})
        answer = conn.getresponse()
        return answer.status, answer.read(MAX_BODY).decode("utf-8", "replace")
    finally:
        conn.close()


def run_checks(endpoint: Endpoint, host: str, checks: tuple[Check, ...], *,
               get: Callable[[Endpoint, str, str, float], tuple[int, str]] = attempt,
               sleep: Callable[[float], None] = time.sleep,
               stop: threading.Event | None = None, liveness: bool = False) -> CheckResult:
    """Every HTTP check in turn (`attempts` tries each, `wait` apart); the first that never
    passes is the result, naming its request and last answer. The startup and readiness
    checks gate a new dyno; `liveness` runs only the liveness ones (after the switch)."""
    for check in checks:
        if check.path is None or (check.type == "liveness") != liveness:
            continue  # uptime checks are the supervisor's
        if check.initial_delay:
            sleep(check.initial_delay)
        answer = ""
        for n in range(check.attempts):
            if stop is not None and stop.is_set():
                return CheckResult(False, "stopped")
            try:
                status, body = get(endpoint, host, check.path, check.timeout)
            except (OSError, http.client.HTTPException) as err:
                answer = f"no answer ({type(err).__name__}: {err})" if str(err) else \
                    f"no answer ({type(err).__name__})"
            else:
                if check.accepts(status, body):
                    break
                shown = " ".join(body[:SHOWN_BODY].split())
                answer = f"answered {status}" + (f" {shown!r}" if shown else "")
            if n + 1 < check.attempts:
                sleep(check.wait)
        else:
            return CheckResult(False, f"health check {check.name!r} failed: GET {check.path} "
                                      f"{answer} after {check.attempts} attempts "
                                      f"(expected {check.expected()})")
    return CheckResult(True)


class HealthChecks:
    """Checks under way, by dyno id; `wake` is called when one finishes."""

    def __init__(self, paths: Paths, wake: Callable[[], None] = lambda: None,
                 workers: int = 4) -> None:
        self.paths, self.wake = paths, wake
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pushd-health")
        self._running: dict[str, Future] = {}
        self._stop = threading.Event()
        self._cache: dict[tuple[int, str], AppJson] = {}
        self._last: dict[str, float] = {}  # dyno id -> when its last liveness round ended

    def app_json(self, app_id: int, slug_id: str | None) -> AppJson:
        key = (app_id, slug_id or "")
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = load(self.paths, app_id, slug_id)
        return self._cache[key]

    def result(self, dyno_id: str, endpoint: Endpoint | None, host: str,
               checks: tuple[Check, ...]) -> CheckResult | None:
        """The dyno's checks' result once done (started on the first call); None meanwhile."""
        future = self._running.get(dyno_id)
        if future is None:
            if endpoint is None:
                return None
            future = self._pool.submit(run_checks, endpoint, host, checks, stop=self._stop)
            future.add_done_callback(lambda _: self.wake())
            self._running[dyno_id] = future
        if not future.done():
            return None
        try:
            return future.result()
        except Exception as err:  # a bug in checking must not pass a dyno
            return CheckResult(False, f"health check could not run: {err}")

    def live(self, dyno_id: str, endpoint: Endpoint | None, host: str,
             checks: tuple[Check, ...], now: float) -> CheckResult | None:
        """A routed dyno's liveness checks, a round every LIVENESS_EVERY seconds: the failed
        result of a round once it ends, else None."""
        key = f"live:{dyno_id}"
        future = self._running.get(key)
        if future is not None:
            if not future.done():
                return None
            del self._running[key]
            self._last[dyno_id] = now
            try:
                result = future.result()
            except Exception as err:
                result = CheckResult(False, f"health check could not run: {err}")
            return None if result.ok else result
        if endpoint is None or now - self._last.get(dyno_id, 0.0) < LIVENESS_EVERY:
            return None
        future = self._pool.submit(run_checks, endpoint, host, checks, stop=self._stop,
                                   liveness=True)
        future.add_done_callback(lambda _: self.wake())
        self._running[key] = future
        return None

    def forget(self, dyno_id: str) -> None:
        self._running.pop(dyno_id, None)
        self._running.pop(f"live:{dyno_id}", None)
        self._last.pop(dyno_id, None)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
