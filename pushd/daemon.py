"""The daemon: SSH server + supervisor + router in one process; start, stop, status."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import firewall, metrics
from .errors import Conflict, PushdError
from .platform import Platform, is_daemon_argv
from .procs import port_holder, read_pid_file, write_pid_file
from .runtime import egress
from .runtime.endpoints import endpoint_pairs
from .settings import Settings

log = logging.getLogger("pushd")


def register_admin_key(platform: Platform, key_file: Path) -> str:
    """Register `key_file` as an admin key (idempotent). Returns what happened, for printing."""
    from .commands.keys import add_key
    from .sshkeys import parse_public_key

    text = Path(key_file).expanduser().read_text()
    _, fingerprint = parse_public_key(text)
    existing = platform.store.key_by_fingerprint(fingerprint)
    if existing:
        return f"Key {existing.name} ({existing.role}) already registered"
    taken = {k.name for k in platform.store.keys()}
    name = next(n for n in ("admin", *(f"admin-{i}" for i in range(2, 1000))) if n not in taken)
    add_key(platform.store, name, "admin", text)
    return f"Registered {fingerprint} as admin key {name}"


def no_banner_tracebacks(record: logging.LogRecord) -> bool:
    """False for paramiko's records about a connection that closed or stalled before its SSH
    banner: its error line and 25-line traceback on every port scan, readiness probe (`up
    --detach`) and newcomer cut off by the pre-auth caps. Paramiko logs them one line each from
    inside its `except` block, so the exception being handled tells them apart."""
    import paramiko  # loaded by then: only the daemon's SSH server logs through it

    err = sys.exc_info()[1]
    return not (isinstance(err, paramiko.SSHException)
                and str(err).startswith("Error reading SSH protocol banner"))


def app_ids(platform: Platform) -> Callable[[str], int | None]:
    """App name → id, from the store, remembered for a few seconds (a router line each
    request must not cost a query each)."""
    cache: dict[str, tuple[float, int | None]] = {}

    def lookup(name: str) -> int | None:
        hit = cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < 5.0:
            return hit[1]
        try:
            app_id: int | None = platform.store.app(name).id
        except PushdError:
            app_id = None
        if len(cache) > 10_000:
            cache.clear()
        cache[name] = (time.monotonic(), app_id)
        return app_id
    return lookup


def run(platform: Platform) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    from .commands import load_all
    from .drains.manager import DrainManager
    from .gitserver.refmove import settle_all
    from .gitserver.ssh import SSHServer
    from .health import HealthChecks
    from .router.watch import WATCH_FILE, RouterWatch
    from .scheduler import Scheduler, fast_clock
    from .supervisor import Supervisor

    load_all()  # all code loaded now: an upgrade under a running daemon waits for its restart
    settings, paths = platform.settings, platform.paths
    pid = platform.daemon_pid()
    if pid is not None and pid != os.getpid():
        raise Conflict(f"pushd is already running (pid {pid})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("paramiko", "dulwich"):  # per-connection chatter, and port probes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("paramiko.transport").addFilter(no_banner_tracebacks)
    stop = threading.Event()
    try:
        ssh = SSHServer(platform, settings.ssh_host, settings.ssh_port)
    except OSError as err:  # say who holds the port, when it is taken
        holder = port_holder(settings.ssh_port) if err.errno == errno.EADDRINUSE else None
        if holder is None:
            raise
        raise PushdError(f"SSH port {settings.ssh_port}: {os.strerror(err.errno)}: held by pid "
                         f"{holder[0]} ({holder[1][:120]})") from None
    from .control.server import ControlServer

    control = ControlServer(platform)  # the local CLI's way in (the same sessions as SSH)
    if settings.metrics_port:
        try:
            metrics.serve(settings.metrics_host, settings.metrics_port)
        except OSError as err:
            raise PushdError(f"metrics port {settings.metrics_port}: {err.strerror}") from None
    platform.runtime.check_host()  # one line if the host lacks what it needs
    if settings.firewall:  # fail closed: no daemon rather than dyno ports open to the world
        try:  # the dynos this daemon will adopt keep reaching their own endpoints meanwhile
            firewall.apply(settings, endpoint_pairs(platform.runtime.list()))
        except PushdError as err:
            raise PushdError(f"{err} (or set `firewall: false` in pushd.yaml to run without "
                             "private dyno ports)") from None
    platform.router.start()
    keep_addons_up(platform)  # adopt the add-ons' servers, or start them again
    abandon_rollouts(platform)
    settle_all(platform)  # then a push the last daemon left: its branch follows its release
    tighten(platform)
    for dyno_id in platform.runtime.sweep():
        log.info("removed one-off %s left by a stopped pushd", dyno_id)
    health = HealthChecks(paths)
    supervisor = Supervisor(platform.store, platform.runtime, platform.router, settings, paths,
                            tls=platform.tls.decorate, health=health)
    health.wake = supervisor.wake
    platform.supervisor = supervisor
    write_pid_file(paths.pid_file, os.getpid())
    live_file(paths.root).write_text(json.dumps(
        {"pid": os.getpid(), **{name: getattr(settings, name) for name in LIVE_SETTINGS}}))

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watch = RouterWatch(platform.router, paths.nginx_dir / WATCH_FILE)
    drains = DrainManager(platform.store, paths)
    metrics.watch_drains(drains.dropped)
    metrics.watch_addons(lambda: [
        (a.name, a.kind, time.time() - float(a.state.get("rotated_at", a.created_at)))
        for a in platform.store.addons()])
    fast = settings.test_hooks and settings.cron_speed > 1
    cron_loop = Scheduler(platform, fast_clock(settings.cron_speed) if fast else time.time,
                          tick=0.2 if fast else 5.0)
    threads = [threading.Thread(target=supervisor.run, args=(stop,), name="supervisor"),
               threading.Thread(target=cron_loop.run, args=(stop,), name="cron", daemon=True),
               threading.Thread(target=ssh.serve, name="ssh", daemon=True),
               threading.Thread(target=watch.run, args=(stop,), name="router-watch",
                                daemon=True),
               threading.Thread(target=drains.run, args=(stop,), name="drains", daemon=True),
               threading.Thread(target=control.serve, args=(stop,), name="control",
                                daemon=True),
               threading.Thread(target=platform.router.log_receiver(
                   app_ids(platform), paths.log_file, settings.log_max_bytes).run,
                   args=(stop,), name="router-log", daemon=True)]
    for thread in threads:
        thread.start()
    if settings.https_port:  # certs:auto: orders and renewals, off the supervisor's thread
        from .tls.hooks import start_renewer

        start_renewer(platform)
    log.info("pushd %s up: ssh on %s:%d, http on %s:%d, runtime %s", os.getpid(),
             settings.ssh_host, ssh.port, settings.http_host, settings.http_port,
             settings.runtime)
    try:
        ticks = 0
        while not stop.wait(1.0):
            if not threads[0].is_alive():
                log.error("supervisor thread ended; shutting down")
                break
            ticks += 1
            try:  # housekeeping must never take the daemon down
                if ticks % 30 == 0:
                    housekeeping(platform)
                if ticks % 2 == 0:
                    keep_addons_up(platform)
                if ticks % 5 == 0 and settings.firewall and firewall.installed(settings) == "":
                    log.warning("dyno port rules were removed from outside; putting them back")
                    firewall.apply(settings, endpoint_pairs(platform.runtime.list()))
                if ticks % 5 == 0 and egress.revive(paths.root, settings.uid_base):
                    log.warning("the dynos' egress pasta had gone; started it again")
            except Exception:
                log.exception("housekeeping failed")
    finally:
        stop.set()
        ssh.stop()
        if platform.renewer is not None:
            platform.renewer.stop()
        threads[0].join(timeout=10)
        health.close()
        if platform.daemon_pid() == os.getpid():
            paths.pid_file.unlink(missing_ok=True)
        log.info("pushd stopped; dynos keep running")


def keep_addons_up(platform: Platform) -> None:
    from .addons.service import keep_up

    keep_up(platform)


# what `pushd up` flags may set and other commands must then see as the daemon has them
LIVE_SETTINGS = ("ssh_host", "ssh_port", "http_host", "http_port", "https_port", "domain",
                 "runtime", "system_nginx")


def live_file(state_dir: Path) -> Path:
    return state_dir / "daemon.json"


def live_settings(settings: Settings) -> Settings:
    """`settings` with the running daemon's own values for LIVE_SETTINGS (if it runs)."""
    try:
        live = json.loads(live_file(settings.state_dir).read_text())
    except (OSError, ValueError):
        return settings
    running = read_pid_file(settings.state_dir / "pushd.pid", is_daemon_argv)
    if not isinstance(live, dict) or running is None or live.get("pid") != running:
        return settings
    return dataclasses.replace(settings, **{k: live[k] for k in LIVE_SETTINGS if k in live})


def abandon_rollouts(platform: Platform) -> None:
    """Releases still rolling out (or in their release phase) when the last daemon stopped
    lost the push (or command) that waited on them, whose git ref never moved: they fail,
    the serving one stays, and the branch and the running code agree. Pushing again
    retries."""
    from .deploy import app_log
    from .dynostatus import write_failure

    reason = "pushd stopped during its rollout; push (or change) again"
    store = platform.store
    for app in store.apps():
        for release in store.releases(app.id, limit=20):
            if release.status in ("pending", "releasing") and store.set_release_status(
                    app.id, release.version, "failed", only_if=release.status):
                write_failure(platform.paths, app.id, release.version, reason, [])
                app_log(platform, app).write("pushd", "api",
                                             f"Release {release.name} failed: {reason}")


def tighten(platform: Platform) -> None:
    """State written by older versions gets today's modes: slugs, repos and dyno folders are
    the app's or pushd's alone, logs and the status snapshot root's (what new code creates is
    born that way)."""
    for app_dir in (platform.paths.root / "apps").glob("*"):
        for path, mode in [*((slug, 0o700) for slug in app_dir.glob("slugs/*") if slug.is_dir()),
                           (app_dir / "repo.git", 0o700), (app_dir / "logs", 0o700)]:
            with contextlib.suppress(OSError):
                if path.exists():
                    path.chmod(mode)
    # dynos adopted from an older version: their folders and /app become the app's alone
    from .runtime.dynodir import DynoDir

    for spec_file in platform.paths.dynos_dir.glob("*/spec.json"):
        folder = DynoDir(spec_file.parent)
        with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
            folder.restrict(int(json.loads(spec_file.read_text())["spec"]["uid"]))
            if folder.app_dir.is_dir():
                folder.app_dir.chmod(0o700)
    with contextlib.suppress(OSError):
        (platform.paths.dynos_dir / "status.json").chmod(0o600)


def housekeeping(platform: Platform) -> None:
    """Every half minute: keep the router's and the daemon's own logs bounded."""
    limit = platform.settings.log_max_bytes
    try:
        platform.router.rotate_logs(limit)
        daemon_log = platform.paths.daemon_log
        if daemon_log.exists() and daemon_log.stat().st_size > limit:
            # the daemon's stdout/stderr stay open on the file: copy the tail, then truncate
            with open(daemon_log, "r+b") as f:
                f.seek(-limit // 2, os.SEEK_END)
                tail = f.read()
                f.seek(0)
                f.truncate()
            daemon_log.with_name(daemon_log.name + ".1").write_bytes(tail)
    except OSError as err:
        log.warning("log housekeeping failed: %s", err)


def wait_for_port(host: str, port: int, timeout: float, alive: callable) -> bool:
    deadline = time.monotonic() + timeout
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((target, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_detached(platform: Platform, argv: list[str]) -> int:
    """Start `pushd ARGV` (an `up` without --detach) in its own session; return once that very
    process has written its pid file (after binding its ports) and accepts SSH connections."""
    pid = platform.daemon_pid()
    if pid is not None:
        raise Conflict(f"pushd is already running (pid {pid})")
    paths = platform.paths
    env = dict(os.environ, PUSHD_HOME=str(platform.settings.state_dir))
    fd = os.open(paths.daemon_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.chmod(paths.daemon_log, 0o600)  # it may quote what users typed
    with os.fdopen(fd, "ab") as logfile:
        proc = subprocess.Popen([sys.executable, "-m", "pushd.cli", *argv], env=env,
                                stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                start_new_session=True, cwd="/")
    settings = platform.settings
    deadline = time.monotonic() + 60
    while proc.poll() is None and platform.daemon_pid() != proc.pid:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ours = platform.daemon_pid() == proc.pid
    if not ours or not wait_for_port(settings.ssh_host, settings.ssh_port, 60,
                                     lambda: proc.poll() is None):
        if proc.poll() is None:  # never a daemon coming up after we said it failed
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        tail = paths.daemon_log.read_text(errors="replace").strip().splitlines()[-1:]
        # the daemon's own one-line error (" !    why"), without its prefix
        reason = tail[0].strip().removeprefix("!").strip() if tail else f"see {paths.daemon_log}"
        raise PushdError(f"pushd did not come up: {reason}")
    return proc.pid


def stop(platform: Platform, everything: bool = False, timeout: float = 30.0) -> str:
    pid = platform.daemon_pid()
    said = []
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while platform.daemon_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if platform.daemon_pid() is not None:
            raise PushdError(f"pushd (pid {pid}) is still running {timeout:.0f} s after SIGTERM; "
                             f"see {platform.paths.daemon_log}")
        said.append(f"Stopped pushd (pid {pid})")
    else:
        said.append("pushd is not running")
    if everything:
        from .dynospec import stop_app_dynos
        from .events import EventLog

        runtime = platform.runtime
        events = EventLog(platform.paths, platform.settings.log_max_bytes)
        for app_id in sorted({d.spec.app_id for d in runtime.list()}):
            stop_app_dynos(runtime, app_id, platform.settings.stop_timeout + 5, events=events)
        runtime.sweep()  # one-offs the stopped daemon was running
        egress.stop(platform.paths.root)  # the dynos' shared way out
        platform.router.stop()
        firewall.remove(platform.settings)
        from .addons.service import stop_all

        stop_all(platform)  # the add-ons' servers (their data stays)
        said.append("stopped every dyno, the router and the add-ons' servers")
    return "; ".join(said)
