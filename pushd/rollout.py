"""A release's rollout as a state machine: pending → rolling out → succeeded, failed or
superseded. Pure: `step` takes what the supervisor observed (dyno events, the router's answer,
a newer release) and returns the next state and the actions to carry out; it does no I/O, so
a rollout is tested alone by replaying a scripted history (`replay`).

The supervisor owns the loop and the dynos: it feeds the events and performs the actions
(`SwitchRouter` comes back to it as `Switched` or `RouterRefused`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum


class ReleaseState(StrEnum):
    PENDING = "pending"  # cut, none of its dynos started yet
    ROLLING_OUT = "rolling out"  # its dynos start; the previous release still serves
    SUCCEEDED = "succeeded"  # it serves; the previous release's dynos drain and stop
    FAILED = "failed"  # a web dyno never came up, a worker exited within its uptime check
    # (or the router refused): the old one serves
    SUPERSEDED = "superseded"  # a newer release was cut before this one served

    @property
    def done(self) -> bool:
        return self in (ReleaseState.SUCCEEDED, ReleaseState.FAILED, ReleaseState.SUPERSEDED)


# events: what the supervisor saw
@dataclass(frozen=True)
class Scaled:
    webs: int  # web dynos the release must have up before it serves (its formation)
    others: int = 0  # non-web dynos that must pass their uptime check first


@dataclass(frozen=True)
class DynoStarted:
    dyno: str  # web.1


@dataclass(frozen=True)
class DynoUp:
    """A web dyno passed its checks, or a non-web one its uptime check."""

    dyno: str
    process_type: str = "web"


@dataclass(frozen=True)
class DynoCrashed:
    dyno: str
    reason: str  # "exited with status 1 before binding $PORT"
    process_type: str = "web"
    ever_up: bool = False
    dyno_id: str | None = None  # whose last output tells the pusher why


@dataclass(frozen=True)
class CheckFailed:
    """A web dyno of the release listened but failed its app.json (or default) checks."""

    dyno: str
    detail: str  # the failing check's request and answer
    dyno_id: str | None = None


@dataclass(frozen=True)
class Switched:
    """The router now sends the app's traffic to this release."""


@dataclass(frozen=True)
class RouterRefused:
    reason: str


@dataclass(frozen=True)
class Newer:
    name: str  # v7: a release cut after this one


Event = Scaled | DynoStarted | DynoUp | DynoCrashed | CheckFailed | Switched | RouterRefused | Newer


# actions: what the supervisor does
@dataclass(frozen=True)
class SwitchRouter:
    version: int


@dataclass(frozen=True)
class SetStatus:
    version: int
    status: ReleaseState


@dataclass(frozen=True)
class RecordFailure:
    version: int
    reason: str
    dyno_id: str | None = None


@dataclass(frozen=True)
class StopRelease:
    version: int  # stop this release's dynos


@dataclass(frozen=True)
class RetireOlder:
    version: int  # older releases' dynos stop once drained


@dataclass(frozen=True)
class Announce:
    message: str  # a `pushd[api]` line in the app log


Action = SwitchRouter | SetStatus | RecordFailure | StopRelease | RetireOlder | Announce


@dataclass(frozen=True)
class Rollout:
    version: int
    name: str  # v3
    webs: int = 0
    others: int = 0  # non-web dynos gated by an uptime check
    state: ReleaseState = ReleaseState.PENDING
    up: frozenset[str] = frozenset()
    steady: frozenset[str] = frozenset()  # non-web dynos that passed their uptime check
    switching: bool = False  # SwitchRouter asked, its answer not seen yet
    reason: str = ""


def step(rollout: Rollout, event: Event) -> tuple[Rollout, list[Action]]:
    """The rollout after `event`, and what to do about it. A finished rollout ignores all."""
    r = rollout
    if r.state.done:
        return r, []
    match event:
        case Scaled(webs, others):
            r = replace(r, webs=webs, others=others)
        case DynoStarted():
            r = replace(r, state=ReleaseState.ROLLING_OUT)
        case DynoUp(dyno, "web"):
            r = replace(r, state=ReleaseState.ROLLING_OUT, up=r.up | {dyno})
        case DynoUp(dyno, _):
            r = replace(r, state=ReleaseState.ROLLING_OUT, steady=r.steady | {dyno})
        case DynoCrashed(dyno, reason, "web", False, dyno_id):
            return _end(r, ReleaseState.FAILED, f"{dyno} {reason}", dyno_id)
        case DynoCrashed(dyno, reason, kind, _, dyno_id) if (
                kind != "web" and r.others and dyno not in r.steady):
            return _end(r, ReleaseState.FAILED, f"{dyno} {reason}", dyno_id)
        case CheckFailed(dyno, detail, dyno_id) if dyno not in r.up:
            return _end(r, ReleaseState.FAILED, f"{dyno} {detail}", dyno_id)
        case DynoCrashed(dyno, _, "web", True, _):
            r = replace(r, up=r.up - {dyno})  # restarted like any crash; not yet serving
        case Switched():
            r = replace(r, state=ReleaseState.SUCCEEDED, switching=False)
            return r, [SetStatus(r.version, r.state), RetireOlder(r.version),
                       Announce(f"Release {r.name} is live")]
        case RouterRefused(reason):
            return _end(replace(r, switching=False), ReleaseState.FAILED,
                        f"the router refused the new configuration: {reason}")
        case Newer(name):
            return _end(r, ReleaseState.SUPERSEDED, f"superseded by {name}")
    if len(r.up) >= r.webs and len(r.steady) >= r.others and not r.switching:
        return replace(r, switching=True), [SwitchRouter(r.version)]
    return r, []


def _end(r: Rollout, state: ReleaseState, reason: str,
         dyno_id: str | None = None) -> tuple[Rollout, list[Action]]:
    said = "was" if state is ReleaseState.SUPERSEDED else "failed:"
    r = replace(r, state=state, reason=reason)
    return r, [RecordFailure(r.version, reason, dyno_id), SetStatus(r.version, state),
               Announce(f"Release {r.name} {said} {reason}"), StopRelease(r.version)]


def replay(rollout: Rollout, events: Iterable[Event]) -> tuple[Rollout, list[Action]]:
    """Every event in turn, as the supervisor would feed them; the actions of all."""
    actions: list[Action] = []
    for event in events:
        rollout, done = step(rollout, event)
        actions += done
    return rollout, actions
