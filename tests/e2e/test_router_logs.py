"""Router lines in the app's log: every request through nginx becomes a `pushd[router]` line
naming the dyno that served it and its status; one that outlasts `router_timeout` is H12."""

from __future__ import annotations

import re

import pytest

from tests.polling import wait_until

from .harness import PushdUnderTest, new_root, python_app, running

SLOW = '''\
import os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(6)
        data = ("ok dyno=" + os.environ["DYNO"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory):
    """A daemon whose router gives an app 2 s to answer."""
    yield from running(new_root("pushd-router-logs-"), {
        "boot_timeout": 8, "stop_timeout": 3, "drain_seconds": 0.5, "router_timeout": 2})


def router_lines(pushd: PushdUnderTest, app: str, *filters: str) -> list[str]:
    result = pushd.ssh("logs", "-n", "200", app, *filters)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if " pushd[router]: " in line]


def test_requests_become_router_lines_and_a_slow_one_is_h12(quick: PushdUnderTest):
    repo = quick.new_app_repo("routed", {**python_app("x"), "app.py": SLOW})
    assert quick.push(repo).returncode == 0
    assert quick.ssh("ps:scale", "routed", "web=2").returncode == 0
    served = {wait_until(lambda: quick.http("routed", "/a?b=c\"d").body) for _ in range(6)}
    dynos = {body.split("dyno=")[1] for body in served}
    lines = wait_until(lambda: (found := router_lines(quick, "routed", "-d", "router"))
                       and len([x for x in found if "path=\"/a" in x]) >= 6 and found)
    ok = [x for x in lines if 'path="/a' in x]
    pattern = re.compile(
        r' pushd\[router\]: at=info method=GET path="/a\?b=c%22d" host=routed\.localhost '
        r'request_id=\S+ fwd="127\.0\.0\.1" dyno=(web\.[12]) connect=\d+ms service=\d+ms '
        r'status=200 bytes=\d+ protocol=http$')
    matched = [pattern.search(x) for x in ok]
    assert all(matched), ok
    assert {m.group(1) for m in matched if m} == dynos  # each line names the dyno that served
    assert router_lines(quick, "routed", "-s", "app") == []  # `-s pushd` holds them
    slow = quick.http("routed", "/slow")
    assert slow.status == 503
    h12 = wait_until(lambda: [x for x in router_lines(quick, "routed", "-s", "pushd")
                              if "path=\"/slow\"" in x])
    assert 'at=error code=H12 desc="Request timeout" method=GET path="/slow"' in h12[0]
    assert "status=503" in h12[0]
