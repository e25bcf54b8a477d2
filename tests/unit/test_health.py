"""Health checks: the default (GET / below 500), content and status checks, attempts, and a
failing check's request and answer in one line; a release whose dyno fails them fails."""

from __future__ import annotations

import http.client

from pushd import rollout as ro
from pushd.appjson import DEFAULT_WEB, Check
from pushd.health import run_checks
from pushd.runtime.records import Endpoint

EP = Endpoint("127.0.0.1", 1)


def scripted(*answers):
    calls = []
    queue = list(answers)

    def get(endpoint, host, path, timeout):
        calls.append((host, path, timeout))
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return get, calls


def test_default_check_passes_below_500_and_fails_on_500():
    get, calls = scripted((404, "not here"))
    assert run_checks(EP, "a.localhost", DEFAULT_WEB, get=get, sleep=lambda s: None).ok
    assert calls == [("a.localhost", "/", 5.0)]
    get, calls = scripted((500, "Internal\nServer   Error"))
    result = run_checks(EP, "a.localhost", DEFAULT_WEB, get=get, sleep=lambda s: None)
    assert not result.ok and len(calls) == 3
    assert "GET / answered 500 'Internal Server Error' after 3 attempts" in result.detail
    assert "expected a status below 500" in result.detail


def test_content_check_retries_then_passes():
    check = Check(name="ready", path="/health", content="ok", attempts=3, wait=2)
    slept = []
    get, calls = scripted(ConnectionRefusedError(111, "refused"), (200, "warming"), (200, "ok"))
    assert run_checks(EP, "h", (check,), get=get, sleep=slept.append).ok
    assert len(calls) == 3 and slept == [2, 2]


def test_failing_content_check_names_request_and_answer():
    check = Check(name="ready", path="/health", content="ok", attempts=2, wait=0)
    get, _ = scripted((200, "nope"))
    result = run_checks(EP, "h", (check,), get=get, sleep=lambda s: None)
    assert result.detail == ("health check 'ready' failed: GET /health answered 200 'nope' "
                             "after 2 attempts (expected a status below 500 with 'ok' in "
                             "the body)")
    get, _ = scripted(http.client.RemoteDisconnected("closed"))
    result = run_checks(EP, "h", (check,), get=get, sleep=lambda s: None)
    assert "no answer (RemoteDisconnected: closed)" in result.detail


def test_liveness_and_uptime_checks_do_not_gate_the_start():
    get, calls = scripted((500, ""))
    checks = (Check(type="liveness", path="/live"), Check(path=None))
    assert run_checks(EP, "h", checks, get=get, sleep=lambda s: None).ok and calls == []


def test_a_failed_check_fails_the_release_and_stops_it():
    start = ro.Rollout(2, "v2")
    r, actions = ro.replay(start, [ro.Scaled(1), ro.DynoStarted("web.1"),
                                   ro.CheckFailed("web.1", "health check 'x' failed", "id1")])
    assert r.state is ro.ReleaseState.FAILED
    assert ro.RecordFailure(2, "web.1 health check 'x' failed", "id1") in actions
    assert ro.StopRelease(2) in actions and not any(
        isinstance(a, ro.SwitchRouter) for a in actions)
