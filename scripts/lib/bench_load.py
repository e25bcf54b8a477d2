"""`scripts/bench --load`: a steady 200 requests/s (an asyncio client on loopback, open loop:
one request started every 5 ms whatever the answers) against one app through the router
while it goes through 20 changes in a row: code pushes, config changes, rollbacks, scale up
and down, restarts. Counts requests sent and failed (connection errors and 5xx), and the
latency's p50/p99 in steady state and during switch-over (requests started while a change's
command ran)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass, field

RATE = 200  # requests per second
AFTER = 3.0  # seconds after a change's command returns that still count as its switch-over


@dataclass
class Sample:
    start: float
    seconds: float
    ok: bool
    what: str = ""  # a failure: the status line or the error
    resent: bool = False  # its keep-alive connection was closed under it: sent again


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    windows: list[tuple[str, float, float]] = field(default_factory=list)  # change, from, to
    retried: int = 0  # requests sent again on a fresh connection (see Pool)


class Pool:
    """Keep-alive connections to the router, as a browser or a load balancer keeps them. A
    request on a reused connection that the server closed before answering (an idle one an
    old nginx worker let go at a reload) is sent again on a fresh one, as HTTP clients do
    for idempotent requests; those retries are counted."""

    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.retried = 0

    async def get(self) -> tuple[str, bool]:
        """The status line, and whether the request had to be sent again."""
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port), 5)
        try:
            status = await self._exchange(*conn)
        except (OSError, EOFError, asyncio.IncompleteReadError):
            conn[1].close()
            if not reused:
                raise
            self.retried += 1
            conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
            return await self._exchange(*conn), True
        return status, False

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> str:
        writer.write(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 10)
        if not head:
            raise EOFError("closed before answering")
        length, close = 0, False
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "connection" and "close" in value.lower():
                close = True
        await asyncio.wait_for(reader.readexactly(length), 10)
        if close:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return head.decode(errors="replace").strip()


async def one(pool: Pool, run: Run) -> None:
    start = time.monotonic()
    ok, what, resent = False, "", False
    try:
        what, resent = await pool.get()
        parts = what.split()
        ok = len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < 500
    except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError, ValueError) as err:
        ok, what = False, type(err).__name__
    run.samples.append(Sample(start, time.monotonic() - start, ok, what[:40], resent))


async def load(port: int, host: str, run: Run, stop: threading.Event) -> None:
    pool = Pool(port, host)
    tasks = set()
    begin = time.monotonic()
    n = 0
    while not stop.is_set():
        n += 1
        task = asyncio.create_task(one(pool, run))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, begin + n / RATE - time.monotonic()))
    await asyncio.gather(*tasks)
    run.retried = pool.retried


def changes(platform, repo, app: str, python_app) -> list[tuple[str, object]]:  # noqa: ANN001
    def push(n: int):
        def go():
            platform.commit(repo, python_app(f"load {n}"))
            return platform.push(repo)
        return go

    def ssh(*args: str):
        return lambda: platform.ssh(*args)

    return [
        ("push", push(1)), ("config:set", ssh("config:set", app, "N=1")),
        ("ps:scale web=2", ssh("ps:scale", app, "web=2")), ("push", push(2)),
        ("rollback", ssh("rollback", app)), ("ps:restart", ssh("ps:restart", app)),
        ("config:set", ssh("config:set", app, "N=2")),
        ("ps:scale web=1", ssh("ps:scale", app, "web=1")), ("push", push(3)),
        ("ps:restart", ssh("ps:restart", app)), ("rollback", ssh("rollback", app)),
        ("ps:scale web=3", ssh("ps:scale", app, "web=3")), ("push", push(4)),
        ("config:unset", ssh("config:unset", app, "N")), ("ps:restart", ssh("ps:restart", app)),
        ("ps:scale web=1", ssh("ps:scale", app, "web=1")), ("rollback", ssh("rollback", app)),
        ("push", push(5)), ("config:set", ssh("config:set", app, "N=3")),
        ("ps:restart", ssh("ps:restart", app)),
    ]


def with_backlog(python_app, backlog: int):  # noqa: ANN001, ANN201
    """The test app with a listen backlog of `backlog` instead of http.server's 5 (as
    gunicorn's 2048): to tell what of the switch-over is the app's accept queue overflowing
    (SYNs dropped in the dyno, retried by the kernel 1 s later) from the platform's part."""
    def make(body: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        files = python_app(body, extra)
        files["app.py"] = files["app.py"].replace(
            "ThreadingHTTPServer((", f"ThreadingHTTPServer.request_queue_size = {backlog}\n"
            "ThreadingHTTPServer((", 1)
        return files
    return make


def scenario(platform, python_app, wait_to_retire: float | None = None,  # noqa: ANN001
             backlog: int | None = None) -> tuple[Run, list[str]]:
    """Deploy the app, then run the load and the 20 changes; the run and any change that
    failed. `wait_to_retire`: `checks:set` for the app first (else `drain_seconds`);
    `backlog`: the app's listen backlog (else http.server's 5)."""
    if backlog is not None:
        python_app = with_backlog(python_app, backlog)
    app = "loadbench"
    repo = platform.new_app_repo(app, python_app("load 0"))
    assert platform.push(repo).returncode == 0
    if wait_to_retire is not None:
        assert platform.ssh("checks:set", app, f"wait-to-retire={wait_to_retire:g}"
                            ).returncode == 0
    run, stop, failures = Run(), threading.Event(), []

    def drive() -> None:
        try:
            time.sleep(5)  # steady state first
            for name, change in changes(platform, repo, app, python_app):
                start = time.monotonic()
                result = change()
                run.windows.append((name, start, time.monotonic()))
                if result.returncode != 0:
                    failures.append(f"{name}: {result.stderr.strip()[-200:]}")
                time.sleep(6)  # back to steady state between changes
        finally:
            stop.set()

    driver = threading.Thread(target=drive)
    driver.start()
    asyncio.run(load(platform.http_port, f"{app}.localhost", run, stop))
    driver.join()
    for name in ("access.log.1", "access.log"):  # the router's 5xx lines: their cause
        try:
            lines = (platform.state / "nginx" / name).read_text().splitlines()
        except OSError:
            continue
        failures += ["router: " + line[:240] for line in lines if " status=5" in line]
    return run, failures


def _slow_rows(run: Run, slow: float) -> list[tuple[str, str, str]]:
    """Where the switch-over's slow requests (over 2x steady p99) come from: by change, how
    many, how many of them were resent (a keep-alive closed under them), and when they
    started, in seconds after the change's command began."""
    out = []
    for name, a, b in run.windows:
        mine = [s for s in run.samples if a <= s.start <= b + AFTER and s.ok
                and s.seconds > slow]
        if mine:
            when = sorted(round(s.start - a, 1) for s in mine)
            out.append((f"  slow during {name} (>{slow * 1000:.0f} ms)",
                        f"{len(mine)}, {sum(s.resent for s in mine)} resent, max "
                        f"{max(s.seconds for s in mine) * 1000:.0f} ms",
                        f"at +{when[0]:g}..+{when[-1]:g} s"))
    return out


def pct(values: list[float], p: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000:.1f} ms"


def rows(run: Run, failures: list[str]) -> list[tuple[str, str, str]]:
    def switching(s: Sample) -> bool:  # a change's command, then its old dynos' retiring
        return any(a <= s.start <= b + AFTER for _, a, b in run.windows)

    steady = [s.seconds for s in run.samples if s.ok and not switching(s)]
    during = [s.seconds for s in run.samples if s.ok and switching(s)]
    failed = [s for s in run.samples if not s.ok]
    changed = [f for f in failures if not f.startswith("router: ")]
    seconds = (max(s.start for s in run.samples) - min(s.start for s in run.samples)) or 1
    out = [
        ("requests sent (200/s open loop)", f"{len(run.samples)} in {seconds:.0f} s "
         f"({len(run.samples) / seconds:.0f}/s)", "-"),
        ("changes (push, config, rollback, scale, restart)",
         f"{len(run.windows)}, {len(changed)} failed", "20"),
        ("failed requests (connection errors + 5xx)", str(len(failed)), "target 0"),
        ("  resent after an idle keep-alive closed", str(run.retried), "-"),
        ("steady p50 / p99", f"{pct(steady, 50)} / {pct(steady, 99)}", "-"),
        ("switch-over p50 / p99", f"{pct(during, 50)} / {pct(during, 99)}",
         "target p99 <= 2x steady p99"),
    ]
    slow = 2 * float(pct(steady, 99).split()[0]) / 1000 if steady else 1.0
    for name, a, b in run.windows:
        bad = sum(1 for s in failed if a <= s.start <= b + AFTER)
        if bad:
            out.append((f"  failed during {name}", str(bad), "-"))
    out += _slow_rows(run, slow)
    kinds: dict[str, int] = {}
    for s in failed:
        kinds[s.what] = kinds.get(s.what, 0) + 1
    out += [(f"  failure: {what}", str(n), "-") for what, n in sorted(kinds.items())]
    out += [(f"  change failed: {f[:60]}", "", "") for f in failures
            if not f.startswith("router: ")]
    for line in [f for f in failures if f.startswith("router: ")][:20]:
        print(line)
    if steady:
        out.append(("steady mean", f"{statistics.mean(steady) * 1000:.1f} ms", "-"))
    return out
