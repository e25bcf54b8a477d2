"""The supervisor's side of release rollouts (a mixin `Supervisor` composes, as `Store`
composes `store_tenants`): it keeps one `rollout.Rollout` per app with a pending release,
feeds it what the loop observed and carries out the actions it decides (router switch,
release status, failure report, stopping or retiring dynos, the `pushd[api]` line). The
decisions are `rollout.py`'s, pure and tested alone; this is only their I/O.
"""

from __future__ import annotations

from . import maintenance, metrics
from . import rollout as ro
from .dynostatus import write_failure
from .errors import RouterError
from .failurelines import READ, app_lines
from .models import Release
from .slo import SLIFile

RETIRE_CAP = 30.0  # seconds a retiring web dyno waits at most for the router's old workers


class RolloutDriver:
    """Uses the supervisor's store, runtime, paths, settings, clock, dynos, publisher."""

    rollouts: dict[int, ro.Rollout]  # app id -> its pending release's

    def _wait_to_retire(self, app_id: int) -> float:
        """How long an old web dyno is kept, out of the router, before its SIGTERM:
        `checks:set wait-to-retire`, else the `drain_seconds` setting."""
        wait = maintenance.checks(self.paths, app_id).wait_to_retire
        return self.settings.drain_seconds if wait is None else wait

    def _still_draining(self, due: float, now: float) -> bool:
        """A web dyno due to retire (out of the router since its switch or scale-down) gets
        its SIGTERM only once the router's workers from before that reload have finished
        their requests (some may be to it; a starved host makes them slow), at most
        RETIRE_CAP seconds after it was due (a websocket can keep an old worker for hours)."""
        return now < due + RETIRE_CAP and self.out.draining()

    def _rollouts(self, pending: dict[int, Release]) -> None:
        """Feed each pending release's rollout what this pass saw of its dynos."""
        self.rollouts = {app_id: r for app_id, r in self.rollouts.items() if app_id in pending}
        for app_id, release in pending.items():
            self._track(app_id, release)
            formation = self.store.formation(app_id)
            webs = formation.get("web", 0) if "web" in release.process_types else 0
            others, steady = self._uptimes(app_id, release, formation, self.clock())
            self._feed(app_id, release.version, ro.Scaled(webs, others))
            for event in steady:
                self._feed(app_id, release.version, event)
            for dyno in list(self.dynos.values()):
                spec = dyno.spec
                if (spec.app_id == app_id and spec.release == release.version
                        and spec.process_type == "web" and dyno.routable):
                    self._feed(app_id, release.version, ro.DynoUp(spec.dyno))

    def _supersede_older(self, app_id: int, pending: Release) -> None:
        for release in self.store.releases(app_id, limit=20):
            if release.status == "pending" and release.version < pending.version:
                self._track(app_id, release)
                self._feed(app_id, release.version, ro.Newer(pending.name))

    def _track(self, app_id: int, release: Release) -> None:
        if (r := self.rollouts.get(app_id)) is None or r.version != release.version:
            self.rollouts[app_id] = ro.Rollout(release.version, release.name)

    def _feed(self, app_id: int, version: int, event: ro.Event) -> ro.Rollout | None:
        """Tell vN's rollout (None if not under way) what happened; do what it decides."""
        rollout = self.rollouts.get(app_id)
        if rollout is None or rollout.version != version or rollout.state.done:
            return None
        rollout, actions = ro.step(rollout, event)
        self.rollouts[app_id] = rollout
        for action in actions:
            self._act(app_id, action)
        return self.rollouts[app_id]

    def _act(self, app_id: int, action: ro.Action) -> None:
        match action:
            case ro.SwitchRouter(version):
                try:
                    self.out.switch(self._build_routes({app_id: version}))
                except RouterError as err:
                    self._feed(app_id, version, ro.RouterRefused(str(err)))
                else:
                    self._feed(app_id, version, ro.Switched())
            case ro.RecordFailure(version, reason, dyno_id):
                output = app_lines(self.runtime.logs(dyno_id, READ)) if dyno_id else []
                write_failure(self.paths, app_id, version, reason, output)
            case ro.SetStatus(version, status):
                self.store.set_release_status(app_id, version, str(status))
                if app_id in self._apps and status.done:
                    metrics.deploys.labels(self._apps[app_id].name, str(status)).inc()
                if status in (ro.ReleaseState.SUCCEEDED, ro.ReleaseState.FAILED):
                    SLIFile(self.paths.slo_file).record(
                        "deploy", status is ro.ReleaseState.SUCCEEDED)
                if status is ro.ReleaseState.SUCCEEDED:
                    self._serving[app_id] = self.store.release(app_id, version)
            case ro.Announce(message):
                self._log(app_id, "api", message)
            case ro.StopRelease(version):
                for dyno in [d for d in self.dynos.values() if d.slot[:2] == (app_id, version)]:
                    self._stop(dyno)
            case ro.RetireOlder():
                self.drain_until[app_id] = self.clock() + self._wait_to_retire(app_id)
