"""The platform's own metrics (Prometheus text format, `prometheus_client`), for SLOs.

Every metric lives in one registry, `REGISTRY`, served by `serve` on `metrics_port`
(loopback by default) from the daemon. Labels come only from app names, process types,
dyno names and fixed enums (never paths, request ids or anything else a request carries), so
the number of series stays bounded by the apps and their formation. Functions here are the
one way other modules count something; each is cheap and never raises.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

log = logging.getLogger("pushd.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
OUTCOMES = ("ok", "user_error", "internal_error")
DURATIONS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
FAST = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

commands = Counter("pushd_commands_total", "Admin commands by command and outcome",
                   ["command", "outcome"], registry=REGISTRY)
pushes = Counter("pushd_git_pushes_total", "git pushes by outcome", ["outcome"],
                 registry=REGISTRY)
api_up = Gauge("pushd_api_up", "1 while the daemon serves the SSH API", registry=REGISTRY)
deploys = Counter("pushd_deploys_total", "Releases rolled out, by app and outcome",
                  ["app", "outcome"], registry=REGISTRY)
build_seconds = Histogram("pushd_build_duration_seconds", "Build time of a push",
                          ["app"], buckets=DURATIONS, registry=REGISTRY)
serving_seconds = Histogram("pushd_push_to_serving_seconds",
                            "From a push's start to its release serving", ["app"],
                            buckets=DURATIONS, registry=REGISTRY)
release_phase = Counter("pushd_release_phase_total", "Release commands by outcome",
                        ["app", "outcome"], registry=REGISTRY)
rollbacks = Counter("pushd_rollbacks_total", "Rollbacks", ["app"], registry=REGISTRY)
dynos_running = Gauge("pushd_dynos_running", "Dynos the supervisor runs", ["app", "type"],
                      registry=REGISTRY)
dyno_starts = Counter("pushd_dyno_starts_total", "Dyno starts", ["app", "type"],
                      registry=REGISTRY)
dyno_crashes = Counter("pushd_dyno_crashes_total", "Dyno crashes by reason (exit, R10, R15)",
                       ["app", "type", "reason"], registry=REGISTRY)
dyno_restarts = Counter("pushd_dyno_restarts_total", "Dynos started again after a crash",
                        ["app", "type", "reason"], registry=REGISTRY)
cold_start = Histogram("pushd_dyno_cold_start_seconds", "A dyno's start until it is up",
                       ["app", "type"], buckets=FAST, registry=REGISTRY)
scale_seconds = Histogram("pushd_scale_duration_seconds", "ps:scale until every dyno is up",
                          ["app"], buckets=FAST + (60,), registry=REGISTRY)
router_lines_dropped = Counter("pushd_router_log_lines_dropped_total",
                               "Router lines over the per-app rate", ["app"],
                               registry=REGISTRY)
drain_dropped = Gauge("pushd_drain_dropped_lines", "Log lines drains dropped (buffer full)",
                      registry=REGISTRY)


class RouterCounts:
    """The router's requests by app, status class and dyno, its error answers by H-code and
    the apps' answer times. The router-log receiver adds each kind of request once per batch
    with its count (a prometheus_client Counter or Histogram costs a lock and a call per
    request); a scrape reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._service: dict[str, list[float]] = {}  # app -> count per bucket, then the sum

    def add(self, app: str, status: str, dyno: str, code: str, seconds: float | None,
            n: int = 1) -> None:
        with self._lock:
            key = (app, status_class(status), dyno)
            self._requests[key] = self._requests.get(key, 0) + n
            if code:
                self._errors[(app, code)] = self._errors.get((app, code), 0) + n
            if seconds is not None:
                row = self._service.get(app)
                if row is None:
                    row = self._service[app] = [0.0] * (len(FAST) + 2)
                row[bisect_left(FAST, seconds)] += n
                row[-1] += seconds * n

    def collect(self):  # noqa: ANN201  (the prometheus_client collector protocol)
        requests = CounterMetricFamily("pushd_router_requests", "Requests through the router",
                                       labels=["app", "status_class", "dyno"])
        errors = CounterMetricFamily("pushd_router_errors", "The router's own error answers",
                                     labels=["app", "code"])
        service = HistogramMetricFamily("pushd_router_service_seconds",
                                        "Time the app took to answer", labels=["app"])
        bounds = [floatToGoString(b) for b in FAST] + ["+Inf"]
        with self._lock:
            for labels, n in self._requests.items():
                requests.add_metric(list(labels), n)
            for labels, n in self._errors.items():
                errors.add_metric(list(labels), n)
            for app, row in self._service.items():
                seen, buckets = 0.0, []
                for bound, n in zip(bounds, row[:-1], strict=True):
                    seen += n
                    buckets.append((bound, seen))
                service.add_metric([app], buckets, row[-1])
        yield requests
        yield errors
        yield service


router = RouterCounts()
REGISTRY.register(router)
addon_rotations = Counter("pushd_addon_rotations_total", "Credential rotations by outcome",
                          ["kind", "outcome"], registry=REGISTRY)


class _Addons:
    """Read at each scrape: add-ons by kind, and each one's credential age."""

    def __init__(self, listing: Callable[[], list[tuple[str, str, float]]]) -> None:
        self.listing = listing  # (name, kind, seconds since its credentials were made)

    def collect(self):  # noqa: ANN201  (the prometheus_client collector protocol)
        count = GaugeMetricFamily("pushd_addons", "Add-ons by kind", labels=["kind"])
        age = GaugeMetricFamily("pushd_addon_credential_age_seconds",
                                "Since each add-on's credentials were made or rotated",
                                labels=["addon", "kind"])
        kinds: dict[str, int] = {}
        try:
            rows = self.listing()
        except Exception:  # a scrape must not fail for a store that is busy
            log.exception("add-on metrics")
            rows = []
        for name, kind, seconds in rows:
            kinds[kind] = kinds.get(kind, 0) + 1
            age.add_metric([name, kind], seconds)
        for kind, n in sorted(kinds.items()):
            count.add_metric([kind], n)
        yield count
        yield age


def watch_addons(listing: Callable[[], list[tuple[str, str, float]]]) -> None:
    REGISTRY.register(_Addons(listing))


def status_class(status: str) -> str:
    return f"{status[0]}xx" if len(status) == 3 and status[0] in "12345" else "other"


def command_outcome(status: int, internal: bool) -> str:
    return "internal_error" if internal else ("ok" if status == 0 else "user_error")


def watch_drains(dropped: Callable[[], int]) -> None:
    drain_dropped.set_function(lambda: float(dropped()))


def serve(host: str, port: int) -> None:
    """Serve `/metrics` on host:port from a thread of this process."""
    start_http_server(port, addr=host, registry=REGISTRY)
    api_up.set(1)
    log.info("metrics on http://%s:%d/metrics", host, port)
