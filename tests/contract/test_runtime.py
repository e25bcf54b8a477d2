"""The runtime contract, driven through the Runtime interface alone (see conftest.py)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pushd.addons.reach import make_socket_dir
from pushd.runtime.records import DynoInfo, DynoSpec

from ..polling import wait_until
from .conftest import Harness
from .helpers import SERVER, PipeClient, exited, get, listed, log_texts

APP = 1


@pytest.fixture(scope="module")
def slug(harness: Harness) -> str:
    harness.paths.app_dir(APP).mkdir(parents=True, exist_ok=True)  # its log lives there
    return harness.slug(APP, {"server.py": SERVER})


@pytest.fixture
def dynos(harness: Harness, slug: str) -> Iterator[list[DynoSpec]]:
    """Specs the test starts; whatever of them is left is removed after it."""
    started: list[DynoSpec] = []
    yield started
    for spec in started:
        harness.runtime.remove(spec.id)


def start(harness: Harness, dynos: list[DynoSpec], spec: DynoSpec) -> DynoInfo:
    dynos.append(spec)
    return harness.runtime.start(spec)


def test_web_dyno_serves_on_port_behind_the_endpoint_it_reports(harness, slug, dynos):
    rt = harness.runtime
    spec = harness.spec(APP, slug, "web", "python3 server.py")
    info = start(harness, dynos, spec)
    endpoint = info.endpoint or wait_until(lambda: (i := listed(rt, spec.id)) and i.endpoint)
    assert ipaddress.ip_address(endpoint.host).is_loopback  # the router's side only
    body = wait_until(lambda: get(endpoint), timeout=20)
    assert body.split()[1] == spec.env["PORT"]  # the app bound $PORT, and that is served
    assert wait_until(lambda: rt.probe(spec), timeout=10)
    again = listed(rt, spec.id)
    assert again is not None and again.running and again.endpoint == endpoint
    assert again.spec == spec


def test_a_killed_endpoint_forwarder_is_started_again_on_the_same_endpoint(harness, slug,
                                                                         dynos):
    rt = harness.runtime
    spec = harness.spec(APP, slug, "web", "python3 server.py")
    start(harness, dynos, spec)
    endpoint = wait_until(lambda: (i := listed(rt, spec.id)) and i.endpoint)
    body = wait_until(lambda: get(endpoint), timeout=20)
    wait_until(lambda: rt.probe(spec), timeout=10)
    killed = harness.forwarder_pid(spec.id)
    assert killed
    os.kill(killed, signal.SIGKILL)
    # the runtime notices (the shim at once; the docker runtime when it next lists)
    wait_until(lambda: listed(rt, spec.id) and harness.forwarder_pid(spec.id) != killed
               and rt.probe(spec), timeout=20)
    assert wait_until(lambda: get(endpoint), timeout=20) == body  # the same dyno
    assert listed(rt, spec.id).endpoint == endpoint


def test_dyno_is_reported_running_then_exited_with_its_status(harness, slug, dynos):
    rt = harness.runtime
    spec = harness.spec(APP, slug, "worker", "echo working; sleep 1; exit 3")
    start(harness, dynos, spec)
    info = listed(rt, spec.id)
    assert info is not None and info.running and info.exit_status is None
    done = wait_until(lambda: exited(rt, spec.id), timeout=20)
    assert (done.exit_status, done.stopping) == (3, False)  # it ended on its own: a crash
    assert "working" in rt.logs(spec.id, 10)  # its last output, for a failed release
    rt.remove(spec.id)
    assert listed(rt, spec.id) is None


def test_stop_is_sigterm_then_sigkill_after_the_stop_timeout(harness, slug, dynos):
    rt = harness.runtime
    polite = harness.spec(APP, slug, "worker",
                          "trap 'echo bye; exit 0' TERM; echo ready; sleep 300 & wait")
    stubborn = harness.spec(APP, slug, "worker",
                            "trap 'echo got TERM' TERM; echo ready; "
                            "while true; do sleep 0.2; done", stop_timeout=1.0)
    for spec in (polite, stubborn):
        start(harness, dynos, spec)
    for spec in (polite, stubborn):  # its trap is set
        wait_until(lambda s=spec: "ready" in log_texts(harness, APP, s.dyno), timeout=20)
    asked = time.monotonic()
    for spec in (polite, stubborn):
        rt.stop(spec.id)
    # the escalation needs nobody to wait on it: seen by a fresh instance
    observer = harness.fresh_runtime()
    done = wait_until(lambda: exited(observer, polite.id), timeout=20)
    assert (done.exit_status, done.stopping) == (0, True)
    assert "bye" in log_texts(harness, APP, polite.dyno)
    killed = wait_until(lambda: exited(observer, stubborn.id), timeout=20)
    waited = time.monotonic() - asked
    assert (killed.exit_status, killed.stopping) == (137, True)
    assert waited >= stubborn.stop_timeout  # a lower bound only: never killed early
    assert "got TERM" in log_texts(harness, APP, stubborn.dyno)  # SIGTERM came first
    # reported as facts (the supervisor's R12 line is made of them), never logged by the runtime
    assert killed.killed_after_timeout and not done.killed_after_timeout
    assert killed.finished_at >= killed.started_at > 0
    assert log_texts(harness, APP, stubborn.dyno, source="pushd") == []


def test_one_off_exit_status_passes_through_run(harness, slug):
    rt = harness.runtime
    spec = harness.spec(APP, slug, "run",
                        'read line; echo "got $line from $DYNO"; echo oops >&2; exit 7')
    client = PipeClient(b"hello\n")
    try:
        status = rt.run(spec, client)
    finally:
        client.close()
    assert status == 7
    assert bytes(client.out) == f"got hello from {spec.dyno}\n".encode()
    assert bytes(client.err) == b"oops\n"
    assert listed(rt, spec.id) is None  # a one-off leaves nothing behind


def test_output_reaches_the_app_log_that_logs_reads(harness, slug, dynos):
    rt = harness.runtime
    spec = harness.spec(APP, slug, "worker",
                        "echo to-stdout $DYNO; echo to-stderr >&2; printf 'no newline'; "
                        "sleep 300")
    start(harness, dynos, spec)
    wanted = [f"to-stdout {spec.dyno}", "to-stderr"]
    wait_until(lambda: all(w in log_texts(harness, APP, spec.dyno) for w in wanted),
               timeout=20)
    # the runtime's own tail follows (the shim rewrites it at most every 250 ms)
    wait_until(lambda: all(w in rt.logs(spec.id, 10) for w in wanted), timeout=20)
    rt.stop(spec.id)
    wait_until(lambda: exited(rt, spec.id), timeout=20)
    # an unfinished last line is not lost when the dyno ends
    assert log_texts(harness, APP, spec.dyno)[-1] == "no newline"
    assert rt.logs(spec.id, 10)[-1] == "no newline"  # exited, not removed: still there


ADDON_PORT = 19555  # inside the dyno's network only: any port would do
REACH_PROBE = ("import socket\n"
               "def probe(port):\n"
               "    try:\n"
               "        with socket.create_connection(('127.0.0.1', port), timeout=5) as s:\n"
               "            return s.recv(100).decode().strip() or 'empty'\n"
               "    except OSError as err:\n"
               "        return 'closed'\n"
               "import time\n"
               "for _ in range(300):  # its forwarder starts beside it: till it listens\n"
               f"    if probe({ADDON_PORT}) != 'closed':\n"
               "        break\n"
               "    time.sleep(0.1)\n"
               f"print('addon', probe({ADDON_PORT}), 'other', probe({ADDON_PORT + 1}),"
               " flush=True)\n")


@pytest.fixture
def addon_socket(harness: Harness) -> Iterator[int]:
    """A stand-in add-on server: a unix socket in the port's socket folder, as a provider
    makes it (`addons/reach.py`), that greets each connection."""
    folder = make_socket_dir(harness.paths.root, ADDON_PORT, "root", "server.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "server.sock"))
    os.chmod(folder / "server.sock", 0o777)
    server.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"addon-hello\n")

    threading.Thread(target=serve, daemon=True).start()
    yield ADDON_PORT
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_a_dyno_and_a_one_off_reach_their_addons_unix_socket_at_127_0_0_1(
        harness, slug, dynos, addon_socket):
    rt = harness.runtime
    reach_py = harness.slug(APP, {"reach.py": REACH_PROBE})
    worker = replace(harness.spec(APP, reach_py, "worker", "python3 reach.py; sleep 300"),
                     reach=(addon_socket,))
    start(harness, dynos, worker)
    expected = "addon addon-hello other closed"  # its add-on's port, and nothing else
    found = wait_until(lambda: [t for t in log_texts(harness, APP, worker.dyno)
                                if t.startswith("addon ")], timeout=60)
    assert found == [expected]
    oneoff = replace(harness.spec(APP, reach_py, "run", "python3 reach.py"),
                     reach=(addon_socket,))
    client = PipeClient(b"")
    try:
        assert rt.run(oneoff, client) == 0
    finally:
        client.close()
    assert bytes(client.out).decode().strip() == expected
