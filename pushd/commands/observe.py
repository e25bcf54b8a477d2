"""metrics (one app's last hour) and slo (the platform against its objectives)."""

from __future__ import annotations

import json
import time

from .. import slo
from ..gitserver.receive import LAST_DEPLOY
from ..logs import AppLog, LogFilter
from ..models import App
from ..router.accesslog import STATS_FILE
from ..router.stats import summarize
from .registry import Context, command, no_more

RESTARTED = "State changed from crashed to starting"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "over 30 s" if value == float("inf") else f"≤{value:g} ms"


@command("metrics", "APP", "The app's last hour: requests, errors, response times, restarts, "
         "last deploy")
def metrics_cmd(ctx: Context, app: App, args: list[str]) -> None:
    no_more(args)
    paths = ctx.platform.paths
    log_file = paths.log_file(app.id)
    figures = summarize(log_file.with_name(STATS_FILE))
    since = time.time() - 3600
    restarts = 0
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))
    for line in AppLog(log_file).read(20000, LogFilter(source="pushd")):
        if RESTARTED in line and line[:19] >= cutoff:
            restarts += 1
    rate = figures.errors / figures.requests * 100 if figures.requests else 0.0
    ctx.line(f"=== {app.name} metrics (last hour)")
    ctx.line(f"Requests:      {figures.requests / 60:.1f}/min ({figures.requests} in all)")
    ctx.line(f"Errors:        {rate:.1f} % ({figures.errors} answers 5xx)")
    ctx.line(f"Response time: p50 {_ms(figures.p50)}, p95 {_ms(figures.p95)}, "
             f"p99 {_ms(figures.p99)}")
    ctx.line(f"Restarts:      {restarts}")
    deploys = [r for r in ctx.store.releases(app.id, 50) if r.slug_id]
    if not deploys:
        ctx.line("Last deploy:   none yet")
        return
    last = deploys[0]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.created_at))
    note = f"{last.name} at {when} ({last.status})"
    try:
        record = json.loads((paths.app_dir(app.id) / LAST_DEPLOY).read_text())
        if abs(record["at"] - last.created_at) < 3600:
            note += f", push to serving {record['seconds']:.1f} s"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ctx.line(f"Last deploy:   {note}")


@command("slo", "", "The platform's service level indicators against its objectives",
         app=False, admin=True)
def slo_cmd(ctx: Context, args: list[str]) -> None:
    no_more(args)
    s = ctx.platform.settings
    wanted = slo.objectives(s.slo_api_availability, s.slo_deploy_success, s.slo_cold_start_ms)
    rows = slo.SLIFile(ctx.platform.paths.slo_file).report(wanted, s.slo_window_days)
    ctx.line(f"=== SLOs (last {s.slo_window_days} days)")
    width = max(len(r.objective.title) for r in rows)
    for row in rows:
        if row.actual is None:
            measured, budget = "no events yet", "-"
        else:
            measured = f"{row.actual:.2f} % ({row.good}/{row.total})"
            budget = f"{row.budget_left:.0f} % of error budget left"
        met = "" if row.actual is None else ("  met" if row.actual >= row.objective.target
                                            else "  MISSED")
        ctx.line(f"{row.objective.title:<{width}}  target {row.objective.target:g} %  "
                 f"{measured}  {budget}{met}")
