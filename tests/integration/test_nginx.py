"""The router with a real nginx on free loopback ports and a temp state dir.

glibc here does not resolve *.localhost: clients connect to 127.0.0.1 and send Host."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pushd.errors import RouterError
from pushd.paths import Paths
from pushd.router import nginx as nginx_module
from pushd.router.base import Route
from pushd.router.nginx import NginxRouter, _children, _proc_title
from pushd.settings import Settings
from tests.polling import wait_until

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ROOT = Path(__file__).resolve().parents[2]



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EchoHandler(BaseHTTPRequestHandler):
    """Answers the request's headers as JSON; answers an Upgrade with 101, then echoes bytes."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if self.headers.get("Upgrade"):
            self.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
            )
            self.wfile.flush()
            while data := self.connection.recv(4096):
                self.connection.sendall(data)
            self.close_connection = True
            return
        body = json.dumps(
            {"name": self.server.name, "headers": [[k, v] for k, v in self.headers.items()]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backend():
    servers = []

    def start(name: str = "a") -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        server.daemon_threads = True
        server.name = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def state():
    # Short path: the status socket must fit in a unix socket address.
    root = Path(tempfile.mkdtemp(prefix="pushd-ng-", dir="/tmp"))
    paths = Paths(root)
    paths.ensure()
    settings = Settings(state_dir=root, http_host="127.0.0.1", http_port=free_port())
    routers: list[NginxRouter] = []

    def make(**kwargs) -> NginxRouter:
        router = NginxRouter(settings, paths, TEMPLATES, ipv6=False, **kwargs)
        routers.append(router)
        return router

    yield settings, paths, make
    if routers:
        routers[0].stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def router(state):
    _, _, make = state
    router = make()
    router.start()
    return router


def get(router: NginxRouter, host: str, path: str = "/", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", router.settings.http_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def echoed(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def masters(router: NginxRouter) -> list[int]:
    conf = str(router.conf)
    return [
        int(p) for p in os.listdir("/proc")
        if p.isdigit() and _proc_title(int(p)).startswith("nginx: master") and conf in
        _proc_title(int(p))
    ]


def test_host_routing_and_forwarded_headers(router, backend, tmp_path):
    port = backend()
    app_log = tmp_path / "app.log"  # router lines reach the app's log through the receiver
    receiver = router.log_receiver(lambda name: 1 if name == "myapp" else None,
                                   lambda app_id: app_log, 1 << 20)
    stop = threading.Event()
    threading.Thread(target=receiver.run, args=(stop,), daemon=True).start()
    router.apply([Route("myapp", ("myapp.localhost", "www.example.com"),
                        (("127.0.0.1", port, "web.1"),))])
    before = int(time.time() * 1000)
    response, body = get(router, "myapp.localhost", headers={"X-Forwarded-For": "10.1.2.3"})
    assert response.status == 200
    seen = echoed(body)
    assert seen["host"] == "myapp.localhost"
    assert seen["x-forwarded-for"] == "127.0.0.1"  # a client's own is replaced (no trusted
    # proxy in front: tests/e2e/test_https.py keeps a trusted one's)
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-port"] == str(router.settings.http_port)
    start = seen["x-request-start"]
    assert start.isdigit()  # plain milliseconds, as Heroku sends it
    assert before - 1000 <= int(start) <= int(time.time() * 1000) + 1000
    generated = seen["x-request-id"]
    assert len(generated) == 32 and response.getheader("X-Request-Id") == generated

    response, body = get(router, "www.example.com", headers={"X-Request-Id": "abc-123"})
    assert response.status == 200
    assert echoed(body)["x-request-id"] == "abc-123"
    assert response.getheader("X-Request-Id") == "abc-123"
    try:
        log = wait_until(lambda: app_log.exists() and app_log.read_text().count("\n") >= 2
                         and app_log.read_text())
    finally:
        stop.set()
    assert "pushd[router]: at=info method=GET" in log and "dyno=web.1" in log


def test_unknown_host_404_no_dyno_503_maintenance(router, backend):
    port = backend()
    router.apply([
        Route("idle", ("idle.localhost",), ()),
        Route("down", ("down.localhost",), (("127.0.0.1", port, "web.1"),), maintenance=True),
    ])
    response, body = get(router, "nope.localhost")
    assert response.status == 404 and b"No such app" in body
    response, body = get(router, "idle.localhost")
    assert response.status == 503 and b"H14 No web processes running" in body
    assert response.getheader("X-Request-Id").encode() in body
    response, body = get(router, "down.localhost")
    assert response.status == 503 and b"maintenance" in body
    router.apply([Route("idle", ("idle.localhost",), (), crashed=True)])
    response, body = get(router, "idle.localhost")
    assert response.status == 503 and b"H10 App crashed" in body and b"H14" not in body


def test_dead_dyno_is_h10(router):
    router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", free_port(), "web.1"),))])
    response, body = get(router, "myapp.localhost")
    assert response.status == 503 and b"H10" in body


def test_dying_dyno_retried_on_another(router, backend):
    port = backend()
    dead = free_port()
    router.apply([Route("myapp", ("myapp.localhost",),
                        (("127.0.0.1", dead, "web.1"), ("127.0.0.1", port, "web.2")))])
    for _ in range(4):
        response, _ = get(router, "myapp.localhost")
        assert response.status == 200


def test_upgrade_passes_through(router, backend):
    port = backend()
    router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", port, "web.1"),))])
    with socket.create_connection(("127.0.0.1", router.settings.http_port), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: myapp.localhost\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 101")
        for message in (b"hello", b"world"):
            sock.sendall(message)
            assert sock.recv(1024) == message


def test_bad_config_raises_and_previous_keeps_serving(router, backend, monkeypatch):
    port = backend()
    good = [Route("myapp", ("myapp.localhost",), (("127.0.0.1", port, "web.1"),))]
    router.apply(good)
    live = router.conf.read_text()

    # A host nginx refuses: an upstream name that does not resolve.
    with pytest.raises(RouterError, match=r"\[emerg\] host not found in upstream"):
        router.apply([Route("myapp", ("myapp.localhost",), (("nosuchhost.invalid", 80, "web.1"),))])
    # A template producing text nginx cannot parse.
    real_render = nginx_module.render
    monkeypatch.setattr(nginx_module, "render", lambda *a: real_render(*a) + "\nbogus_directive;\n")
    with pytest.raises(RouterError) as err:
        router.apply([Route("myapp", ("other.localhost",), ())])
    assert "[emerg] unknown directive \"bogus_directive\"" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(RouterError):
        router.check([])
    monkeypatch.undo()

    assert router.conf.read_text() == live
    response, _ = get(router, "myapp.localhost")
    assert response.status == 200


def test_unchanged_apply_does_not_reload(router, backend):
    routes = [Route("myapp", ("myapp.localhost",), (("127.0.0.1", backend(), "web.1"),))]
    router.apply(routes)
    master = router.master_pid()
    workers = set(_children(master))
    reloads = router.reloads
    for _ in range(20):
        router.apply(routes)
    assert router.reloads == reloads and set(_children(master)) == workers


def test_fresh_router_adopts_running_nginx(state, router, backend):
    _, _, make = state
    routes = [Route("myapp", ("myapp.localhost",), (("127.0.0.1", backend(), "web.1"),))]
    router.apply(routes)
    master = router.master_pid()
    again = make()
    again.start()
    assert again.master_pid() == master and masters(router) == [master]
    again.apply(routes)  # same text: nothing to do
    assert again.reloads == 0
    response, _ = get(again, "myapp.localhost")
    assert response.status == 200


def test_nginx_outlives_a_killed_daemon(state, backend):
    settings, paths, make = state
    port = backend()
    script = (
        "import os, signal, sys; from pathlib import Path\n"
        "from pushd.settings import Settings; from pushd.paths import Paths\n"
        "from pushd.router.nginx import NginxRouter; from pushd.router.base import Route\n"
        f"r = NginxRouter(Settings(state_dir=Path({str(settings.state_dir)!r}),"
        f" http_host='127.0.0.1', http_port={settings.http_port}),"
        f" Paths(Path({str(paths.root)!r})), Path({str(TEMPLATES)!r}), ipv6=False)\n"
        "r.start()\n"
        f"r.apply([Route('myapp', ('myapp.localhost',), (('127.0.0.1', {port}, 'web.1'),))])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=30)
    assert done.returncode == -signal.SIGKILL
    router = make()  # the fixture stops nginx through this one
    assert router.master_pid() is not None
    response, _ = get(router, "myapp.localhost")
    assert response.status == 200


def test_no_dropped_requests_while_switching_upstreams(router, backend):
    ports = {"a": backend("a"), "b": backend("b")}
    failures: list[str] = []
    seen: set[str] = set()
    count = 0
    stop = threading.Event()

    def client():
        nonlocal count
        while not stop.is_set():
            try:
                response, body = get(router, "myapp.localhost")
                if response.status != 200:
                    failures.append(f"status {response.status}")
                else:
                    seen.add(json.loads(body)["name"])
            except OSError as err:
                failures.append(repr(err))
            count += 1

    router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", ports["a"], "web.1"),))])
    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    timings = []
    for i in range(10):
        name = "b" if i % 2 == 0 else "a"
        started = time.monotonic()
        router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", ports[name], "web.1"),))])
        timings.append(time.monotonic() - started)
        response, body = get(router, "myapp.localhost")
        assert json.loads(body)["name"] == name  # live once apply() returns
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == [] and count > 50 and seen == {"a", "b"}
    print(f"apply: {count} requests, max {max(timings)*1000:.0f} ms,"
          f" mean {sum(timings)/len(timings)*1000:.0f} ms")


def test_stop_stops_nginx(state, backend):
    _, _, make = state
    router = make()
    router.start()
    master = router.master_pid()
    assert master
    router.stop()
    assert router.master_pid() is None
    with pytest.raises(OSError):
        get(router, "myapp.localhost")


def test_system_nginx_include(state, backend):
    """A stand-in for the system nginx: a private one whose config includes a conf.d dir."""
    settings, paths, _ = state
    system = paths.root / "system"
    (system / "conf.d").mkdir(parents=True)
    main = system / "nginx.conf"
    main.write_text(
        f"pid {system}/nginx.pid;\nerror_log {system}/error.log;\nevents {{}}\n"
        f"http {{\n  client_body_temp_path {system}/body;\n  proxy_temp_path {system}/proxy;\n"
        f"  include {system}/conf.d/*.conf;\n}}\n"
    )
    argv = ["nginx", "-p", f"{system}/", "-c", str(main)]
    subprocess.run(argv, check=True)
    try:
        system_settings = Settings(state_dir=settings.state_dir, http_host="127.0.0.1",
                                   http_port=settings.http_port, system_nginx=True)
        router = NginxRouter(system_settings, paths, TEMPLATES, ipv6=False,
                             system_include=system / "conf.d" / "pushd.conf",
                             system_nginx_argv=argv,
                             system_pid_file=system / "nginx.pid")
        router.start()
        router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", backend(), "web.1"),))])
        response, _ = get(router, "myapp.localhost")
        assert response.status == 200
        live = router.conf.read_text()
        with pytest.raises(RouterError, match="host not found"):
            router.apply([Route("myapp", ("myapp.localhost",), (("nosuch.invalid", 1, "w"),))])
        assert router.conf.read_text() == live
        response, _ = get(router, "myapp.localhost")
        assert response.status == 200
        router.stop()
        assert not router.conf.exists()
    finally:
        subprocess.run([*argv, "-s", "stop"])


def test_all_interfaces_with_ipv6_and_several_apps_is_valid_nginx(state):
    """The default bring-up (0.0.0.0 plus [::]) with more than one app must pass nginx -t:
    every server block repeats the listen address, so no per-address options may repeat."""
    settings, paths, _ = state
    wide = NginxRouter(Settings(state_dir=settings.state_dir, http_host="0.0.0.0",
                                http_port=settings.http_port), paths, TEMPLATES, ipv6=True)
    routes = [Route(name, (f"{name}.localhost",), (("127.0.0.1", 9, "web.1"),))
              for name in ("one", "two", "three")]
    wide.check(routes)  # raises RouterError with nginx's message if nginx refuses it


def test_router_logs_are_rotated_and_reopened(router):
    """nginx's own access log (requests for hosts no app has) is rotated and reopened."""
    access = router.dir / "access.log"
    for _ in range(5):
        get(router, "idle.localhost")  # no app: the catch-all server's log
    wait = time.monotonic() + 10
    while access.stat().st_size == 0 and time.monotonic() < wait:
        time.sleep(0.05)
    size = access.stat().st_size
    assert size > 0
    router.rotate_logs(size - 1)
    assert (router.dir / "access.log.1").stat().st_size == size
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # nginx reopens its files: new lines, fresh file
        get(router, "idle.localhost")
        if access.exists() and "host=idle.localhost" in access.read_text():
            break
        time.sleep(0.05)
    assert "host=idle.localhost" in access.read_text()
    assert access.stat().st_size < size


def test_draining_while_a_worker_from_before_a_reload_still_proxies(router):
    """`draining()`: an old worker still holds a request it took under the previous routes
    (its dyno must not get its SIGTERM yet); once that request is answered, it is not."""
    reached, release = threading.Event(), threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            reached.set()
            release.wait(20)
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"done")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    answers = []
    try:
        router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", port, "web.1"),))])
        assert not router.draining()
        client = threading.Thread(target=lambda: answers.append(get(router, "myapp.localhost")))
        client.start()
        assert reached.wait(10)
        router.apply([Route("myapp", ("myapp.localhost",), (("127.0.0.1", port, "web.2"),))])
        assert router.draining()  # the old worker still proxies the slow request
        release.set()
        client.join(10)
        assert answers and answers[0][1] == b"done"
        wait_until(lambda: not router.draining(), timeout=10)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
