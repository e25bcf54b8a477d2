"""Router lines in the app's log: every request through nginx becomes a `pushd[router]` line
naming the dyno that served it and its status; one that outlasts `router_timeout` is H12.
The daemon's Prometheus metrics move by what the test did."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.polling import wait_until

from .harness import PushdUnderTest, free_port, http_app, new_root, python_app, running

SLOW = http_app(head="import time", respond="""\
if self.path == "/slow":
    time.sleep(6)
if self.path == "/crash":
    os._exit(3)
text = "ok dyno=" + os.environ["DYNO"]
""")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory):
    """A daemon whose router gives an app 2 s to answer."""
    yield from running(new_root("pushd-router-logs-"), {
        "boot_timeout": 8, "stop_timeout": 3, "drain_seconds": 0.5, "router_timeout": 2,
        "crash_backoff_base": 0.5, "metrics_port": free_port()})


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
    # a path's quote, backslash and non-UTF-8 byte reach the line escaped, forging nothing
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as raw:
        raw.sendall(b'GET /h?q="\\\xff HTTP/1.1\r\nHost: routed.localhost\r\n'
                    b"Connection: close\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 200")
    hostile = wait_until(lambda: [x for x in router_lines(quick, "routed") if "/h?q=" in x])
    assert len(hostile) == 1 and re.search(
        r' pushd\[router\]: at=info method=GET path="/h\?q=%22\\x5C\\xFF" host=routed\.localhost '
        r'request_id=\S+ fwd="127\.0\.0\.1" dyno=web\.[12] connect=\d+ms service=\d+ms status=200 '
        r'bytes=\d+ protocol=http$', hostile[0]), hostile
    slow = quick.http("routed", "/slow")
    assert slow.status == 503
    h12 = wait_until(lambda: [x for x in router_lines(quick, "routed", "-s", "pushd")
                              if "path=\"/slow\"" in x])
    assert 'at=error code=H12 desc="Request timeout" method=GET path="/slow"' in h12[0]
    assert "status=503" in h12[0]


def scrape(pushd: PushdUnderTest) -> dict[tuple[str, frozenset], float]:
    port = pushd.settings["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(value for (metric, have), value in samples.items()
               if metric == name and want <= have)


def test_metrics_move_by_what_happened(quick: PushdUnderTest):
    before = scrape(quick)
    repo = quick.new_app_repo("metered", {**python_app("x"), "app.py": SLOW})
    assert quick.push(repo).returncode == 0
    for _ in range(5):
        assert quick.http("metered", "/").status == 200
    assert quick.ssh("ps:scale", "metered", "web=2").returncode == 0
    assert quick.http("metered", "/crash").status == 503  # its dyno died mid-request

    def moved(name: str, **labels: str) -> float:
        return total(scrape(quick), name, **labels) - total(before, name, **labels)

    app = {"app": "metered"}
    assert moved("pushd_git_pushes_total", outcome="ok") == 1
    assert moved("pushd_deploys_total", outcome="succeeded", **app) == 1
    assert moved("pushd_build_duration_seconds_count", **app) == 1
    assert moved("pushd_push_to_serving_seconds_count", **app) == 1
    assert moved("pushd_commands_total", command="ps:scale", outcome="ok") == 1
    wait_until(lambda: moved("pushd_router_requests_total", status_class="2xx", **app) == 5)
    assert moved("pushd_router_service_seconds_count", **app) >= 5
    wait_until(lambda: moved("pushd_dyno_crashes_total", reason="exit", **app) == 1)
    wait_until(lambda: moved("pushd_dyno_restarts_total", reason="exit", **app) == 1)
    wait_until(lambda: moved("pushd_scale_duration_seconds_count", **app) == 1)
    # three starts of web: the push, the scale, the restart after the crash
    wait_until(lambda: moved("pushd_dyno_starts_total", type="web", **app) == 3)
    wait_until(lambda: moved("pushd_dyno_cold_start_seconds_count", type="web", **app) == 3)
    wait_until(lambda: total(scrape(quick), "pushd_dynos_running", type="web", **app) == 2)
    assert total(scrape(quick), "pushd_api_up") == 1


def test_metrics_command_and_slo_report(quick: PushdUnderTest):
    """After test_metrics_move_by_what_happened: its app's last hour, the platform's SLOs."""
    def summary() -> str | None:
        shown = quick.ssh("metrics", "metered", user="admin").stdout
        return shown if "(6 in all)" in shown else None
    shown = wait_until(summary, timeout=30)
    lines = shown.splitlines()
    assert lines[0] == "=== metered metrics (last hour)"
    assert lines[1] == "Requests:      0.1/min (6 in all)"
    assert lines[2] == "Errors:        16.7 % (1 answers 5xx)"  # the /crash request
    assert lines[3].startswith("Response time: p50 ≤") and "p99 ≤" in lines[3]
    assert lines[4] == "Restarts:      1"
    assert re.match(r"Last deploy:   v1 at .* \(succeeded\), push to serving \d+\.\d s$",
                    lines[5]), lines[5]
    assert quick.ssh("slo", user="alice").returncode == 1
    report = quick.ssh("slo")
    assert report.returncode == 0, report.stderr
    rows = report.stdout.splitlines()
    assert rows[0] == "=== SLOs (last 30 days)"
    assert re.match(r"Platform API availability +target 99.9 % +100.00 % \((\d+)/\1\) +100 % "
                    r"of error budget left  met$", rows[1]), rows[1]
    assert re.match(r"Deploy success +target 99 % +100.00 % \((\d+)/\1\)", rows[2]), rows[2]
    assert rows[3].startswith("Cold starts within 500 ms  target 95 %")
