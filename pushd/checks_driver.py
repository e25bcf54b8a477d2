"""The supervisor's side of health checks (a mixin `Supervisor` composes, as it composes
`rollout_driver`): a listening web dyno is up once its checks pass (`health.py` runs them
off the loop), a failed one fails its release (`rollout.CheckFailed`) or, for a restart,
counts as a crash; liveness checks of routed web dynos; a type's first quantity from
app.json's formation (Heroku's rule without one: web 1, the others 0)."""

from __future__ import annotations

from dataclasses import replace

from . import maintenance
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

