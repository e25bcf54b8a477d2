"""The router: runs nginx with the text render.py builds. pushd owns a private nginx (its own
daemon, outliving pushd's) or, with `system_nginx`, writes an include file for the system's."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import RouterError
from ..files import replace_file
from ..paths import Paths
from ..procs import children_map, proc_stat
from ..settings import Settings
from .accesslog import RouterLogReceiver
from .base import Route
from .nginxhost import (
    ipv6_available,
    listen_addresses,
    nginx_error,
    resolver,
    worker_gid,
    worker_user,
)
from .nginxprocs import clear, explain_bind, orphans
from .render import RenderOptions, generation_of, render
from .watch import WATCH_FILE, describe_watch

SYSTEM_INCLUDE = Path("/etc/nginx/conf.d/pushd.conf")
def _proc_title(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _parent(pid: int) -> int:
    stat = proc_stat(pid)
    return stat.ppid if stat else 0


def _children(parent: int) -> list[int]:
    return children_map(include_exited=False).get(parent, [])


class NginxRouter:
    """`Router` on nginx. apply() returns once the new config serves new connections."""

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        templates_dir: Path,
        *,
        nginx_bin: str = "nginx",
        system_include: Path = SYSTEM_INCLUDE,
        system_nginx_argv: Sequence[str] = ("nginx",),
        system_pid_file: Path = Path("/run/nginx.pid"),
        ipv6: bool | None = None,
        workers: int | None = None,
        timeout: float = 15.0,
        platform_cert: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.templates_dir = Path(templates_dir)
        self.nginx_bin = nginx_bin
        self.system = settings.system_nginx
        self.system_include = Path(system_include)
        self.system_nginx_argv = list(system_nginx_argv)
        self.system_pid_file = Path(system_pid_file)
        self.timeout = timeout
        self.dir = paths.nginx_dir
        if ipv6 is None:
            ipv6 = ipv6_available()
        self.options = RenderOptions(
            nginx_dir=self.dir,
            listen=listen_addresses(settings.http_host, settings.http_port, ipv6),
            standalone=not self.system,
            user=None if self.system else worker_user(),
            workers=workers or max(1, min(os.cpu_count() or 1, 4)),
            header_timeout=settings.router_header_timeout,
            request_timeout=settings.router_timeout,
            router_logs=settings.router_logs,
            conns_per_client=settings.router_conns_per_client,
            https_listen=listen_addresses(settings.http_host, settings.https_port, ipv6)
            if settings.https_port else (),
            https_port=settings.https_port or 443,
            trusted_proxies=settings.trusted_proxies,
            acme_dir=self.dir / "acme-challenge",
            resolver=resolver(),
        )
        # the certificate of *.DOMAIN, read at each render (`certs:platform` replaces it)
        self.platform_cert = platform_cert
        self._lock = threading.Lock()
        self.reloads = 0  # how many times the config was switched (tests, status)

    # -- files -----------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        """The live file: pushd's nginx.conf, or the system include."""
        return self.system_include if self.system else self.dir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.dir / "nginx.pid"

    @property
    def watch_file(self) -> Path:
        """What the watch (watch.py) last saw of this nginx: outages, for `status`."""
        return self.dir / WATCH_FILE

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    def log_receiver(self, app_ids: Callable[[str], int | None], log_file: Callable[[int], Path],
                     max_bytes: int) -> RouterLogReceiver:
        return RouterLogReceiver(self.options.router_log_socket, app_ids, log_file, max_bytes,
                                 worker_gid(self.options.user))

    def render(self, routes: list[Route]) -> str:
        options = self.options
        if options.https_listen and self.platform_cert is not None:
            options = dataclasses.replace(options, platform_cert=self.platform_cert())
        return render(routes, options, self.templates_dir)

    def _prepare_dirs(self) -> None:
        """nginx's folder (config, access log with every app's requests, temp files) is
        root's, entered by the workers' group only: no app uid reaches any of it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        challenges = self.dir / "acme-challenge"  # HTTP-01 tokens: public by design
        challenges.mkdir(exist_ok=True)
        group = worker_gid(self.options.user)
        if group is not None:
            os.chown(self.dir, 0, group)
            os.chown(challenges, 0, group)
        self.dir.chmod(0o700 if group is None else 0o710)
        challenges.chmod(0o755 if group is None else 0o750)

    def _live_text(self) -> str | None:
        try:
            return self.conf.read_text()
        except FileNotFoundError:
            return None

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Atomically, so nginx never reads half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text, mode=0o600)  # the master reads it, as root

    # -- running nginx ---------------------------------------------------------------------

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RouterError(f"Could not run {argv[0]}: {err}") from None

    def _test_standalone(self, text: str) -> None:
        self._prepare_dirs()
        candidate = self.dir / "nginx.conf.candidate"
        self._write(candidate, text)
        try:
            done = self._run(
                [self.nginx_bin, "-t", "-q", "-p", f"{self.dir}/", "-c", str(candidate)]
            )
        finally:
            candidate.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RouterError(nginx_error(done.stderr + done.stdout))

    def _test_system(self, text: str, keep: bool) -> None:
        """The system nginx tests its whole config, so the candidate goes in place first; it is
        put back as it was unless it passes and `keep`."""
        previous = self._live_text()
        self._write(self.system_include, text)
        done = self._run([*self.system_nginx_argv, "-t", "-q"])
        if done.returncode == 0 and keep:
            return
        if previous is None:
            self.system_include.unlink(missing_ok=True)
        else:
            self._write(self.system_include, previous)
        if done.returncode != 0:
            raise RouterError(nginx_error(done.stderr + done.stdout))

    def master_pid(self) -> int | None:
        """The pid of pushd's running nginx master, if there is one."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        title = _proc_title(pid)
        if title.startswith("nginx: master process") and str(self.dir / "nginx.conf") in title:
            return pid
        return None

    def _serving_workers(self, master: int) -> set[int]:
        """Workers that accept new connections (not the old ones shutting down)."""
        return {pid for pid in _children(master) if _proc_title(pid) == "nginx: worker process"}

    def probe(self) -> tuple[str, int] | None:
        """(generation, worker pid) from a serving worker, asked over the status socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.options.status_socket))
                sock.sendall(b"GET /generation HTTP/1.0\r\nHost: pushd\r\n\r\n")
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        words = body.decode(errors="replace").split()
        if not head.startswith(b"HTTP/1.1 200") or len(words) != 2 or not words[1].isdigit():
            return None
        return words[0], int(words[1])

    def _master(self) -> int | None:
        """The master serving the status socket (pushd's own, or the system's)."""
        if not self.system:
            return self.master_pid()
        answer = self.probe()
        if answer:
            return _parent(answer[1])
        try:
            return int(self.system_pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def _new_emerg(self, offset: int) -> str | None:
        if self.system:
            return None
        try:
            with self.error_log.open("rb") as log:
                log.seek(offset)
                new = log.read().decode(errors="replace")
        except OSError:
            return None
        if "[emerg]" in new:
            return nginx_error(new)
        return None

    def _wait_live(self, generation: str | None, old_workers: set[int], log_offset: int) -> None:
        """Until a worker answers `generation` and no worker from before still accepts: after
        a reload the master lets old workers accept for another 100 ms."""
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self.probe()
            if answer and answer[0] == generation:
                serving = self._serving_workers(_parent(answer[1]))
                if serving and not serving & old_workers:
                    return
            problem = self._new_emerg(log_offset)
            if problem:
                raise RouterError(explain_bind(problem))
            if time.monotonic() > deadline:
                raise RouterError(f"nginx did not load the new config within {self.timeout:g}s")
            time.sleep(0.005)

    def _reload(self, generation: str | None) -> None:
        master = self._master()
        old = self._serving_workers(master) if master else set()
        if self.system:
            done = self._run([*self.system_nginx_argv, "-s", "reload"])
            if done.returncode != 0:
                raise RouterError(nginx_error(done.stderr + done.stdout))
            self._wait_live(generation, old, 0)
            return
        if master is None:
            self._spawn(generation)
            return
        offset = self._log_size()
        os.kill(master, signal.SIGHUP)
        self._wait_live(generation, old, offset)

    def _spawn(self, generation: str | None) -> None:
        self.options.status_socket.unlink(missing_ok=True)  # left by a killed nginx
        clear(orphans(self.dir, None))  # a killed master's workers still hold the ports
        offset = self._log_size()
        done = self._run([self.nginx_bin, "-p", f"{self.dir}/", "-c", str(self.conf)])
        if done.returncode != 0:
            raise RouterError(explain_bind(nginx_error(done.stderr + done.stdout)))
        self._wait_live(generation, set(), offset)

    # -- Router ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start pushd's nginx, or adopt (and reload) the one already running."""
        with self._lock:
            self._prepare_dirs()
            text = self._live_text()
            if text is None:
                text = self.render([])
                self._validate(text, keep=True)
                if not self.system:
                    self._write(self.conf, text)
            elif not self.system:
                self._test_standalone(text)
            self._reload(generation_of(text))

    def check(self, routes: list[Route]) -> None:
        with self._lock:
            self._validate(self.render(routes), keep=False)

    def apply(self, routes: list[Route]) -> None:
        with self._lock:
            text = self.render(routes)
            previous = self._live_text()
            if text == previous and self._running():
                return
            self._validate(text, keep=True)
            if not self.system:
                self._write(self.conf, text)
            try:
                self._reload(generation_of(text))
            except RouterError:
                # nginx kept (or fell back to) the previous config: so does the file on disk.
                if previous is None:
                    self.conf.unlink(missing_ok=True)
                else:
                    self._write(self.conf, previous)
                raise
            self.reloads += 1

    def rotate_logs(self, max_bytes: int) -> None:
        """access.log and error.log over max_bytes become .1 (replacing the previous .1), and
        nginx reopens its files (SIGUSR1): bounded disk use however busy the apps are."""
        with self._lock:  # never while a reload watches error.log from an offset
            master = None if self.system else self.master_pid()
            if master is None:
                return
            rotated = False
            for path in (self.dir / "access.log", self.error_log):
                try:
                    if path.stat().st_size > max_bytes:
                        os.replace(path, path.with_name(path.name + ".1"))
                        rotated = True
                except FileNotFoundError:
                    continue
            if rotated:
                os.kill(master, signal.SIGUSR1)

    def describe(self) -> str:
        if self.system:
            state = "included" if self.system_include.exists() else "not included"
            return f"system nginx, {state} ({self.system_include})"
        master = self.master_pid()
        said = f"nginx, pid {master}" if master else "nginx, not running"
        watch = describe_watch(self.watch_file)
        return f"{said} ({watch})" if watch else said

    def draining(self) -> bool:
        """Whether a worker from before a reload still finishes its requests: it proxies to
        the dynos of the routes it loaded, which must not be stopped under it."""
        master = self._master()
        return master is not None and any(
            _proc_title(pid).startswith("nginx: worker process is shutting down")
            for pid in _children(master))

    def alive(self) -> bool:
        """Whether pushd's nginx master runs (the system's nginx is not pushd's to watch)."""
        return self.system or self.master_pid() is not None

    def stop(self) -> None:
        with self._lock:
            if self.system:
                if self.system_include.exists():
                    self.system_include.unlink()
                    self._run([*self.system_nginx_argv, "-s", "reload"])
                return
            master = self.master_pid()
            if master is None:
                return
            started = {pid: stat.start for pid in [master, *_children(master)]
                       if (stat := proc_stat(pid)) is not None}
            os.kill(master, signal.SIGQUIT)  # graceful: in-flight requests finish
            deadline = time.monotonic() + self.timeout
            while self.master_pid() == master and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.master_pid() == master:
                clear(started, grace=0.0)  # only those very processes, never a reused pid

    def _validate(self, text: str, keep: bool) -> None:
        if self.system:
            self._test_system(text, keep)
        else:
            self._test_standalone(text)

    def _running(self) -> bool:
        answer = self.probe()
        return answer is not None and answer[0] == generation_of(self._live_text() or "")
