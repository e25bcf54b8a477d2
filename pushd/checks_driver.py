"""The supervisor's side of health checks (a mixin `Supervisor` composes, as it composes
`rollout_driver`): a listening web dyno is up once its checks pass (`health.py` runs them
off the loop), a failed one fails its release (`rollout.CheckFailed`) or, for a restart,
counts as a crash; liveness checks of routed web dynos; non-web dynos of a new release must
keep running their uptime (app.json's `uptime`, default 10 s) before it serves, unless
`checks:set worker-overlap=false` (then the old ones stop before the new ones start); a
type's first quantity from app.json's formation (Heroku's rule without one: web 1, the
others 0)."""

from __future__ import annotations

from dataclasses import replace

from . import maintenance
from . import rollout as ro
from .dynostate import Dyno
from .models import Release
from .runtime.records import DynoSpec


class CheckDriver:
    """Uses the supervisor's health, store, paths, settings, releases and dyno methods."""

    def _checked(self, dyno: Dyno, now: float) -> None:
        """A listening web dyno: up once its health checks pass; failed, it stops."""
        spec = dyno.spec
        chosen = maintenance.checks(self.paths, spec.app_id) if self.health else None
        verdict = None if self.health is None or chosen.skips("web") else self.health.result(
            spec.id, dyno.endpoint, f"{spec.app}.{self.settings.domain}", tuple(
                replace(c, attempts=chosen.attempts or c.attempts) for c in
                self.health.app_json(spec.app_id, self._slug_of(spec)).checks("web")))
        if self.health is None or chosen.skips("web") or verdict is not None and verdict.ok:
            self._set_state(dyno, "up", now)
        elif verdict is not None:
            self._platform(spec, f"Error: {verdict.detail}")
            self._set_state(dyno, "crashed", now)
            self._crashed(dyno, now, verdict.detail, failed_check=True)
            self._stop(dyno)

    def _liveness(self, dyno: Dyno, now: float) -> None:
        """app.json's liveness checks on a routed web dyno: failing, it leaves the router
        and is restarted."""
        spec = dyno.spec
        checks = tuple(c for c in self.health.app_json(spec.app_id, self._slug_of(spec))
                       .checks("web") if c.type == "liveness")
        if not checks or maintenance.checks(self.paths, spec.app_id).skips("web"):
            return
        verdict = self.health.live(spec.id, dyno.endpoint, f"{spec.app}.{self.settings.domain}",
                                   checks, now)
        if verdict is not None:
            self._platform(spec, f"Error: liveness {verdict.detail}; restarting")
            self._stop(dyno)  # out of the router this pass; its slot starts a new one

    def _uptime_needed(self, app_id: int, slug_id: str | None, kind: str) -> float | None:
        """Seconds a non-web dyno of a new release must run before the release serves
        (the longest of its type's startup uptime checks); None: it does not gate."""
        chosen = maintenance.checks(self.paths, app_id)
        if self.health is None or chosen.skips(kind) or not chosen.worker_overlap:
            return None
        return max((c.uptime for c in self.health.app_json(app_id, slug_id).checks(kind)
                    if c.path is None and c.type != "liveness"), default=None)

    def _uptimes(self, app_id: int, release: Release, formation: dict[str, int],
                 now: float) -> tuple[int, list[ro.DynoUp]]:
        """How many non-web dynos of the release must pass their uptime check, and those
        that did."""
        gated, passed = 0, []
        for kind in release.process_types:
            need = (None if kind in ("web", "release") or not formation.get(kind)
                    else self._uptime_needed(app_id, release.slug_id, kind))
            if need is None:
                continue
            gated += formation[kind]
            passed += [ro.DynoUp(d.spec.dyno, kind) for d in list(self.dynos.values())
                       if d.spec.app_id == app_id and d.spec.release == release.version
                       and d.spec.process_type == kind and d.state == "up"
                       and not d.stopping and now - d.since >= need]
        return gated, passed

    def _gated_crash(self, dyno: Dyno) -> bool:
        """Whether a crash of this dyno is its release's business (else: only restarted)."""
        spec = dyno.spec
        return dyno.web or self._uptime_needed(spec.app_id, self._slug_of(spec),
                                               spec.process_type) is not None

    def _waits_for_old(self, app_id: int, version: int, kind: str) -> bool:
        """worker-overlap=false: a non-web dyno starts once no other generation of its type
        runs (an older release's, or one stopping)."""
        if kind == "web" or maintenance.checks(self.paths, app_id).worker_overlap:
            return False
        return any(d.spec.app_id == app_id and d.spec.process_type == kind
                   and (d.stopping or d.spec.release != version)
                   for d in list(self.dynos.values()))

    def _initial_quantity(self, app_id: int, release: Release, kind: str) -> int:
        """A type's first quantity: app.json's formation, else Heroku's rule (web: 1)."""
        declared = (self.health.app_json(app_id, release.slug_id).formation
                    if self.health is not None else {})
        return declared[kind].quantity if kind in declared else int(kind == "web")

    def _slug_of(self, spec: DynoSpec) -> str | None:
        for release in (self._pending.get(spec.app_id), self._serving.get(spec.app_id)):
            if release is not None and release.version == spec.release:
                return release.slug_id
        try:
            return self.store.release(spec.app_id, spec.release).slug_id
        except Exception:
            return None

