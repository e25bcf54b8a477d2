"""The release state machine alone: scripted histories of what the supervisor observed, and
the state and actions they lead to. No store, runtime or router."""

from __future__ import annotations

from pushd.rollout import (
    Announce,
    DynoCrashed,
    DynoStarted,
    DynoUp,
    Newer,
    RecordFailure,
    ReleaseState,
    RetireOlder,
    Rollout,
    RouterRefused,
    Scaled,
    SetStatus,
    StopRelease,
    Switched,
    SwitchRouter,
    replay,
    step,
)

V3 = Rollout(3, "v3")


def test_two_web_dynos_up_switch_the_router_then_it_succeeds_and_the_old_one_retires():
    state, actions = replay(V3, [Scaled(2), DynoStarted("web.1"), DynoStarted("web.2"),
                                 DynoUp("web.1")])
    assert (state.state, actions) == (ReleaseState.ROLLING_OUT, [])  # one of two: not yet
    state, actions = replay(state, [DynoUp("web.1"), DynoUp("web.2")])
    assert actions == [SwitchRouter(3)] and state.switching
    state, actions = step(state, DynoUp("web.2"))  # seen up again on the next pass
    assert actions == []  # the switch is asked once
    state, actions = step(state, Switched())
    assert state.state is ReleaseState.SUCCEEDED
    assert actions == [SetStatus(3, ReleaseState.SUCCEEDED), RetireOlder(3),
                       Announce("Release v3 is live")]


def test_a_web_dyno_that_crashes_before_it_is_up_fails_the_release_and_the_old_one_serves():
    state, actions = replay(V3, [
        Scaled(1), DynoStarted("web.1"),
        DynoCrashed("web.1", "exited with status 1 before binding $PORT", dyno_id="d1")])
    assert state.state is ReleaseState.FAILED
    reason = "web.1 exited with status 1 before binding $PORT"
    assert actions == [RecordFailure(3, reason, "d1"), SetStatus(3, ReleaseState.FAILED),
                       Announce(f"Release v3 failed: {reason}"), StopRelease(3)]
    # nothing retires the serving release, and nothing more happens to this one
    assert not any(isinstance(a, (RetireOlder, SwitchRouter)) for a in actions)
    assert replay(state, [DynoUp("web.1"), Switched(), Newer("v4")]) == (state, [])


def test_a_newer_release_pushed_during_the_rollout_supersedes_it():
    state, _ = replay(V3, [Scaled(1), DynoStarted("web.1")])
    state, actions = step(state, Newer("v4"))
    assert state.state is ReleaseState.SUPERSEDED
    assert actions == [RecordFailure(3, "superseded by v4"),
                       SetStatus(3, ReleaseState.SUPERSEDED),
                       Announce("Release v3 was superseded by v4"), StopRelease(3)]


def test_the_router_refusing_the_switch_fails_the_release():
    state, actions = replay(V3, [Scaled(1), DynoUp("web.1")])
    assert actions == [SwitchRouter(3)]
    state, actions = step(state, RouterRefused("nginx: [emerg] broken"))
    assert state.state is ReleaseState.FAILED and not state.switching
    assert SetStatus(3, ReleaseState.FAILED) in actions and StopRelease(3) in actions


def test_a_release_without_web_dynos_switches_at_once():
    state, actions = replay(V3, [Scaled(0)])
    assert actions == [SwitchRouter(3)]
    assert step(state, Switched())[0].state is ReleaseState.SUCCEEDED


def test_worker_crashes_and_crashes_after_up_do_not_fail_the_release():
    state, actions = replay(V3, [
        Scaled(2), DynoStarted("worker.1"),
        DynoCrashed("worker.1", "exited with status 1", process_type="worker"),
        DynoUp("web.1"),
        DynoCrashed("web.1", "exited with status 1", ever_up=True)])
    assert (state.state, actions) == (ReleaseState.ROLLING_OUT, [])
    assert state.up == frozenset()  # web.1 must come up again (restarted like any crash)
    state, actions = replay(state, [DynoUp("web.1"), DynoUp("web.2")])
    assert actions == [SwitchRouter(3)]


def test_scaling_down_during_the_rollout_lets_it_switch():
    state, actions = replay(V3, [Scaled(3), DynoUp("web.1"), DynoUp("web.2")])
    assert actions == []
    assert step(state, Scaled(2))[1] == [SwitchRouter(3)]


def test_a_worker_must_pass_its_uptime_check_before_the_switch_and_one_that_exits_fails_it():
    state, actions = replay(V3, [Scaled(1, others=1), DynoStarted("web.1"),
                                 DynoStarted("worker.1"), DynoUp("web.1")])
    assert actions == []  # the worker has not run long enough yet
    state, actions = step(state, DynoUp("worker.1", "worker"))
    assert actions == [SwitchRouter(3)]
    # a worker that exits within its uptime: the release fails, the old one serves
    reason = "worker.1 exited with status 3 within 2 seconds of starting"
    state, actions = replay(V3, [Scaled(1, others=1), DynoUp("web.1"), DynoCrashed(
        "worker.1", reason.removeprefix("worker.1 "), "worker", True, "d2")])
    assert state.state is ReleaseState.FAILED
    assert actions == [RecordFailure(3, reason, "d2"), SetStatus(3, ReleaseState.FAILED),
                       Announce(f"Release v3 failed: {reason}"), StopRelease(3)]
    # not gated (overlap off, checks disabled): a crashing worker is only restarted
    state, actions = replay(V3, [Scaled(1), DynoCrashed("worker.1", "x", "worker", True),
                                 DynoUp("web.1")])
    assert actions == [SwitchRouter(3)]
